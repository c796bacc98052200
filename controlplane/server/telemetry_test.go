package server

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
)

// samples reads a histogram's observation count.
func samples(o prometheus.Observer) uint64 {
	var d dto.Metric
	if err := o.(prometheus.Metric).Write(&d); err != nil {
		panic(err)
	}
	return d.GetHistogram().GetSampleCount()
}

// series counts the series of the named metric family in reg.
func series(t *testing.T, reg prometheus.Gatherer, name string) int {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return len(f.GetMetric())
		}
	}
	return 0
}

func outriggerNode(id, cluster string) *corev3.Node {
	return &corev3.Node{Id: id, Cluster: cluster, UserAgentName: "outrigger",
		UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "0.9.1"}}
}

func TestConnectedProxiesAndDebugState(t *testing.T) {
	h := start(t)
	h.fake.set("web-sidecar-proxy", sidecar("api", 15001, 9000))
	h.fake.set("db-sidecar-proxy", sidecar("api", 15002, 9000))
	h.fake.proxyless = proxylessSet("api")
	m := mesh(1, "web-sidecar-proxy", "db-sidecar-proxy")
	m.Proxies["web-sidecar-proxy"].ServiceProxy = &api.AgentServiceConnectProxyConfig{DestinationServiceName: "web"}
	h.srv.Update(m)

	// Our sidecar over state of the world, Envoy over delta (its version in
	// user_agent_build_version), a proxyless gRPC client.
	ours := h.sotw(outriggerNode("web-sidecar-proxy", "ignored-cluster"))
	warmSotW(t, h, ours, "api")
	envoy := h.delta(&corev3.Node{Id: "db-sidecar-proxy", Cluster: "db", UserAgentName: "envoy",
		UserAgentVersionType: &corev3.Node_UserAgentBuildVersion{UserAgentBuildVersion: &corev3.BuildVersion{
			Version: &typev3.SemanticVersion{MajorNumber: 1, MinorNumber: 36, Patch: 2}}}})
	envoy.subscribe(resource.ClusterType)
	cr := envoy.recvType(resource.ClusterType)
	envoy.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: cr.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Message: "clusters[0]: unsupported"}})
	grpcClient := h.sotw(&corev3.Node{Id: "client-1", Cluster: "checkout", UserAgentName: "gRPC Go",
		UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "1.85.0"}})
	grpcClient.request(resource.ListenerType, "api")
	grpcClient.ack(grpcClient.recvType(resource.ListenerType), "api")

	waitFor(t, "three connected clients and the NACK", func() bool {
		return len(h.srv.Proxies()) == 3 && value(h.srv.metrics.nacks[typeCluster]) == 1 &&
			value(h.srv.metrics.acks[typeListener]) == 2
	})
	want := map[[2]string]float64{
		{"outrigger", "sotw"}: 1, {"envoy", "delta"}: 1, {"grpc", "sotw"}: 1,
	}
	for a := range numAgents {
		for md := range numModes {
			if got, w := value(h.srv.metrics.connected[a][md]), want[[2]string{a.String(), md.String()}]; got != w {
				t.Errorf("connected_proxies{type=%q,mode=%q} = %v, want %v", a, md, got, w)
			}
		}
	}
	// The series exist from the start, also for the combinations never seen.
	if n := series(t, h.reg, "outrigger_cp_connected_proxies"); n != int(numAgents)*int(numModes) {
		t.Errorf("%d connected_proxies series, want %d", n, int(numAgents)*int(numModes))
	}

	ps := h.srv.Proxies()
	byID := map[string]ProxyStatus{}
	for _, p := range ps {
		byID[p.ID] = p
	}
	web, db, cl := byID["web-sidecar-proxy"], byID["db-sidecar-proxy"], byID["client-1"]
	if web.Service != "web" || web.Kind != kindProxy || web.Type != "outrigger" || web.UserAgent != "outrigger" ||
		web.UserAgentVersion != "0.9.1" || web.Mode != "sotw" || web.Streams != 1 || web.ConnectedSince.IsZero() {
		t.Errorf("our sidecar: %+v", web)
	}
	for _, typ := range []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType} {
		rs := web.Resources[typ]
		if rs.Acked == "" || rs.Acked != rs.Served || rs.AckedAt.IsZero() || rs.LastNACK != nil {
			t.Errorf("our sidecar, %s: %+v", typ, rs)
		}
	}
	if db.Service != "db" || db.Type != "envoy" || db.UserAgentVersion != "1.36.2" || db.Mode != "delta" {
		t.Errorf("envoy: %+v", db)
	}
	if rs := db.Resources[resource.ClusterType]; rs.Acked != "" || rs.LastNACK == nil || rs.LastNACK.Version != cr.GetSystemVersionInfo() ||
		!strings.Contains(rs.LastNACK.Error, "unsupported") || rs.LastNACK.Time.IsZero() {
		t.Errorf("envoy's CDS after a NACK: %+v", rs)
	}
	if cl.Kind != kindProxyless || cl.Type != "grpc" || cl.Service != "checkout" || cl.UserAgentVersion != "1.85.0" ||
		cl.Resources[resource.ListenerType].Acked == "" {
		t.Errorf("proxyless client: %+v", cl)
	}
	if st := h.srv.Status(); len(st.Nodes) != 3 || st.Nodes[0].Type != "grpc" || st.Nodes[0].Mode != "sotw" || st.Nodes[0].UserAgent != "gRPC Go" {
		t.Errorf("status nodes carry no agent: %+v", st.Nodes)
	}
	h.logged("[INFO]", "xDS client connected", "node=db-sidecar-proxy", "type=envoy", "user_agent_version=1.36.2", "mode=delta")

	// A client going away leaves the gauge.
	grpcClient.cancel()
	waitFor(t, "the gRPC client to be gone", func() bool { return value(h.srv.metrics.connected[agentGRPC][modeSotW]) == 0 })
	h.logged("xDS client disconnected", "node=client-1")
	if len(h.srv.Proxies()) != 2 {
		t.Errorf("proxies after a disconnect: %+v", h.srv.Proxies())
	}
}

func TestUnknownAgentAndLongVersion(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	c := h.sotw(&corev3.Node{Id: "web", UserAgentName: "linkerd", UserAgentVersionType: &corev3.Node_UserAgentVersion{
		UserAgentVersion: strings.Repeat("9", 500)}})
	c.request(resource.ClusterType)
	c.recvType(resource.ClusterType)
	waitFor(t, "the client", func() bool { return len(h.srv.Proxies()) == 1 })
	p := h.srv.Proxies()[0]
	if p.Type != "other" || len(p.UserAgentVersion) != maxAgentLen || p.Service != "" {
		t.Errorf("unknown agent: type %q, version of %d bytes, service %q", p.Type, len(p.UserAgentVersion), p.Service)
	}
	if got := truncate(strings.Repeat("x", maxAgentLen-1) + "é"); got != strings.Repeat("x", maxAgentLen-1) {
		t.Errorf("truncate cut a rune: %q", got)
	}
	if v := value(h.srv.metrics.connected[agentOther][modeSotW]); v != 1 {
		t.Errorf("connected_proxies{type=other} = %v", v)
	}
}

func TestPushLatency(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	c := h.sotw(envoyNode("web"))
	warmSotW(t, h, c, "api")
	// The first configuration of a new client is no push of a change.
	for typ := range numTypes {
		if n := samples(h.srv.metrics.pushLatency[typ]); n != 0 {
			t.Fatalf("push latency observed at connect for %s: %d", typ, n)
		}
	}

	// A change to the endpoints only: one observation, for EDS, at its ACK.
	h.fake.set("web", sidecar("api", 15001, 9001))
	h.srv.Update(mesh(2, "web"))
	r := c.recvType(resource.EndpointType)
	if n := samples(h.srv.metrics.pushLatency[typeEndpoint]); n != 0 {
		t.Fatalf("observed before the ACK: %d", n)
	}
	c.ack(r, "api")
	waitFor(t, "the EDS push latency", func() bool { return samples(h.srv.metrics.pushLatency[typeEndpoint]) == 1 })
	for _, typ := range []typeIndex{typeCluster, typeListener, typeRoute} {
		if n := samples(h.srv.metrics.pushLatency[typ]); n != 0 {
			t.Errorf("push latency for unchanged %s: %d", typ, n)
		}
	}
	// A repeated ACK of the same version observes nothing more.
	c.ack(r, "api")
	waitFor(t, "the second ACK", func() bool { return value(h.srv.metrics.acks[typeEndpoint]) == 3 })
	if n := samples(h.srv.metrics.pushLatency[typeEndpoint]); n != 1 {
		t.Errorf("a repeated ACK observed again: %d", n)
	}

	// A NACKed change is no push: nothing observed, then the next change is.
	h.fake.set("web", sidecar("api", 15001, 9002))
	h.srv.Update(mesh(3, "web"))
	r = c.recvType(resource.EndpointType)
	c.send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: r.GetNonce(), VersionInfo: "",
		ResourceNames: []string{"api"}, ErrorDetail: &rpcstatus.Status{Message: "no"}})
	waitFor(t, "the NACK", func() bool { return value(h.srv.metrics.nacks[typeEndpoint]) == 1 })
	h.fake.set("web", sidecar("api", 15001, 9003))
	h.srv.Update(mesh(4, "web"))
	c.ack(c.recvType(resource.EndpointType), "api")
	waitFor(t, "the second EDS push latency", func() bool { return samples(h.srv.metrics.pushLatency[typeEndpoint]) == 2 })

	// Delta clients are measured the same way.
	d := h.delta(outriggerNode("web", "api"))
	d.subscribe(resource.ClusterType)
	d.ack(d.recvType(resource.ClusterType))
	waitFor(t, "the delta ACK", func() bool { return value(h.srv.metrics.acks[typeCluster]) == 2 })
	next := sidecar("api", 15001, 9003)
	next.Clusters[0].AltStatName = "v2"
	h.fake.set("web", next)
	h.srv.Update(mesh(5, "web"))
	d.ack(d.recvType(resource.ClusterType))
	c.ack(c.recvType(resource.ClusterType))
	waitFor(t, "the CDS push latency of both streams' ACKs", func() bool {
		return samples(h.srv.metrics.pushLatency[typeCluster]) == 1
	})
}

func TestConsulWatchError(t *testing.T) {
	h := start(t)
	h.srv.ConsulWatchError("health/connect")
	h.srv.ConsulWatchError("health/connect")
	h.srv.ConsulWatchError("v1/something/new")
	for watch, want := range map[string]float64{"health/connect": 2, "other": 1, "catalog/services": 0} {
		if got := value(h.srv.metrics.consulErrs[watch]); got != want {
			t.Errorf("consul_watch_errors_total{watch=%q} = %v, want %v", watch, got, want)
		}
	}
	if n := series(t, h.reg, "outrigger_cp_consul_watch_errors_total"); n != len(ConsulWatches) {
		t.Errorf("%d watch series, want %d (one per kind, no client-chosen values)", n, len(ConsulWatches))
	}
}
