package client_test

import (
	"context"
	"fmt"
	"io"
	"slices"
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
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/xds/client"
)

// waitFor is how long any one expected event may take.
const waitFor = 10 * time.Second

// --- fixtures ---------------------------------------------------------------

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func mustAny(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// listener is an HTTP listener whose connection manager takes its routes
// from RDS name route.
func listener(t testing.TB, name, route string, port uint32) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: ads(), RouteConfigName: route,
		}},
	}
	return &listenerv3.Listener{
		Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, hcm)},
		}}}},
	}
}

// route sends prefix to cluster.
func route(name, prefix, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
				}},
			}},
		}},
	}
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()},
	}
}

func cla(name string, ports ...uint32) *endpointv3.ClusterLoadAssignment {
	var lb []*endpointv3.LbEndpoint
	for _, p := range ports {
		lb = append(lb, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: p},
			}}},
		}}})
	}
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lb}}}
}

// --- a recording target ------------------------------------------------------

// target records every Apply, checks that each set it gets is complete and
// that Apply never runs concurrently, and lets a test reject resources.
type target struct {
	t       testing.TB
	check   func(typeURL string, m proto.Message) error
	apply   func(*client.Resources) error
	busy    atomic.Bool
	mu      sync.Mutex
	applied []*client.Resources // successful Applies
	failed  int
	changed chan struct{}
}

func newTarget(t testing.TB) *target {
	return &target{t: t, changed: make(chan struct{})}
}

func (g *target) Check(typeURL string, m proto.Message) error {
	if g.check != nil {
		return g.check(typeURL, m)
	}
	return nil
}

func (g *target) Apply(r *client.Resources) error {
	if !g.busy.CompareAndSwap(false, true) {
		g.t.Errorf("Apply called concurrently")
	}
	defer g.busy.Store(false)
	if msg := incomplete(r); msg != "" {
		g.t.Errorf("Apply got an incomplete set: %s", msg)
	}
	var err error
	if g.apply != nil {
		err = g.apply(r)
	}
	g.mu.Lock()
	if err != nil {
		g.failed++
	} else {
		g.applied = append(g.applied, r)
	}
	close(g.changed)
	g.changed = make(chan struct{})
	g.mu.Unlock()
	return err
}

// incomplete names what a set lacks: a route a listener needs, an
// assignment an EDS cluster needs, sorted lists, versions.
func incomplete(r *client.Resources) string {
	routes := map[string]bool{}
	for _, rc := range r.Routes {
		routes[rc.GetName()] = true
	}
	for _, l := range r.Listeners {
		for _, fc := range l.GetFilterChains() {
			for _, f := range fc.GetFilters() {
				hcm := new(hcmv3.HttpConnectionManager)
				if f.GetTypedConfig().UnmarshalTo(hcm) == nil && hcm.GetRds() != nil && !routes[hcm.GetRds().GetRouteConfigName()] {
					return fmt.Sprintf("listener %s: route %s missing", l.GetName(), hcm.GetRds().GetRouteConfigName())
				}
			}
		}
	}
	clas := map[string]bool{}
	for _, a := range r.Endpoints {
		clas[a.GetClusterName()] = true
	}
	for _, c := range r.Clusters {
		if c.GetType() == clusterv3.Cluster_EDS && !clas[c.GetName()] {
			return fmt.Sprintf("cluster %s: assignment missing", c.GetName())
		}
	}
	if !slices.IsSortedFunc(r.Listeners, func(a, b *listenerv3.Listener) int { return strings.Compare(a.GetName(), b.GetName()) }) ||
		!slices.IsSortedFunc(r.Routes, func(a, b *routev3.RouteConfiguration) int { return strings.Compare(a.GetName(), b.GetName()) }) ||
		!slices.IsSortedFunc(r.Clusters, func(a, b *clusterv3.Cluster) int { return strings.Compare(a.GetName(), b.GetName()) }) ||
		!slices.IsSortedFunc(r.Endpoints, func(a, b *endpointv3.ClusterLoadAssignment) int {
			return strings.Compare(a.GetClusterName(), b.GetClusterName())
		}) {
		return "not sorted by name"
	}
	if r.Versions == nil {
		return "no versions"
	}
	return ""
}

// applies returns the successful Applies so far and the failed count.
func (g *target) applies() ([]*client.Resources, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.applied), g.failed
}

func (g *target) last() *client.Resources {
	a, _ := g.applies()
	if len(a) == 0 {
		return nil
	}
	return a[len(a)-1]
}

// waitApply waits until the latest successful Apply satisfies ok.
func (g *target) waitApply(ok func(*client.Resources) bool) *client.Resources {
	g.t.Helper()
	deadline := time.After(waitFor)
	for {
		g.mu.Lock()
		ch := g.changed
		var last *client.Resources
		if n := len(g.applied); n > 0 {
			last = g.applied[n-1]
		}
		g.mu.Unlock()
		if last != nil && ok(last) {
			return last
		}
		select {
		case <-ch:
		case <-deadline:
			g.t.Fatalf("no matching Apply within %s; last: %s", waitFor, describe(last))
			return nil
		}
	}
}

// describe renders a set as "L[a b] R[..] C[..] E[..]".
func describe(r *client.Resources) string {
	if r == nil {
		return "none"
	}
	var l, rt, c, e []string
	for _, x := range r.Listeners {
		l = append(l, x.GetName())
	}
	for _, x := range r.Routes {
		rt = append(rt, x.GetName())
	}
	for _, x := range r.Clusters {
		c = append(c, x.GetName())
	}
	for _, x := range r.Endpoints {
		e = append(e, x.GetClusterName())
	}
	return fmt.Sprintf("L%v R%v C%v E%v", l, rt, c, e)
}

// --- running a client --------------------------------------------------------

// testLogger logs to t until the test ends.
func testLogger(t testing.TB) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return hclog.New(&hclog.LoggerOptions{Output: w, Level: hclog.Debug})
}

type testWriter struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

var _ io.Writer = (*testWriter)(nil)

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

// baseConfig subscribes to LDS and CDS on conn as node id "node-1", with
// short timeouts.
func baseConfig(t testing.TB, conn grpc.ClientConnInterface, delta bool) client.Config {
	return client.Config{
		Conn:                conn,
		Node:                &corev3.Node{Id: "node-1", Cluster: "test"},
		Delta:               delta,
		LDS:                 true,
		CDS:                 true,
		InitialFetchTimeout: 20 * time.Second,
		BackoffBase:         20 * time.Millisecond,
		BackoffMax:          200 * time.Millisecond,
		Logger:              testLogger(t),
	}
}

// run starts c.Run and returns a stop function that cancels it and returns
// Run's result; it also runs at cleanup.
func run(t testing.TB, c *client.Client) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(waitFor):
				t.Errorf("Run did not return within %s of cancel", waitFor)
			}
		})
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// waitSynced waits for c.Synced.
func waitSynced(t testing.TB, c *client.Client) {
	t.Helper()
	select {
	case <-c.Synced():
	case <-time.After(waitFor):
		t.Fatal("client did not sync")
	}
}

// eventually polls cond until it holds.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// modes runs f for state of the world and delta.
func modes(t *testing.T, f func(t *testing.T, delta bool)) {
	for _, delta := range []bool{false, true} {
		name := "sotw"
		if delta {
			name = "delta"
		}
		t.Run(name, func(t *testing.T) { f(t, delta) })
	}
}
