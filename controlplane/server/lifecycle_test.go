package server

import (
	"context"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestStreamCloseForgetsNode(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	a := h.sotw(envoyNode("web"))
	a.request(resource.ClusterType)
	a.recvType(resource.ClusterType)
	b := h.delta(envoyNode("web")) // a second stream of the same node
	b.subscribe(resource.ClusterType)
	b.recvType(resource.ClusterType)
	if st := h.srv.Status(); len(st.Nodes) != 1 || st.Nodes[0].Streams != 2 {
		t.Fatalf("status: %+v", st.Nodes)
	}
	a.cancel()
	waitFor(t, "one stream", func() bool { return value(h.srv.metrics.streams) == 1 })
	if _, err := h.srv.proxyCache.GetSnapshot("web"); err != nil {
		t.Fatal("the node's snapshot went while it still has a stream")
	}
	b.stream.CloseSend()
	waitFor(t, "no stream", func() bool { return value(h.srv.metrics.streams) == 0 })
	if _, err := h.srv.proxyCache.GetSnapshot("web"); err == nil {
		t.Error("the node's snapshot should be cleared with its last stream")
	}
	if st := h.srv.Status(); len(st.Nodes) != 0 {
		t.Errorf("status still lists %+v", st.Nodes)
	}
}

func TestRunStopsWithOpenStreams(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	c := h.sotw(envoyNode("web"))
	warmSotW(t, h, c, "api")
	d := h.delta(envoyNode("web"))
	d.subscribe(resource.ClusterType)
	d.recvType(resource.ClusterType)

	start := time.Now()
	h.stop()
	if took := time.Since(start); took >= stopTimeout {
		t.Errorf("stop took %s: streams were not ended before the graceful stop", took)
	}
	if err := c.streamErr(); err == nil {
		t.Error("the SotW stream should end")
	}
	if err := d.streamErr(); err == nil {
		t.Error("the delta stream should end")
	}
}

func TestFetchRefused(t *testing.T) {
	h := start(t)
	h.srv.Update(mesh(1))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	_, err := clusterservice.NewClusterDiscoveryServiceClient(h.conn).FetchClusters(ctx,
		&discovery.DiscoveryRequest{Node: envoyNode("web")})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("fetch: %v, want Unimplemented", err)
	}
}

func TestPerTypeServiceStream(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	st, err := clusterservice.NewClusterDiscoveryServiceClient(h.conn).StreamClusters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discovery.DiscoveryRequest{Node: envoyNode("web")}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, r.GetResources()); r.GetTypeUrl() != resource.ClusterType || !slices.Equal(got, []string{"api"}) {
		t.Errorf("CDS stream: %s %v", r.GetTypeUrl(), got)
	}
}

func TestConsulUpAndReady(t *testing.T) {
	s := New(Options{})
	if s.Ready() {
		t.Error("ready before any mesh")
	}
	s.SetConsulUp(true)
	if v := value(s.metrics.consulUp); v != 1 {
		t.Errorf("consul_up = %v", v)
	}
	s.SetConsulUp(false)
	if v := value(s.metrics.consulUp); v != 0 {
		t.Errorf("consul_up = %v", v)
	}
	s.Update(nil)
	if s.Ready() {
		t.Error("a nil mesh made the server ready")
	}
	s.Update(mesh(1))
	if !s.Ready() || !s.Status().Ready {
		t.Error("not ready after a mesh")
	}
}

// TestConcurrentUpdatesAndStreams exercises the locks (run with -race):
// updates, connects, disconnects and status reads at once.
func TestConcurrentUpdatesAndStreams(t *testing.T) {
	h := start(t)
	ids := []string{"a", "b", "c"}
	for _, id := range ids {
		h.fake.set(id, sidecar("api", 15001, 9000))
	}
	h.srv.Update(mesh(1, ids...))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 30 {
			for j, id := range ids {
				h.fake.set(id, sidecar("api", 15001, 9000+uint32((i+j)%3)))
			}
			h.srv.Update(mesh(uint64(i+2), ids...))
			h.srv.Status()
		}
	}()
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := ids[i%len(ids)]
			for range 5 {
				ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
				ads := discovery.NewAggregatedDiscoveryServiceClient(h.conn)
				if i%2 == 0 {
					st, err := ads.StreamAggregatedResources(ctx)
					if err == nil {
						err = st.Send(&discovery.DiscoveryRequest{Node: envoyNode(id), TypeUrl: resource.ClusterType})
					}
					if err == nil {
						_, err = st.Recv()
					}
					if err != nil {
						t.Errorf("sotw %s: %v", id, err)
					}
				} else {
					st, err := ads.DeltaAggregatedResources(ctx)
					if err == nil {
						err = st.Send(&discovery.DeltaDiscoveryRequest{Node: envoyNode(id), TypeUrl: resource.ClusterType})
					}
					if err == nil {
						_, err = st.Recv()
					}
					if err != nil {
						t.Errorf("delta %s: %v", id, err)
					}
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	waitFor(t, "every stream closed", func() bool { return value(h.srv.metrics.streams) == 0 })
	if st := h.srv.Status(); len(st.Nodes) != 0 {
		t.Errorf("nodes left: %+v", st.Nodes)
	}
	for _, id := range ids {
		if _, err := h.srv.proxyCache.GetSnapshot(id); err == nil {
			t.Errorf("snapshot of %s left after its streams closed", id)
		}
	}
}

func TestRunServeError(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis.Close()
	err = New(Options{}).Run(context.Background(), lis)
	if err == nil || !strings.Contains(err.Error(), lis.Addr().String()) {
		t.Fatalf("Run on a closed listener: %v", err)
	}
}

// TestRunStopsStuckStream: a client that stops reading keeps its stream's
// handler blocked in Send; the stop still finishes, by closing connections.
func TestRunStopsStuckStream(t *testing.T) {
	defer func(d time.Duration) { stopTimeout = d }(stopTimeout)
	stopTimeout = 200 * time.Millisecond
	h := start(t)
	h.fake.set("web", bigResources(9000))
	h.srv.Update(mesh(1, "web"))
	// Ask for two large types without reading: the second send blocks.
	h.stuckClient("web")
	waitFor(t, "both responses attempted", func() bool {
		return value(h.srv.metrics.pushes[typeCluster])+value(h.srv.metrics.pushes[typeListener]) == 2
	})
	begin := time.Now()
	h.stop()
	if took := time.Since(begin); took > stopTimeout+5*time.Second {
		t.Errorf("stop took %s", took)
	}
	h.logged("graceful stop timeout")
}

func TestRequestOnUnknownStream(t *testing.T) {
	s := New(Options{})
	_, err := s.request(streamKey{id: 99, delta: true}, envoyNode("web"), resource.ClusterType, "", "", nil)
	if status.Code(err) != codes.Internal {
		t.Errorf("request on a stream never opened: %v", err)
	}
}
