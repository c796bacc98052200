package server

import (
	"strings"
	"testing"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

func TestNACK(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))

	c := h.sotw(envoyNode("web"))
	c.request(resource.ClusterType)
	r := c.recvType(resource.ClusterType)
	c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: r.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: "clusters[0].lb_policy: MAGLEV is not supported"}})
	waitFor(t, "a NACK", func() bool { return value(h.srv.metrics.nacks[typeCluster]) == 1 })
	h.logged("[WARN]", "NACK", "node=web", "type="+resource.ClusterType, "version="+r.GetVersionInfo(), "MAGLEV is not supported")
	if v := value(h.srv.metrics.acks[typeCluster]); v != 0 {
		t.Errorf("a NACK counted as ACK: %v", v)
	}
	// The rejected response is not resent (no NACK loop): the watch waits
	// for the next configuration.
	waitFor(t, "the CDS watch to be parked", func() bool { return h.watches("web", false) == 1 })
	if v := value(h.srv.metrics.pushes[typeCluster]); v != 1 {
		t.Fatalf("the NACKed response was resent: %v CDS pushes", v)
	}
	h.fake.set("web", sidecar("api", 15001, 9001))
	h.srv.Update(mesh(2, "web")) // EDS only: still nothing for CDS
	if v := value(h.srv.metrics.pushes[typeCluster]); v != 1 || h.watches("web", false) != 1 {
		t.Fatalf("CDS pushed (%v) though clusters did not change", v)
	}
	fixed := sidecar("api", 15001, 9001)
	fixed.Clusters[0].AltStatName = "api_fixed"
	h.fake.set("web", fixed)
	h.srv.Update(mesh(3, "web"))
	r2 := c.recvType(resource.ClusterType)
	if r2.GetVersionInfo() == r.GetVersionInfo() {
		t.Fatal("the new CDS response carries the rejected version")
	}

	st := h.srv.Status()
	if len(st.LastNACKs) != 1 || st.LastNACKs[0].Version != r.GetVersionInfo() || st.Nodes[0].LastNACK == nil ||
		!strings.Contains(st.Nodes[0].LastNACK.Error, "MAGLEV") {
		t.Errorf("status after a NACK: %+v / %+v", st.LastNACKs, st.Nodes)
	}

	// Delta NACKs are counted the same way.
	d := h.delta(envoyNode("web"))
	d.subscribe(resource.ListenerType)
	lr := d.recvType(resource.ListenerType)
	d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ListenerType, ResponseNonce: lr.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Message: "bad listener"}})
	waitFor(t, "a delta NACK", func() bool { return value(h.srv.metrics.nacks[typeListener]) == 1 })
	h.logged("NACK", "node=web", "version="+lr.GetSystemVersionInfo(), "bad listener")
}

func TestNACKOfSupersededVersionAnswered(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	c := h.sotw(envoyNode("web"))
	c.request(resource.ClusterType)
	r := c.recvType(resource.ClusterType)
	// The configuration moves on before the client NACKs.
	next := sidecar("api", 15001, 9000)
	next.Clusters[0].AltStatName = "v2"
	h.fake.set("web", next)
	h.srv.Update(mesh(2, "web"))
	c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: r.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Message: "rejected v1"}})
	r2 := c.recvType(resource.ClusterType)
	if r2.GetVersionInfo() == r.GetVersionInfo() {
		t.Fatal("got the rejected version again")
	}
}

func TestNACKHistoryBounded(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	c := h.sotw(envoyNode("web"))
	c.request(resource.ClusterType)
	r := c.recvType(resource.ClusterType)
	for range maxNACKs + 5 {
		c.send(&discovery.DiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: r.GetNonce(),
			ErrorDetail: &rpcstatus.Status{Message: "no"}})
	}
	waitFor(t, "every NACK", func() bool { return value(h.srv.metrics.nacks[typeCluster]) == maxNACKs+5 })
	if n := len(h.srv.Status().LastNACKs); n != maxNACKs {
		t.Errorf("status keeps %d NACKs, want %d", n, maxNACKs)
	}
}
