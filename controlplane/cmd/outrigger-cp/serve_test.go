package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
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
		done <- serve(ctx, hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}), src, xdsLis, httpLis, serveConfig{})
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
	if code, body := get(t, base+"/debug/proxies"); code != http.StatusOK || strings.TrimSpace(body) != "[]" {
		t.Errorf("/debug/proxies with nothing connected: %d %q", code, body)
	}
	// Without -pprof there is no profiler.
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
		if code, _ := get(t, base+path); code != http.StatusNotFound {
			t.Errorf("%s without -pprof: %d, want 404", path, code)
		}
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
			err := serve(context.Background(), hclog.NewNullLogger(), tc.src, listen(t), listen(t), serveConfig{})
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
	err := serve(context.Background(), hclog.NewNullLogger(), src, xdsLis, httpLis, serveConfig{})
	if err == nil || !strings.Contains(err.Error(), "http server on "+httpLis.Addr().String()) {
		t.Errorf("serve: %v", err)
	}
	xdsLis2, httpLis2 := listen(t), listen(t)
	xdsLis2.Close()
	err = serve(context.Background(), hclog.NewNullLogger(), src, xdsLis2, httpLis2, serveConfig{})
	if err == nil || !strings.Contains(err.Error(), "xds server on "+xdsLis2.Addr().String()) {
		t.Errorf("serve: %v", err)
	}
}

func TestServePprof(t *testing.T) {
	src := &fakeSource{meshes: make(chan *model.Mesh)}
	httpLis := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, hclog.NewNullLogger(), src, listen(t), httpLis, serveConfig{pprof: true}) }()
	defer func() {
		cancel()
		<-done
	}()
	base := "http://" + httpLis.Addr().String()
	if code, body := get(t, base+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/: %d %.200q", code, body)
	}
	if code, body := get(t, base+"/debug/pprof/cmdline"); code != http.StatusOK || body == "" {
		t.Errorf("/debug/pprof/cmdline: %d %q", code, body)
	}
	if code, body := get(t, base+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("/debug/pprof/goroutine: %d %.200q", code, body)
	}
	// The other endpoints are still there.
	if code, _ := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz with -pprof: %d", code)
	}
}

func TestWatchKind(t *testing.T) {
	for path, want := range map[string]string{
		"/v1/catalog/services":          "catalog/services",
		"/v1/catalog/service/web":       "catalog/service",
		"/v1/health/service/web":        "health/service",
		"/v1/health/connect/api":        "health/connect",
		"/v1/config/service-router":     "config/service-router",
		"/v1/config/service-router/web": "config/service-router",
		"/v1/connect/ca/roots":          "connect/ca/roots",
		"/v1/agent/connect/ca/leaf/web": "agent/connect/ca/leaf",
		"/v1/agent/self":                "agent/self",
		"/v1/status/leader":             "status/leader",
	} {
		if got := watchKind(path); got != want {
			t.Errorf("watchKind(%q) = %q, want %q", path, got, want)
		}
		if !slices.Contains(server.ConsulWatches, want) {
			t.Errorf("%q is not a watch the server counts", want)
		}
	}
}

// TestQueryErrors counts failed queries through the transport: error
// statuses and unreachable servers count, a cancelled query does not.
func TestQueryErrors(t *testing.T) {
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/health/connect/web":
			http.Error(w, "No cluster leader", http.StatusInternalServerError)
		case "/v1/catalog/services":
			<-r.Context().Done()
		default:
			fmt.Fprint(w, "[]")
		}
	}))
	defer fake.Close()
	q := &queryErrors{}
	var mu sync.Mutex
	counts := map[string]int{}
	q.countInto(func(w string) {
		mu.Lock()
		counts[w]++
		mu.Unlock()
	})
	c, err := newWatcherClient(fake.Listener.Addr().String(), q)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Health().Connect("web", "", true, nil); err == nil {
		t.Error("a 500 answered without an error")
	}
	if _, _, err := c.Catalog().Service("web", "", nil); err != nil {
		t.Errorf("a good query: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(20 * time.Millisecond)
		cancel()
	}()
	if _, _, err := c.Catalog().Services((&api.QueryOptions{}).WithContext(ctx)); err == nil {
		t.Error("a cancelled query answered")
	}
	closed := listen(t)
	addr := closed.Addr().String()
	closed.Close()
	dead, err := newWatcherClient(addr, q)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := dead.Catalog().Services(nil); err == nil {
		t.Error("a closed port answered")
	}
	mu.Lock()
	defer mu.Unlock()
	if want := map[string]int{"health/connect": 1, "catalog/services": 1}; !maps.Equal(counts, want) {
		t.Errorf("counted %v, want %v (the 500 and the closed port, not the good or the cancelled query)", counts, want)
	}
	if _, err := newWatcherClient("unix:///nonexistent/sock", &queryErrors{}); err != nil {
		t.Errorf("a unix address: %v", err)
	}
}
