package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// adsStreams counts the streams the dispatcher can reach.
func (h *harness) adsStreams() int {
	h.srv.ads.mu.RLock()
	defer h.srv.ads.mu.RUnlock()
	return len(h.srv.ads.streams)
}

// TestADSStaleNonceIgnored: a request that answers an older response of its
// type is ignored (the protocol's rule); the client's answer to the latest
// one counts.
func TestADSStaleNonceIgnored(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	c := h.sotw(envoyNode("web"))
	warm := warmSotW(t, h, c, "api")
	first := warm[resource.EndpointType]

	h.fake.set("web", sidecar("api", 15001, 9001))
	h.srv.Update(mesh(2, "web"))
	second := c.recvType(resource.EndpointType)
	// Stale: it answers the first EDS response, at that version, so were
	// it handled the cache would answer it at once (the version changed).
	c.send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, VersionInfo: first.GetVersionInfo(),
		ResponseNonce: first.GetNonce(), ResourceNames: []string{"api"}})
	// Then a current LDS request that is answered at once: requests are
	// handled in order, so an answer to the stale one would come first.
	lds := warm[resource.ListenerType]
	c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ListenerType, ResponseNonce: lds.GetNonce()})
	if r := c.recv(); r.GetTypeUrl() != resource.ListenerType {
		t.Fatalf("got a %s response (version %s) before the LDS one: the stale request was answered",
			r.GetTypeUrl(), r.GetVersionInfo())
	}
	if v := value(h.srv.metrics.pushes[typeEndpoint]); v != 2 {
		t.Errorf("endpoint pushes = %v, want 2 (none for the stale request)", v)
	}
	// The answer to the latest response still counts.
	c.ack(second, "api")
	waitFor(t, "the EDS watch", func() bool { return h.watches("web", false) == 3 })
}

// TestADSSlowClientDoesNotHoldOthers: a client that stops reading blocks
// only its own stream; an update still reaches everyone else, and the
// stuck stream ends cleanly when its client goes.
func TestADSSlowClientDoesNotHoldOthers(t *testing.T) {
	h := start(t)
	h.fake.set("stuck", bigResources(9000))
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "stuck", "web"))
	_, cancel := h.stuckClient("stuck")
	c := h.sotw(envoyNode("web"))
	before := warmSotW(t, h, c, "api")

	// Both change: the stuck stream's new responses queue behind its
	// blocked send, web's go out.
	h.fake.set("stuck", bigResources(9001))
	h.fake.set("web", sidecar("api", 15001, 9001))
	h.srv.Update(mesh(2, "stuck", "web"))
	r := c.recvType(resource.EndpointType)
	if r.GetVersionInfo() == before[resource.EndpointType].GetVersionInfo() {
		t.Fatal("web got no new endpoints")
	}

	cancel()
	waitFor(t, "the stuck stream to end", func() bool { return value(h.srv.metrics.streams) == 1 })
	if n := h.adsStreams(); n != 1 {
		t.Errorf("%d streams reachable by the dispatcher, want 1 (web)", n)
	}
	if n := h.watches("stuck", false); n != -1 {
		t.Errorf("the stuck node's cache state outlived its stream (%d watches)", n)
	}
}

// TestADSStreamEndReleasesState: a closed stream leaves nothing behind in
// the dispatcher or the cache, in either protocol.
func TestADSStreamEndReleasesState(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))

	c := h.sotw(envoyNode("web"))
	warmSotW(t, h, c, "api")
	d := h.delta(envoyNode("web"))
	d.subscribe(resource.ClusterType)
	d.ack(d.recvType(resource.ClusterType))
	waitFor(t, "a delta watch", func() bool { return h.watches("web", true) == 1 })
	if n := h.adsStreams(); n != 2 {
		t.Fatalf("%d streams reachable, want 2", n)
	}

	d.cancel()
	waitFor(t, "the delta stream to end", func() bool { return h.adsStreams() == 1 })
	if n := h.watches("web", true); n != 0 {
		t.Errorf("%d delta watches left after the delta stream ended", n)
	}
	if n := h.watches("web", false); n != 4 {
		t.Errorf("the SotW stream lost its watches: %d", n)
	}
	c.cancel()
	waitFor(t, "no stream", func() bool { return h.adsStreams() == 0 && value(h.srv.metrics.streams) == 0 })
}

// TestADSRequestWithoutType: ADS needs every request's type.
func TestADSRequestWithoutType(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	c := h.sotw(envoyNode("web"))
	c.send(&discovery.DiscoveryRequest{})
	if err := c.streamErr(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "type URL") {
		t.Errorf("SotW request without a type: %v", err)
	}
	d := h.delta(envoyNode("web"))
	d.send(&discovery.DeltaDiscoveryRequest{})
	if err := d.streamErr(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "type URL") {
		t.Errorf("delta request without a type: %v", err)
	}
}

// TestADSRequestWithoutNode: the first request must carry the node.
func TestADSRequestWithoutNode(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	c := h.sotw(nil)
	c.stream.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType})
	if err := c.streamErr(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "node.id") {
		t.Errorf("SotW without a node: %v", err)
	}
	d := h.delta(nil)
	d.stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType})
	if err := d.streamErr(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "node.id") {
		t.Errorf("delta without a node: %v", err)
	}
	waitFor(t, "no stream", func() bool { return h.adsStreams() == 0 && value(h.srv.metrics.streams) == 0 })
}

// TestADSTooManyTypes: a stream may not open watches without bound; the
// refusal ends the stream and releases everything it held.
func TestADSTooManyTypes(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	c := h.sotw(envoyNode("web"))
	c.request(resource.ClusterType)
	c.recvType(resource.ClusterType)
	for i := range maxTypes {
		c.request(fmt.Sprintf("type.googleapis.com/example.Unknown%d", i))
	}
	err := c.streamErr()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "resource types") {
		t.Fatalf("stream asking for %d types: %v", maxTypes+1, err)
	}
	waitFor(t, "the stream's state to go", func() bool {
		return h.adsStreams() == 0 && value(h.srv.metrics.streams) == 0 && h.watches("web", false) == -1
	})
}

// TestADSReceiverBackpressure: while the worker is stuck sending to a
// client that stopped reading, the stream queues at most
// maxPendingRequests requests; the rest wait in gRPC's flow control.
func TestADSReceiverBackpressure(t *testing.T) {
	h := start(t)
	h.fake.set("stuck", bigResources(9000))
	h.srv.Update(mesh(1, "stuck"))
	st, cancel := h.stuckClient("stuck")
	// Never read: the second response blocks the worker in Send. Then a
	// stream of (stale) requests the worker cannot get to.
	waitFor(t, "both responses attempted", func() bool {
		return value(h.srv.metrics.pushes[typeCluster])+value(h.srv.metrics.pushes[typeListener]) == 2
	})
	const n = 200
	sent := make(chan int, 1)
	go func() {
		i := 0
		for ; i < n; i++ {
			if st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.RouteType, ResponseNonce: fmt.Sprint("stale-", i)}) != nil {
				break
			}
		}
		sent <- i
	}()
	var s *adsStream
	waitFor(t, "the stream", func() bool {
		h.srv.ads.mu.RLock()
		defer h.srv.ads.mu.RUnlock()
		for _, x := range h.srv.ads.streams {
			s = x
		}
		return s != nil
	})
	queued := func() (pending, events int) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.pending, len(s.queue)
	}
	waitFor(t, "the request queue to fill", func() bool { p, _ := queued(); return p == maxPendingRequests })
	// An observation window: the receiver must stay blocked.
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if p, e := queued(); p > maxPendingRequests || e > maxPendingRequests+2 {
			t.Fatalf("%d requests (%d events) queued, want at most %d", p, e, maxPendingRequests)
		}
	}
	cancel()
	waitFor(t, "the stream to end", func() bool { return h.adsStreams() == 0 && value(h.srv.metrics.streams) == 0 })
	<-sent
}

// TestADSDispatcherEnds: once the server has stopped and its streams are
// gone, the dispatcher ends (a stopped server leaves no goroutine behind).
func TestADSDispatcherEnds(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	c := h.sotw(envoyNode("web"))
	warmSotW(t, h, c, "api")
	h.stop()
	select {
	case <-h.srv.ads.idle:
	case <-time.After(waitTimeout):
		t.Fatal("the dispatcher is still running after the server stopped")
	}
	if st := h.srv.ads.open(context.Background(), false); st != nil {
		t.Error("a stream opened on a stopped server")
	}
}
