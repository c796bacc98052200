package server

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/outrigger-mesh/outrigger/controlplane/translate"
)

func TestSotWServesProxy(t *testing.T) {
	h := start(t)
	h.fake.set("web-sidecar-proxy", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(7, "web-sidecar-proxy"))

	c := h.sotw(envoyNode("web-sidecar-proxy"))
	got := warmSotW(t, h, c, "api")
	want := map[string][]string{
		resource.ClusterType:  {"api"},
		resource.EndpointType: {"api"},
		resource.ListenerType: {"outbound_api"},
		resource.RouteType:    {"route_api"},
	}
	versions := map[string]bool{}
	for typ, names_ := range want {
		r := got[typ]
		if n := names(t, r.GetResources()); !slices.Equal(n, names_) {
			t.Errorf("%s: got %v, want %v", typ, n, names_)
		}
		if r.GetVersionInfo() == "" {
			t.Errorf("%s: empty version", typ)
		}
		versions[r.GetVersionInfo()] = true
	}
	if len(versions) != 4 {
		t.Errorf("each type should have its own version, got %v", versions)
	}
	for _, typ := range []typeIndex{typeCluster, typeEndpoint, typeListener, typeRoute} {
		if v := value(h.srv.metrics.acks[typ]); v != 1 {
			t.Errorf("xds_acks_total{type=%q} = %v, want 1", typ, v)
		}
		if v := value(h.srv.metrics.pushes[typ]); v != 1 {
			t.Errorf("xds_pushes_total{type=%q} = %v, want 1", typ, v)
		}
		if v := value(h.srv.metrics.requests[typ]); v != 2 {
			t.Errorf("xds_requests_total{type=%q} = %v, want 2", typ, v)
		}
	}
	if v := value(h.srv.metrics.streams); v != 1 {
		t.Errorf("xds_streams = %v, want 1", v)
	}
	if v := value(h.srv.metrics.meshIndex); v != 7 {
		t.Errorf("mesh_index = %v, want 7", v)
	}

	st := h.srv.Status()
	if len(st.Nodes) != 1 || st.Nodes[0].ID != "web-sidecar-proxy" || st.Nodes[0].Kind != "proxy" {
		t.Fatalf("status nodes: %+v", st.Nodes)
	}
	n := st.Nodes[0]
	for typ, name := range map[string]string{resource.ClusterType: "cluster", resource.ListenerType: "listener"} {
		if n.Acked[name] != got[typ].GetVersionInfo() || n.Served[name] != got[typ].GetVersionInfo() {
			t.Errorf("status %s: acked %q served %q, want %q", name, n.Acked[name], n.Served[name], got[typ].GetVersionInfo())
		}
	}
	if _, err := json.Marshal(st); err != nil {
		t.Fatal(err)
	}

	// The node's extension list is dropped once read; nothing keeps it.
	if exts := h.srv.proxyCache.GetStatusInfo("web-sidecar-proxy").GetNode().GetExtensions(); exts != nil {
		t.Errorf("node extensions kept: %v", exts)
	}
}

func TestDeltaServesProxy(t *testing.T) {
	h := start(t)
	h.fake.set("web-sidecar-proxy", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web-sidecar-proxy"))

	c := h.delta(envoyNode("web-sidecar-proxy"))
	c.subscribe(resource.ClusterType)
	r := c.recvType(resource.ClusterType)
	if n := deltaNames(t, r.GetResources()); !slices.Equal(n, []string{"api"}) {
		t.Fatalf("clusters: %v", n)
	}
	if r.GetResources()[0].GetVersion() == "" || r.GetSystemVersionInfo() == "" {
		t.Errorf("delta resource and system versions should be set: %q %q", r.GetResources()[0].GetVersion(), r.GetSystemVersionInfo())
	}
	c.ack(r)
	c.subscribe(resource.EndpointType, "api")
	r = c.recvType(resource.EndpointType)
	if n := deltaNames(t, r.GetResources()); !slices.Equal(n, []string{"api"}) {
		t.Fatalf("endpoints: %v", n)
	}
	c.ack(r)
	c.subscribe(resource.ListenerType)
	r = c.recvType(resource.ListenerType)
	if n := deltaNames(t, r.GetResources()); !slices.Equal(n, []string{"outbound_api"}) {
		t.Fatalf("listeners: %v", n)
	}
	c.ack(r)
	c.subscribe(resource.RouteType, "route_api")
	r = c.recvType(resource.RouteType)
	if n := deltaNames(t, r.GetResources()); !slices.Equal(n, []string{"route_api"}) {
		t.Fatalf("routes: %v", n)
	}
	c.ack(r)
	waitFor(t, "four acks", func() bool { return value(h.srv.metrics.acks[typeRoute]) == 1 })
	if v := value(h.srv.metrics.acks[typeCluster]); v != 1 {
		t.Errorf("cluster acks = %v", v)
	}
	if got := h.srv.Status().Nodes[0].Acked["cluster"]; got == "" {
		t.Error("a delta ACK should record the system version it answers")
	}
}

func TestSharedGroups(t *testing.T) {
	h := start(t)
	h.fake.set("a", sidecar("api", 15001, 9000))
	h.fake.set("b", sidecar("api", 15001, 9000)) // identical output, distinct objects
	h.srv.Update(mesh(1, "a", "b"))
	if v := value(h.srv.metrics.groups); v != 1 {
		t.Fatalf("snapshot_groups = %v, want 1", v)
	}
	if v := value(h.srv.metrics.proxies); v != 2 {
		t.Fatalf("proxies = %v, want 2", v)
	}
	ca := h.sotw(envoyNode("a"))
	ca.request(resource.ClusterType)
	ca.recvType(resource.ClusterType)
	cb := h.delta(envoyNode("b"))
	cb.subscribe(resource.ClusterType)
	cb.recvType(resource.ClusterType)
	sa, err := h.srv.proxyCache.GetSnapshot("a")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := h.srv.proxyCache.GetSnapshot("b")
	if err != nil {
		t.Fatal(err)
	}
	if sa != sb {
		t.Error("proxies with identical output should share one snapshot object")
	}
	st := h.srv.Status()
	if len(st.Groups) != 2 || st.Groups[0].Proxies != 2 || st.Groups[0].Connected != 2 || st.Groups[1].Kind != "proxyless" {
		t.Errorf("status groups: %+v", st.Groups)
	}

	h.fake.set("b", sidecar("api", 15001, 9001))
	h.srv.Update(mesh(2, "a", "b"))
	if v := value(h.srv.metrics.groups); v != 2 {
		t.Fatalf("snapshot_groups = %v, want 2", v)
	}
	h.fake.set("c", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(3, "a", "b", "c"))
	if v := value(h.srv.metrics.groups); v != 2 {
		t.Fatalf("snapshot_groups = %v after a third proxy like the first, want 2", v)
	}
}

// TestRegroupReachesConnectedNode moves a connected proxy out of a shared
// group: its open watches must be answered.
func TestRegroupReachesConnectedNode(t *testing.T) {
	for _, delta := range []bool{false, true} {
		name := "sotw"
		if delta {
			name = "delta"
		}
		t.Run(name, func(t *testing.T) {
			h := start(t)
			h.fake.set("a", sidecar("api", 15001, 9000))
			h.fake.set("b", sidecar("api", 15001, 9000))
			h.srv.Update(mesh(1, "a", "b"))
			var next func() []string
			if delta {
				c := h.delta(envoyNode("a"))
				c.subscribe(resource.EndpointType, "api")
				c.ack(c.recvType(resource.EndpointType))
				waitFor(t, "an open delta watch", func() bool { return h.watches("a", true) == 1 })
				next = func() []string { return deltaNames(t, c.recvType(resource.EndpointType).GetResources()) }
			} else {
				c := h.sotw(envoyNode("a"))
				c.request(resource.EndpointType, "api")
				c.ack(c.recvType(resource.EndpointType), "api")
				waitFor(t, "an open watch", func() bool { return h.watches("a", false) == 1 })
				next = func() []string { return names(t, c.recvType(resource.EndpointType).GetResources()) }
			}
			h.fake.set("a", sidecar("api", 15001, 9009))
			h.srv.Update(mesh(2, "a", "b"))
			if got := next(); !slices.Equal(got, []string{"api"}) {
				t.Fatalf("endpoints after the change: %v", got)
			}
			snap, _ := h.srv.proxyCache.GetSnapshot("a")
			ep := snap.GetResources(resource.EndpointType)["api"]
			if !strings.Contains(prototext.Format(ep), "9009") {
				t.Errorf("node a serves %v, want port 9009", ep)
			}
		})
	}
}

func TestSotWUnchangedTypeNotResent(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	c := h.sotw(envoyNode("web"))
	before := warmSotW(t, h, c, "api")

	// Only the endpoint changes.
	h.fake.set("web", sidecar("api", 15001, 9001))
	h.srv.Update(mesh(2, "web"))
	// SetSnapshot answers open watches synchronously: exactly one (EDS) was
	// answered, the other three stay open.
	if n := h.watches("web", false); n != 3 {
		t.Fatalf("open watches after an EDS-only change: %d, want 3 (only EDS answered)", n)
	}
	r := c.recvType(resource.EndpointType)
	if r.GetVersionInfo() == before[resource.EndpointType].GetVersionInfo() {
		t.Fatal("the EDS version did not change")
	}
	c.ack(r, "api")
	waitFor(t, "four open watches", func() bool { return h.watches("web", false) == 4 })
	for _, typ := range []typeIndex{typeCluster, typeListener, typeRoute} {
		if v := value(h.srv.metrics.pushes[typ]); v != 1 {
			t.Errorf("xds_pushes_total{type=%q} = %v, want 1 (not resent)", typ, v)
		}
	}
	if v := value(h.srv.metrics.pushes[typeEndpoint]); v != 2 {
		t.Errorf("endpoint pushes = %v, want 2", v)
	}

	// An update that changes nothing sends nothing.
	h.fake.set("web", sidecar("api", 15001, 9001))
	h.srv.Update(mesh(3, "web"))
	if n := h.watches("web", false); n != 4 {
		t.Fatalf("open watches after a no-op update: %d, want 4", n)
	}
}

func TestDeltaUnchangedTypeNotResent(t *testing.T) {
	h := start(t)
	two := func(port uint32) *translate.Resources {
		r := sidecar("api", 15001, 9000)
		o := sidecar("db", 15002, port)
		r.Listeners = append(r.Listeners, o.Listeners...)
		r.Routes = append(r.Routes, o.Routes...)
		r.Clusters = append(r.Clusters, o.Clusters...)
		r.Endpoints = append(r.Endpoints, o.Endpoints...)
		return r
	}
	h.fake.set("web", two(9100))
	h.srv.Update(mesh(1, "web"))
	c := h.delta(envoyNode("web"))
	for _, sub := range []struct {
		typ   string
		names []string
	}{
		{resource.ClusterType, nil},
		{resource.EndpointType, []string{"api", "db"}},
		{resource.ListenerType, nil},
		{resource.RouteType, []string{"route_api", "route_db"}},
	} {
		c.subscribe(sub.typ, sub.names...)
		r := c.recvType(sub.typ)
		if len(r.GetResources()) != 2 {
			t.Fatalf("%s: %d resources, want 2", sub.typ, len(r.GetResources()))
		}
		c.ack(r)
	}
	waitFor(t, "four open delta watches", func() bool { return h.watches("web", true) == 4 })

	h.fake.set("web", two(9101)) // only db's endpoints change
	h.srv.Update(mesh(2, "web"))
	if n := h.watches("web", true); n != 3 {
		t.Fatalf("open delta watches after an EDS-only change: %d, want 3", n)
	}
	r := c.recvType(resource.EndpointType)
	if got := deltaNames(t, r.GetResources()); !slices.Equal(got, []string{"db"}) {
		t.Fatalf("delta EDS update carries %v, want only the changed [db]", got)
	}
	if len(r.GetRemovedResources()) != 0 {
		t.Errorf("removed: %v", r.GetRemovedResources())
	}
	c.ack(r)
	waitFor(t, "four open delta watches", func() bool { return h.watches("web", true) == 4 })
	for _, typ := range []typeIndex{typeCluster, typeListener, typeRoute} {
		if v := value(h.srv.metrics.pushes[typ]); v != 1 {
			t.Errorf("xds_pushes_total{type=%q} = %v, want 1", typ, v)
		}
	}

	// Removing db: cluster, listener, route and endpoint removals.
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(3, "web"))
	r2 := c.recvType(resource.ClusterType)
	if len(r2.GetResources()) != 0 || !slices.Equal(r2.GetRemovedResources(), []string{"db"}) {
		t.Errorf("CDS after removing db: resources %v removed %v", deltaNames(t, r2.GetResources()), r2.GetRemovedResources())
	}
}

func TestUnknownNodeRefused(t *testing.T) {
	h := start(t)

	// Before any mesh: Unavailable, so clients retry.
	c := h.sotw(envoyNode("early"))
	c.request(resource.ClusterType)
	if err := c.streamErr(); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), `"early"`) {
		t.Fatalf("before the first mesh: %v", err)
	}

	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))

	for _, tc := range []struct {
		name string
		run  func(*corev3.Node) error
	}{
		{"sotw", func(n *corev3.Node) error {
			c := h.sotw(n)
			c.request(resource.ClusterType)
			return c.streamErr()
		}},
		{"delta", func(n *corev3.Node) error {
			c := h.delta(n)
			c.subscribe(resource.ClusterType)
			return c.streamErr()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run(envoyNode("db-sidecar-proxy"))
			if status.Code(err) != codes.NotFound {
				t.Fatalf("unknown node: %v, want NotFound", err)
			}
			msg := status.Convert(err).Message()
			if !strings.Contains(msg, `"db-sidecar-proxy"`) || !strings.Contains(msg, "not a registered connect-proxy") {
				t.Errorf("message does not name the node and the reason: %q", msg)
			}
			err = tc.run(&corev3.Node{UserAgentName: "envoy"})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "node.id") {
				t.Errorf("empty node id: %v", err)
			}
		})
	}
	if v := value(h.srv.metrics.rejectedStream); v != 5 {
		t.Errorf("xds_rejected_streams_total = %v, want 5", v)
	}
	h.logged("xDS stream refused", "node=db-sidecar-proxy")

	// Registered later, the next connection works.
	h.fake.set("db-sidecar-proxy", sidecar("db", 15002, 9000))
	h.srv.Update(mesh(2, "web", "db-sidecar-proxy"))
	c = h.sotw(envoyNode("db-sidecar-proxy"))
	c.request(resource.ClusterType)
	if got := names(t, c.recvType(resource.ClusterType).GetResources()); !slices.Equal(got, []string{"db"}) {
		t.Errorf("clusters: %v", got)
	}
	waitFor(t, "refused streams to be forgotten", func() bool { return value(h.srv.metrics.streams) == 1 && h.adsStreams() == 1 })
	if st := h.srv.Status(); len(st.Nodes) != 1 {
		t.Errorf("refused nodes should leave no state: %+v", st.Nodes)
	}
}

func TestProxylessClient(t *testing.T) {
	h := start(t)
	h.fake.proxyless = proxylessSet("api", "db")
	h.srv.Update(mesh(1))

	grpcNode := &corev3.Node{Id: "client-7f3a", UserAgentName: "gRPC Go", UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "1.85.0"}}
	c := h.sotw(grpcNode)
	c.request(resource.ListenerType, "api")
	r := c.recvType(resource.ListenerType)
	if got := names(t, r.GetResources()); !slices.Equal(got, []string{"api"}) {
		t.Fatalf("listeners: %v, want only the one asked for", got)
	}
	l := &listenerv3.Listener{}
	if err := r.GetResources()[0].UnmarshalTo(l); err != nil || l.GetApiListener() == nil {
		t.Fatalf("want an API listener: %v %v", l, err)
	}
	c.ack(r, "api")
	c.request(resource.RouteType, "route_api")
	if got := names(t, c.recvType(resource.RouteType).GetResources()); !slices.Equal(got, []string{"route_api"}) {
		t.Fatalf("routes: %v", got)
	}
	c.request(resource.ClusterType, "api")
	if got := names(t, c.recvType(resource.ClusterType).GetResources()); !slices.Equal(got, []string{"api"}) {
		t.Fatalf("clusters: %v", got)
	}
	st := h.srv.Status()
	if len(st.Nodes) != 1 || st.Nodes[0].Kind != "proxyless" || st.Nodes[0].Group == "" {
		t.Errorf("status: %+v", st.Nodes)
	}

	// A proxyless set change reaches the client.
	h.fake.mu.Lock()
	h.fake.proxyless = proxylessSet("api", "db", "cache")
	h.fake.mu.Unlock()
	h.srv.Update(mesh(2))
	r = c.recvType(resource.ListenerType)
	if got := names(t, r.GetResources()); !slices.Equal(got, []string{"api"}) {
		t.Fatalf("listeners after the change: %v", got)
	}
}

func TestTranslationFailureKeepsPrevious(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.fake.set("other", sidecar("db", 15001, 9000))
	h.srv.Update(mesh(1, "web", "other"))
	c := h.sotw(envoyNode("web"))
	warmSotW(t, h, c, "api")
	snap, _ := h.srv.proxyCache.GetSnapshot("web")

	dangling := sidecar("api", 15001, 9000)
	dangling.Endpoints = nil
	invalid := sidecar("api", 15001, 9000)
	invalid.Clusters[0].ConnectTimeout = durationpb.New(-time.Second)
	unnamed := sidecar("api", 15001, 9000)
	unnamed.Listeners[0].Name = ""
	dup := sidecar("api", 15001, 9000)
	dup.Routes = append(dup.Routes, dup.Routes[0])
	cases := []struct {
		name   string
		setup  func()
		logged string
	}{
		{"error", func() { h.fake.fail("web", errTranslate) }, errTranslate.Error()},
		{"dangling reference", func() { h.fake.set("web", dangling) }, `cluster \"api\" references endpoint \"api\"`},
		{"invalid resource", func() { h.fake.set("web", invalid) }, "Cluster.ConnectTimeout"},
		{"unnamed resource", func() { h.fake.set("web", unnamed) }, "listener[0] has no name"},
		{"duplicate", func() { h.fake.set("web", dup) }, `route \"route_api\" appears twice`},
		{"nil", func() { h.fake.set("web", nil) }, "no resources"},
		{"panic", func() { h.fake.panics["web"] = true }, "panicked: boom"},
	}
	for i, tc := range cases {
		tc.setup()
		h.fake.set("other", sidecar("db", 15001, 9000+uint32(i)+1)) // others still move on
		h.srv.Update(mesh(uint64(i+2), "web", "other"))
		if v := value(h.srv.metrics.translateErrs); v != float64(i+1) {
			t.Fatalf("%s: translate_errors_total = %v, want %d", tc.name, v, i+1)
		}
		h.logged("[ERROR]", "proxy=web", tc.logged)
		if now, _ := h.srv.proxyCache.GetSnapshot("web"); now != snap {
			t.Fatalf("%s: the proxy's snapshot changed", tc.name)
		}
		if n := h.watches("web", false); n != 4 {
			t.Fatalf("%s: something was pushed (%d open watches)", tc.name, n)
		}
		other := h.srv.Status().Groups
		if len(other) != 3 { // web's old group, other's new one, proxyless
			t.Fatalf("%s: groups %+v", tc.name, other)
		}
	}
	h.fake.panics["web"] = false

	// A proxy that never translated has no configuration, but it is still
	// accepted and gets one as soon as translation works.
	h.fake.fail("new", errTranslate)
	h.srv.Update(mesh(20, "web", "other", "new"))
	d := h.sotw(envoyNode("new"))
	d.request(resource.ClusterType)
	waitFor(t, "the new node's watch", func() bool { return h.watches("new", false) == 1 })
	h.fake.set("new", sidecar("cache", 15003, 9000))
	h.srv.Update(mesh(21, "web", "other", "new"))
	if got := names(t, d.recvType(resource.ClusterType).GetResources()); !slices.Equal(got, []string{"cache"}) {
		t.Fatalf("clusters: %v", got)
	}

	// The proxyless set keeps its previous configuration too.
	h.fake.mu.Lock()
	h.fake.plErr = errTranslate
	h.fake.mu.Unlock()
	pl := h.srv.proxylessGroup
	h.srv.Update(mesh(22, "web", "other", "new"))
	if h.srv.proxylessGroup != pl || pl == nil {
		t.Error("the proxyless set should be kept on a failed translation")
	}
	h.logged("[ERROR]", "proxyless", errTranslate.Error())
}

func TestDeregisteredWhileConnectedKeepsConfig(t *testing.T) {
	h := start(t)
	h.fake.set("web", sidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web"))
	c := h.sotw(envoyNode("web"))
	warmSotW(t, h, c, "api")
	snap, _ := h.srv.proxyCache.GetSnapshot("web")
	h.srv.Update(mesh(2))
	if now, _ := h.srv.proxyCache.GetSnapshot("web"); now != snap || h.watches("web", false) != 4 {
		t.Fatal("a deregistered proxy that is still connected should keep its configuration")
	}
	if v := value(h.srv.metrics.groups); v != 0 {
		t.Errorf("snapshot_groups = %v", v)
	}
	// Its next stream is refused.
	d := h.sotw(envoyNode("web-2"))
	d.request(resource.ClusterType)
	if err := d.streamErr(); status.Code(err) != codes.NotFound {
		t.Fatalf("got %v", err)
	}
}
