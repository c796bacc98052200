package translate

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// TestProxylessMirrorsGRPCChecks applies, offline, the checks grpc-go's
// xdsresource unmarshallers (v1.85.0, internal, so not importable) make on
// client-side resources: a NACK from any of them would leave gRPC clients
// without config. TestProxylessThroughGRPC runs the real client.
func TestProxylessMirrorsGRPCChecks(t *testing.T) {
	r, err := Proxyless(loadMesh(t, "proxyless"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Listeners) == 0 {
		t.Fatal("no listeners")
	}
	for _, l := range r.Listeners {
		checkGRPCListener(t, l)
	}
	for _, rc := range r.Routes {
		checkGRPCRoute(t, rc)
	}
	for _, c := range r.Clusters {
		checkGRPCCluster(t, c)
	}
	for _, e := range r.Endpoints {
		checkGRPCEndpoints(t, e)
	}
}

// unmarshal_lds.go processClientSideListener and processHTTPFilters.
func checkGRPCListener(t *testing.T, l *listenerv3.Listener) {
	t.Helper()
	a := l.GetApiListener().GetApiListener()
	h := &hcmv3.HttpConnectionManager{}
	if err := a.UnmarshalTo(h); err != nil {
		t.Fatalf("listener %q: api_listener is not an HttpConnectionManager: %v", l.GetName(), err)
	}
	if h.GetXffNumTrustedHops() != 0 || len(h.GetOriginalIpDetectionExtensions()) != 0 {
		t.Errorf("listener %q: xff/original ip detection must be unset", l.GetName())
	}
	if h.GetRds().GetConfigSource().GetAds() == nil || h.GetRds().GetRouteConfigName() != l.GetName() {
		t.Errorf("listener %q: want rds over ADS named after the listener, got %v", l.GetName(), h.GetRds())
	}
	fs := h.GetHttpFilters()
	if len(fs) != 1 || fs[0].GetName() == "" || !fs[0].GetTypedConfig().MessageIs(&routerv3.Router{}) {
		t.Errorf("listener %q: want exactly the router filter (terminal, last), got %v", l.GetName(), fs)
	}
}

// unmarshal_rds.go generateRDSUpdateFromRouteConfiguration and
// routesProtoToSlice; the resolver then needs a virtual host whose domain is
// the target's host (the service name).
func checkGRPCRoute(t *testing.T, rc *routev3.RouteConfiguration) {
	t.Helper()
	var vh *routev3.VirtualHost
	for _, v := range rc.GetVirtualHosts() {
		for _, d := range v.GetDomains() {
			if d == rc.GetName() {
				vh = v
			}
		}
	}
	if vh == nil {
		t.Fatalf("route %q: no virtual host for domain %q", rc.GetName(), rc.GetName())
	}
	for i, r := range vh.GetRoutes() {
		where := fmt.Sprintf("route %q [%d]", rc.GetName(), i)
		m := r.GetMatch()
		if m == nil || m.GetPathSpecifier() == nil {
			t.Errorf("%s: needs a match with a path specifier", where)
		}
		for _, h := range m.GetHeaders() {
			if sm, ok := h.GetHeaderMatchSpecifier().(*routev3.HeaderMatcher_StringMatch); ok && sm.StringMatch == nil {
				t.Errorf("%s: empty string matcher", where)
			}
			if h.GetName() != strings.ToLower(h.GetName()) {
				t.Errorf("%s: header %q never matches in gRPC (metadata keys are lower case)", where, h.GetName())
			}
		}
		a := r.GetRoute()
		if a == nil {
			t.Errorf("%s: needs a route action", where)
			continue
		}
		switch cs := a.GetClusterSpecifier().(type) {
		case *routev3.RouteAction_Cluster:
		case *routev3.RouteAction_WeightedClusters:
			total := uint64(0)
			for _, c := range cs.WeightedClusters.GetClusters() {
				total += uint64(c.GetWeight().GetValue())
			}
			if total == 0 || total > 1<<32-1 {
				t.Errorf("%s: weighted clusters total %d", where, total)
			}
		default:
			t.Errorf("%s: cluster specifier %T is ignored by gRPC", where, cs)
		}
		if rp := a.GetRetryPolicy(); rp != nil && rp.GetNumRetries() != nil && rp.GetNumRetries().GetValue() < 1 {
			t.Errorf("%s: num_retries must be >= 1", where)
		}
	}
}

// unmarshal_cds.go validateClusterAndConstructClusterUpdate.
func checkGRPCCluster(t *testing.T, c *clusterv3.Cluster) {
	t.Helper()
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
	case clusterv3.Cluster_RING_HASH:
		if c.GetRingHashLbConfig().GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
			t.Errorf("cluster %q: ring hash function must be XX_HASH", c.GetName())
		}
	case clusterv3.Cluster_LEAST_REQUEST:
		if cc := c.GetLeastRequestLbConfig().GetChoiceCount(); cc != nil && cc.GetValue() < 2 {
			t.Errorf("cluster %q: choice_count must be >= 2", c.GetName())
		}
	default:
		t.Errorf("cluster %q: lb_policy %v is not supported by gRPC", c.GetName(), c.GetLbPolicy())
	}
	if c.GetType() != clusterv3.Cluster_EDS || c.GetEdsClusterConfig().GetEdsConfig().GetAds() == nil {
		t.Errorf("cluster %q: must be EDS over ADS", c.GetName())
	}
	if len(c.GetTransportSocketMatches()) != 0 {
		t.Errorf("cluster %q: transport_socket_matches is rejected by gRPC", c.GetName())
	}
}

// unmarshal_eds.go parseEDSRespProto and parseEndpoints.
func checkGRPCEndpoints(t *testing.T, e *endpointv3.ClusterLoadAssignment) {
	t.Helper()
	priorities := map[uint32]bool{}
	addrs := map[string]bool{}
	for _, loc := range e.GetEndpoints() {
		if loc.GetLocality() == nil {
			t.Errorf("endpoints %q: a locality without ID is rejected", e.GetClusterName())
		}
		if loc.GetLoadBalancingWeight().GetValue() == 0 {
			t.Errorf("endpoints %q: a locality with weight 0 is ignored", e.GetClusterName())
		}
		if priorities[loc.GetPriority()] {
			t.Errorf("endpoints %q: duplicate locality at priority %d", e.GetClusterName(), loc.GetPriority())
		}
		priorities[loc.GetPriority()] = true
		for _, ep := range loc.GetLbEndpoints() {
			if w := ep.GetLoadBalancingWeight(); w != nil && w.GetValue() == 0 {
				t.Errorf("endpoints %q: endpoint weight 0 is rejected", e.GetClusterName())
			}
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			a := net.JoinHostPort(sa.GetAddress(), fmt.Sprint(sa.GetPortValue()))
			if addrs[a] {
				t.Errorf("endpoints %q: duplicate address %s", e.GetClusterName(), a)
			}
			addrs[a] = true
		}
	}
	for i := range priorities {
		if int(i) >= len(priorities) {
			t.Errorf("endpoints %q: priorities are not contiguous: %v", e.GetClusterName(), priorities)
		}
	}
}

// TestProxylessGoldenThroughGRPC serves the golden proxyless output (its
// addresses moved to closed loopback ports) to real grpc-go xDS clients
// and checks that every resource they fetch is ACKed.
func TestProxylessGoldenThroughGRPC(t *testing.T) {
	m := loadMesh(t, "proxyless")
	port := 1
	for _, name := range sortedKeys(m.Services) {
		for _, in := range m.Services[name].Instances {
			in.Service.Address, in.Service.Port = "127.0.0.1", port
			port++
		}
	}
	r, err := Proxyless(m)
	if err != nil {
		t.Fatal(err)
	}
	srv := startXDS(t, r)
	for _, l := range r.Listeners {
		cc := dialXDS(t, srv, l.GetName())
		cc.Connect()
	}
	srv.waitAcked(t, wantNames(r))
}

// TestProxylessThroughGRPC sends real RPCs through grpc-go's xDS resolver
// and balancers, configured only by Proxyless: a router match, a 50/50
// split over resolver subsets and EDS endpoints of two backends.
func TestProxylessThroughGRPC(t *testing.T) {
	v1, v2 := startBackend(t), startBackend(t)
	entry := func(id string, b *backend, version string) *api.ServiceEntry {
		return &api.ServiceEntry{
			Node:    &api.Node{Node: "node-" + id, Address: "127.0.0.1"},
			Service: &api.AgentService{ID: id, Service: "greeter", Address: "127.0.0.1", Port: b.port, Meta: map[string]string{"version": version}},
		}
	}
	sidecar := func(id string, version string) *api.ServiceEntry {
		return &api.ServiceEntry{
			Node: &api.Node{Node: "node-" + id, Address: "127.0.0.1"},
			Service: &api.AgentService{Kind: api.ServiceKindConnectProxy, ID: id + "-sidecar-proxy", Service: "greeter-sidecar-proxy",
				Port: 21000, Proxy: &api.AgentServiceConnectProxyConfig{DestinationServiceName: "greeter", DestinationServiceID: id}},
		}
	}
	m := &model.Mesh{
		Datacenter: "dc1",
		Services: map[string]*model.Service{"greeter": {
			Name:      "greeter",
			Instances: []*api.ServiceEntry{entry("greeter-1", v1, "v1"), entry("greeter-2", v2, "v2")},
			Sidecars:  []*api.ServiceEntry{sidecar("greeter-1", "v1"), sidecar("greeter-2", "v2")},
			Subsets: map[string][]*api.ServiceEntry{
				"v1": {sidecar("greeter-1", "v1")},
				"v2": {sidecar("greeter-2", "v2")},
			},
			Defaults: &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "greeter", Protocol: "grpc"},
			Router: &api.ServiceRouterConfigEntry{Kind: api.ServiceRouter, Name: "greeter", Routes: []api.ServiceRoute{{
				Match:       &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{Header: []api.ServiceRouteHTTPMatchHeader{{Name: "x-canary", Exact: "yes"}}}},
				Destination: &api.ServiceRouteDestination{ServiceSubset: "v2"},
			}}},
			Splitter: &api.ServiceSplitterConfigEntry{Kind: api.ServiceSplitter, Name: "greeter", Splits: []api.ServiceSplit{
				{Weight: 50, ServiceSubset: "v1"}, {Weight: 50, ServiceSubset: "v2"},
			}},
			Resolver: &api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: "greeter", Subsets: map[string]api.ServiceResolverSubset{
				"v1": {Filter: "Service.Meta.version == v1"}, "v2": {Filter: "Service.Meta.version == v2"},
			}},
		}},
	}
	r, err := Proxyless(m)
	if err != nil {
		t.Fatal(err)
	}
	srv := startXDS(t, r)
	client := healthpb.NewHealthClient(dialXDS(t, srv, "greeter"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	const n = 40
	canary := metadata.AppendToOutgoingContext(ctx, "x-canary", "yes")
	for i := 0; i < n; i++ {
		if _, err := client.Check(canary, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("canary RPC %d: %v (NACKs: %v)", i, err, srv.nackList())
		}
	}
	if got1, got2 := v1.calls.Load(), v2.calls.Load(); got1 != 0 || got2 != n {
		t.Fatalf("x-canary: yes went v1=%d v2=%d times, want all %d to v2", got1, got2, n)
	}
	for i := 0; i < n; i++ {
		if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
			t.Fatalf("RPC %d: %v", i, err)
		}
	}
	// 50/50: with 40 calls, one side getting none has probability 2^-39.
	if got1, got2 := v1.calls.Load(), v2.calls.Load()-n; got1 == 0 || got2 == 0 || got1+got2 != n {
		t.Fatalf("the 50/50 split sent v1=%d v2=%d of %d", got1, got2, n)
	}
	if nacks := srv.nackList(); len(nacks) > 0 {
		t.Fatalf("grpc-go NACKed: %v", nacks)
	}
}

// backend is a gRPC server with the health service that counts calls.
type backend struct {
	port  int
	calls atomic.Int64
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	b := &backend{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.port = lis.Addr().(*net.TCPAddr).Port
	s := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		b.calls.Add(1)
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return b
}

const xdsNode = "proxyless-test"

// xdsServer is a go-control-plane ADS server on a loopback port serving
// one snapshot, recording what the client ACKs and NACKs.
type xdsServer struct {
	addr string

	mu     sync.Mutex
	nonces map[string]map[string][]string // stream/type -> nonce -> names sent
	acked  map[string]map[string]bool     // type URL -> names ACKed
	nacks  []string
}

func startXDS(t *testing.T, r *Resources) *xdsServer {
	t.Helper()
	res := map[resourcev3.Type][]types.Resource{}
	for _, l := range r.Listeners {
		res[resourcev3.ListenerType] = append(res[resourcev3.ListenerType], l)
	}
	for _, x := range r.Routes {
		res[resourcev3.RouteType] = append(res[resourcev3.RouteType], x)
	}
	for _, c := range r.Clusters {
		res[resourcev3.ClusterType] = append(res[resourcev3.ClusterType], c)
	}
	for _, e := range r.Endpoints {
		res[resourcev3.EndpointType] = append(res[resourcev3.EndpointType], e)
	}
	snap, err := cachev3.NewSnapshot("1", res)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// ads=false: in ADS mode the snapshot cache answers a request only
	// when it names every resource of the type in the snapshot, and a gRPC
	// client asks only for what its target needs.
	cache := cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil)
	if err := cache.SetSnapshot(ctx, xdsNode, snap); err != nil {
		t.Fatal(err)
	}
	x := &xdsServer{nonces: map[string]map[string][]string{}, acked: map[string]map[string]bool{}}
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(id int64, req *discoverygrpc.DiscoveryRequest) error {
			x.request(id, req)
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoverygrpc.DiscoveryRequest, resp *discoverygrpc.DiscoveryResponse) {
			x.response(id, resp)
		},
	}
	gs := grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(ctx, cache, cb))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x.addr = lis.Addr().String()
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	return x
}

func (x *xdsServer) response(stream int64, resp *discoverygrpc.DiscoveryResponse) {
	var names []string
	for _, a := range resp.GetResources() {
		names = append(names, resourceName(a))
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	key := fmt.Sprintf("%d/%s", stream, resp.GetTypeUrl())
	if x.nonces[key] == nil {
		x.nonces[key] = map[string][]string{}
	}
	x.nonces[key][resp.GetNonce()] = names
}

// request records an ACK (the nonce of a response we sent, no error) or a
// NACK (error_detail set).
func (x *xdsServer) request(stream int64, req *discoverygrpc.DiscoveryRequest) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if req.GetErrorDetail() != nil {
		// The client repeats a NACK; keep each message once.
		if msg := req.GetErrorDetail().GetMessage(); !containsString(x.nacks, msg) {
			x.nacks = append(x.nacks, msg)
		}
		return
	}
	names, ok := x.nonces[fmt.Sprintf("%d/%s", stream, req.GetTypeUrl())][req.GetResponseNonce()]
	if !ok {
		return
	}
	if x.acked[req.GetTypeUrl()] == nil {
		x.acked[req.GetTypeUrl()] = map[string]bool{}
	}
	for _, n := range names {
		x.acked[req.GetTypeUrl()][n] = true
	}
}

func (x *xdsServer) nackList() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string{}, x.nacks...)
}

// waitAcked waits until every name in want (type URL -> names) is ACKed,
// failing at once on a NACK.
func (x *xdsServer) waitAcked(t *testing.T, want map[string][]string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		x.mu.Lock()
		var missing []string
		for typ, names := range want {
			for _, n := range names {
				if !x.acked[typ][n] {
					missing = append(missing, typ[strings.LastIndexByte(typ, '.')+1:]+" "+n)
				}
			}
		}
		nacks := append([]string{}, x.nacks...)
		x.mu.Unlock()
		sort.Strings(missing)
		switch {
		case len(nacks) > 0:
			t.Fatalf("grpc-go NACKed: %v", nacks)
		case len(missing) == 0:
			return
		case time.Now().After(deadline):
			t.Fatalf("not ACKed after 20s: %v", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func resourceName(a *anypb.Any) string {
	m, err := a.UnmarshalNew()
	if err != nil {
		return "?" + err.Error()
	}
	switch v := m.(type) {
	case *endpointv3.ClusterLoadAssignment:
		return v.GetClusterName()
	case interface{ GetName() string }:
		return v.GetName()
	}
	return "?"
}

// wantNames lists every resource of r by type URL: the listeners, and what
// their routes reach.
func wantNames(r *Resources) map[string][]string {
	want := map[string][]string{}
	add := func(typ string, n string) { want[typ] = append(want[typ], n) }
	for _, l := range r.Listeners {
		add(resourcev3.ListenerType, l.GetName())
	}
	for _, rc := range r.Routes {
		add(resourcev3.RouteType, rc.GetName())
		for _, vh := range rc.GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				names := []string{rt.GetRoute().GetCluster()}
				if wc := rt.GetRoute().GetWeightedClusters(); wc != nil {
					names = names[:0]
					for _, c := range wc.GetClusters() {
						names = append(names, c.GetName())
					}
				}
				for _, n := range names {
					add(resourcev3.ClusterType, n)
					add(resourcev3.EndpointType, n)
				}
			}
		}
	}
	return want
}

func dialXDS(t *testing.T, srv *xdsServer, service string) *grpc.ClientConn {
	t.Helper()
	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": %q}
	}`, srv.addr, xdsNode)
	rb, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+service, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(rb))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}
