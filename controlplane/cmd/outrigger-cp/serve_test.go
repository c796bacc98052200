package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
	"github.com/outrigger-mesh/outrigger/controlplane/server"
)

const waitTimeout = 10 * time.Second

// fakeSource stands in for the Consul watcher (the real one runs in
// consul_test.go): it publishes what the test sends.
type fakeSource struct {
	meshes chan *model.Mesh
	up     atomic.Bool
	err    error // returned at once when set
	early  bool  // return nil at once
}

func (f *fakeSource) Run(ctx context.Context, publish func(*model.Mesh)) error {
	if f.err != nil || f.early {
		return f.err
	}
	for {
		select {
		case m := <-f.meshes:
			publish(m)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *fakeSource) Up() bool { return f.up.Load() }

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func debugStatus(t *testing.T, base string) server.Status {
	t.Helper()
	code, body := get(t, base+"/debug/status")
	if code != http.StatusOK {
		t.Fatalf("/debug/status: %d %s", code, body)
	}
	var st server.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/debug/status is not JSON: %v\n%s", err, body)
	}
	return st
}

func TestServe(t *testing.T) {
	src := &fakeSource{meshes: make(chan *model.Mesh)}
	xdsLis, httpLis := listen(t), listen(t)
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}), src, xdsLis, httpLis, nil)
	}()
	base := "http://" + httpLis.Addr().String()

	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "no mesh") {
		t.Errorf("/readyz before any mesh: %d %q", code, body)
	}
	if st := debugStatus(t, base); st.Ready {
		t.Error("status ready before any mesh")
	}

	src.up.Store(true)
	src.meshes <- &model.Mesh{Index: 42, Proxies: map[string]*api.CatalogService{
		"web-sidecar-proxy": {ServiceID: "web-sidecar-proxy", ServiceName: "web-sidecar-proxy"},
	}}
	waitFor(t, "/readyz 200", func() bool { code, _ := get(t, base+"/readyz"); return code == http.StatusOK })
	st := debugStatus(t, base)
	if !st.Ready || st.MeshIndex != 42 || st.Proxies != 1 {
		t.Errorf("status: %+v", st)
	}
	_, metrics := get(t, base+"/metrics")
	for _, want := range []string{"outrigger_cp_mesh_index 42", "outrigger_cp_proxies 1", "outrigger_cp_consul_up 1",
		"outrigger_cp_xds_streams 0", "go_goroutines"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	src.up.Store(false)
	waitFor(t, "consul_up 0", func() bool {
		_, m := get(t, base+"/metrics")
		return strings.Contains(m, "outrigger_cp_consul_up 0")
	})

	// xDS is served: an unknown node is refused by name.
	conn, err := grpc.NewClient(xdsLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sctx, scancel := context.WithTimeout(ctx, waitTimeout)
	defer scancel()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: &corev3.Node{Id: "stranger"}, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `"stranger"`) {
		t.Errorf("unknown node: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after cancel: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(logs.String(), "first mesh from Consul translated") {
		t.Errorf("log:\n%s", logs.String())
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("HTTP still served after the stop")
	}
}

func TestServeStopsOnWatcherFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  *fakeSource
		want string
	}{
		{"error", &fakeSource{err: errors.New("consul: ACL not found")}, "consul watcher: consul: ACL not found"},
		{"returned", &fakeSource{early: true}, "consul watcher: stopped on its own"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := serve(context.Background(), hclog.NewNullLogger(), tc.src, listen(t), listen(t), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("serve: %v, want %q", err, tc.want)
			}
		})
	}
}

func TestServeStopsOnListenerFailure(t *testing.T) {
	xdsLis, httpLis := listen(t), listen(t)
	httpLis.Close()
	src := &fakeSource{meshes: make(chan *model.Mesh)}
	err := serve(context.Background(), hclog.NewNullLogger(), src, xdsLis, httpLis, nil)
	if err == nil || !strings.Contains(err.Error(), "http server on "+httpLis.Addr().String()) {
		t.Errorf("serve: %v", err)
	}
	xdsLis2, httpLis2 := listen(t), listen(t)
	xdsLis2.Close()
	err = serve(context.Background(), hclog.NewNullLogger(), src, xdsLis2, httpLis2, nil)
	if err == nil || !strings.Contains(err.Error(), "xds server on "+xdsLis2.Addr().String()) {
		t.Errorf("serve: %v", err)
	}
}
