package server_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
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
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
	"github.com/outrigger-mesh/outrigger/proxy/server"
)

// controlPlane is a plain go-control-plane ADS server (SotW and delta) on a
// fixed loopback address, restartable on the same port.
type controlPlane struct {
	t     *testing.T
	addr  string
	cache cachev3.SnapshotCache
	grpc  *grpc.Server
	done  chan struct{}

	mu    sync.Mutex
	nacks []string
	acks  int
}

func newControlPlane(t *testing.T) *controlPlane {
	cp := &controlPlane{t: t, cache: cachev3.NewSnapshotCache(true, cachev3.IDHash{}, nil)}
	cp.start("127.0.0.1:0")
	t.Cleanup(cp.stop)
	return cp
}

func (cp *controlPlane) start(addr string) {
	cp.t.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old socket may linger a moment
	}
	if err != nil {
		cp.t.Fatalf("control plane listen: %v", err)
	}
	cp.addr = ln.Addr().String()
	cb := serverv3.CallbackFuncs{
		StreamRequestFunc: func(_ int64, r *discoverygrpc.DiscoveryRequest) error {
			cp.record(r.GetErrorDetail().GetMessage(), r.GetResponseNonce() != "")
			return nil
		},
		StreamDeltaRequestFunc: func(_ int64, r *discoverygrpc.DeltaDiscoveryRequest) error {
			cp.record(r.GetErrorDetail().GetMessage(), r.GetResponseNonce() != "")
			return nil
		},
	}
	srv := serverv3.NewServer(context.Background(), cp.cache, cb)
	cp.grpc = grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(cp.grpc, srv)
	cp.done = make(chan struct{})
	go func() { defer close(cp.done); _ = cp.grpc.Serve(ln) }()
}

func (cp *controlPlane) record(nack string, reply bool) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	switch {
	case nack != "":
		cp.nacks = append(cp.nacks, nack)
	case reply:
		cp.acks++
	}
}

func (cp *controlPlane) nacked() []string {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	return append([]string(nil), cp.nacks...)
}

func (cp *controlPlane) stop() {
	if cp.grpc != nil {
		cp.grpc.Stop()
		<-cp.done
		cp.grpc = nil
	}
}

func (cp *controlPlane) restart() {
	cp.stop()
	cp.start(cp.addr)
}

// set puts a snapshot in force for node "proxy-1".
func (cp *controlPlane) set(version string, rs ...types.Resource) {
	cp.t.Helper()
	byType := map[string][]types.Resource{}
	for _, r := range rs {
		var u string
		switch r.(type) {
		case *listenerv3.Listener:
			u = resourcev3.ListenerType
		case *routev3.RouteConfiguration:
			u = resourcev3.RouteType
		case *clusterv3.Cluster:
			u = resourcev3.ClusterType
		case *endpointv3.ClusterLoadAssignment:
			u = resourcev3.EndpointType
		}
		byType[u] = append(byType[u], r)
	}
	snap, err := cachev3.NewSnapshot(version, byType)
	if err != nil {
		cp.t.Fatal(err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), "proxy-1", snap); err != nil {
		cp.t.Fatal(err)
	}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func xdsListener(t *testing.T, name string, port int, rds, statPrefix string) *listenerv3.Listener {
	router := mustAny(t, &routerv3.Router{})
	hcm := mustAny(t, &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: rds,
			ConfigSource: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router}}},
	})
	return &listenerv3.Listener{
		Name:    name,
		Address: sockAddr("127.0.0.1", port),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm},
		}}}},
	}
}

func sockAddr(host string, port int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

func xdsRoute(name, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
		}},
	}}}
}

func xdsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ConnectTimeout:       durationpb.New(time.Second),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
			ResourceApiVersion:    corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		}},
	}
}

func xdsEndpoints(cluster string, addrs ...string) *endpointv3.ClusterLoadAssignment {
	var lbs []*endpointv3.LbEndpoint
	for _, a := range addrs {
		h, p, _ := net.SplitHostPort(a)
		port, _ := strconv.Atoi(p)
		lbs = append(lbs, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: sockAddr(h, port)},
		}})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: cluster, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}}
}

func namedBackend(t *testing.T, name string) string {
	return backend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, name)
	}))
}

func freePort(t *testing.T) int {
	_, p := hostPort(t, freeAddr(t))
	n, _ := strconv.Atoi(p)
	return n
}

// startADSProxy runs the proxy with dynamic_resources pointing at cp.
func startADSProxy(t *testing.T, cp *controlPlane, delta, google bool) *server.Server {
	t.Helper()
	api := "GRPC"
	if delta {
		api = "DELTA_GRPC"
	}
	h, p := hostPort(t, cp.addr)
	service := "{envoy_grpc: {cluster_name: xds}}"
	if google {
		service = fmt.Sprintf("{google_grpc: {target_uri: %q, stat_prefix: xds}}", cp.addr)
	}
	yaml := fmt.Sprintf(`node: {id: proxy-1, cluster: web}
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
dynamic_resources:
  ads_config:
    api_type: %s
    transport_api_version: V3
    grpc_services: [%s]
  lds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 10s}
  cds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 10s}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %q, port_value: %s}}}}]}]
`, api, service, h, p)
	b, err := bootstrap.Load("", yaml)
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	srv, err := server.New(server.Options{
		Logger:       hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: testWriter{t}}),
		Bootstrap:    b,
		DrainTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return")
		}
	})
	return srv
}

// body GETs url and returns the body, or "error: ..." on failure.
func body(c *http.Client, url string) string {
	resp, err := c.Get(url)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Sprintf("status %d: %s", resp.StatusCode, b)
	}
	return string(b)
}

func waitBody(t *testing.T, c *http.Client, url, want string) {
	t.Helper()
	var last string
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if last = body(c, url); last == want {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("GET %s: last answer %q, want %q", url, last, want)
}

// The proxy follows a plain go-control-plane server through every kind of
// change, keeps serving through NACKs and an outage, and resyncs after the
// server restarts — over state-of-the-world and delta alike.
func TestADSFollowsControlPlane(t *testing.T) {
	for _, tc := range []struct {
		name          string
		delta, google bool
	}{
		{"sotw envoy_grpc", false, false},
		{"delta envoy_grpc", true, false},
		{"sotw google_grpc", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) { testADS(t, tc.delta, tc.google) })
	}
}

func testADS(t *testing.T, delta, google bool) {
	a, b := namedBackend(t, "A"), namedBackend(t, "B")
	cp := newControlPlane(t)
	port := freePort(t)
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	cp.set("1", xdsListener(t, "out", port, "r", "out"), xdsRoute("r", "c"), xdsCluster("c"), xdsEndpoints("c", a))

	srv := startADSProxy(t, cp, delta, google)
	waitFor(t, 10*time.Second, "proxy ready", srv.Ready)
	c := h1Client()
	if got := body(c, url); got != "A" {
		t.Fatalf("first config: got %q, want A", got)
	}

	// EDS: the endpoints move.
	cp.set("2", xdsListener(t, "out", port, "r", "out"), xdsRoute("r", "c"), xdsCluster("c"), xdsEndpoints("c", b))
	waitBody(t, c, url, "B")

	// RDS and CDS: the route points at a new cluster.
	cp.set("3", xdsListener(t, "out", port, "r", "out"), xdsRoute("r", "c2"),
		xdsCluster("c"), xdsEndpoints("c", b), xdsCluster("c2"), xdsEndpoints("c2", a))
	waitBody(t, c, url, "A")

	// LDS: the listener changes on the same port while traffic flows; no
	// request may fail during the handoff.
	var failures atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl := h1Client()
		for i := 0; i < 5000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if got := body(cl, url); got != "A" && got != "B" {
				failures.Add(1)
				t.Logf("during listener update: %s", got)
			}
		}
	}()
	cp.set("4", xdsListener(t, "out", port, "r2", "out-v2"), xdsRoute("r2", "c"),
		xdsCluster("c"), xdsEndpoints("c", b), xdsCluster("c2"), xdsEndpoints("c2", a))
	waitBody(t, c, url, "B")
	close(stop)
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d requests failed while the listener was replaced", n)
	}

	// NACK: a cluster we do not support is refused with a clear detail and
	// the previous configuration keeps serving.
	bad := xdsCluster("c3")
	bad.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED
	cp.set("5", xdsListener(t, "out", port, "r2", "out-v2"), xdsRoute("r2", "c"),
		xdsCluster("c"), xdsEndpoints("c", b), bad, xdsEndpoints("c3", a))
	waitFor(t, 10*time.Second, "a NACK", func() bool { return len(cp.nacked()) > 0 })
	if n := cp.nacked(); !strings.Contains(n[0], "lb_policy") || !strings.Contains(n[0], "CLUSTER_PROVIDED") {
		t.Errorf("NACK detail %q does not name lb_policy CLUSTER_PROVIDED", n[0])
	}
	if got := body(c, url); got != "B" {
		t.Errorf("after a NACK: got %q, want B (the last good config)", got)
	}
	// /config_dump shows the refusal next to the versions in force.
	dump := body(c, "http://"+srv.AdminAddr()+"/config_dump")
	if !strings.Contains(dump, `"@type":"outrigger.XdsStatus"`) || !strings.Contains(dump, "CLUSTER_PROVIDED") {
		t.Errorf("/config_dump does not show the xDS status with the NACK:\n%s", dump)
	}
	// So do the metrics: responses by result, and the version in force.
	metrics := body(c, "http://"+srv.AdminAddr()+"/stats/prometheus")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`outrigger_xds_responses_total\{result="rejected",type="cluster"\} [1-9]`),
		regexp.MustCompile(`outrigger_xds_responses_total\{result="accepted",type="listener"\} [1-9]`),
		regexp.MustCompile(`outrigger_xds_version_info\{type="cluster",version="[^"]+"\} 1`),
	} {
		if !want.MatchString(metrics) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(metrics, "outrigger_xds"))
		}
	}

	// A listener on a port something else holds: the bind fails, the
	// update is NACKed naming it, the old listeners keep serving.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, busyPort := hostPort(t, busy.Addr().String())
	bp, _ := strconv.Atoi(busyPort)
	before := len(cp.nacked())
	cp.set("5b", xdsListener(t, "out", port, "r2", "out-v2"), xdsListener(t, "taken", bp, "r2", "taken"),
		xdsRoute("r2", "c"), xdsCluster("c"), xdsEndpoints("c", b))
	// Wait for this update's NACK: a repeat of the previous one (the client
	// NACKs every type that carries the bad version) may land first.
	var bindNACK string
	waitFor(t, 10*time.Second, "a NACK for the busy port", func() bool {
		for _, n := range cp.nacked()[before:] {
			if strings.Contains(n, "taken") {
				bindNACK = n
				return true
			}
		}
		return false
	})
	if !strings.Contains(bindNACK, "address already in use") {
		t.Errorf("NACK detail %q does not name the bind error", bindNACK)
	}
	if got := body(c, url); got != "B" {
		t.Errorf("after a failed bind: got %q, want B (the last good config)", got)
	}

	// Control plane down: the proxy keeps serving.
	cp.stop()
	for i := 0; i < 20; i++ {
		if got := body(c, url); got != "B" {
			t.Fatalf("with the control plane down: got %q, want B", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Restart with a new state: the proxy reconnects and follows.
	cp.start(cp.addr)
	cp.set("6", xdsListener(t, "out", port, "r2", "out-v2"), xdsRoute("r2", "c"), xdsCluster("c"), xdsEndpoints("c", a))
	waitBody(t, c, url, "A")

	// Listener removed: the port closes.
	cp.set("7", xdsCluster("c"), xdsEndpoints("c", a))
	waitFor(t, 10*time.Second, "listener removed", func() bool {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return true
		}
		_ = conn.Close()
		return false
	})
}

// With no xDS server to reach, the proxy still starts: after the initial
// fetch timeout it reports ready and serves its static part, and it keeps
// trying to connect.
func TestADSServerUnreachableAtStart(t *testing.T) {
	dead := freeAddr(t) // nothing listens here
	h, p := hostPort(t, dead)
	static := namedBackend(t, "static")
	sh, sp := hostPort(t, static)
	yaml := fmt.Sprintf(`node: {id: proxy-1, cluster: web}
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
  lds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 0.3s}
  cds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 0.3s}
static_resources:
  listeners:
  - name: ingress
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          route_config:
            virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: /}, route: {cluster: app}}]}]
  clusters:
  - name: app
    type: STATIC
    load_assignment: {cluster_name: app, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %q, port_value: %s}}}}]}]}
  - name: xds
    type: STATIC
    connect_timeout: 0.2s
    load_assignment: {cluster_name: xds, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %q, port_value: %s}}}}]}]}
`, sh, sp, h, p)
	b, err := bootstrap.Load("", yaml)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Logger: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}), Bootstrap: b, DrainTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor(t, 10*time.Second, "ready after the initial fetch timeout", srv.Ready)
	if got := body(h1Client(), "http://"+srv.Listeners()["ingress"]+"/"); got != "static" {
		t.Errorf("static listener: got %q, want static", got)
	}
}
