package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
	"github.com/outrigger-mesh/outrigger/controlplane/translate"
)

// waitTimeout bounds every wait in these tests.
const waitTimeout = 10 * time.Second

// fake is the translator: what each proxy and the proxyless set translate
// to, set by the test.
type fake struct {
	mu        sync.Mutex
	proxies   map[string]*translate.Resources
	errs      map[string]error
	panics    map[string]bool
	proxyless *translate.Resources
	plErr     error
}

func newFake() *fake {
	return &fake{proxies: map[string]*translate.Resources{}, errs: map[string]error{}, panics: map[string]bool{},
		proxyless: &translate.Resources{}}
}

func (f *fake) set(id string, r *translate.Resources) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.proxies[id] = r
	delete(f.errs, id)
}

func (f *fake) fail(id string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[id] = err
}

func (f *fake) proxy(m *model.Mesh, id string) (*translate.Resources, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.panics[id] {
		panic("boom")
	}
	if err := f.errs[id]; err != nil {
		return nil, err
	}
	r, ok := f.proxies[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", translate.ErrUnknownProxy, id)
	}
	return r, nil
}

func (f *fake) proxylessSet(*model.Mesh) (*translate.Resources, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.proxyless, f.plErr
}

// mesh registers the given proxy IDs.
func mesh(index uint64, ids ...string) *model.Mesh {
	m := &model.Mesh{Index: index, Datacenter: "dc1", Proxies: map[string]*api.CatalogService{}}
	for _, id := range ids {
		m.Proxies[id] = &api.CatalogService{ServiceID: id, ServiceName: id}
	}
	return m
}

// sidecar is a consistent sidecar configuration: a listener on port that
// routes over RDS to the EDS cluster of service, whose one endpoint listens
// on epPort.
func sidecar(service string, port, epPort uint32) *translate.Resources {
	return &translate.Resources{
		Listeners: []*listenerv3.Listener{{
			Name:    "outbound_" + service,
			Address: sockAddr("127.0.0.1", port),
			FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
				Name:       "envoy.filters.network.http_connection_manager",
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcmRDS(service, "route_"+service))},
			}}}},
		}},
		Routes:    []*routev3.RouteConfiguration{routeTo("route_"+service, service)},
		Clusters:  []*clusterv3.Cluster{edsCluster(service)},
		Endpoints: []*endpointv3.ClusterLoadAssignment{cla(service, epPort)},
	}
}

// proxylessSet has one API listener per service.
func proxylessSet(services ...string) *translate.Resources {
	r := &translate.Resources{}
	for _, s := range services {
		r.Listeners = append(r.Listeners, &listenerv3.Listener{
			Name:        s,
			ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(hcmRDS(s, "route_"+s))},
		})
		r.Routes = append(r.Routes, routeTo("route_"+s, s))
		r.Clusters = append(r.Clusters, edsCluster(s))
		r.Endpoints = append(r.Endpoints, cla(s, 9000))
	}
	return r
}

func hcmRDS(prefix, route string) *hcmv3.HttpConnectionManager {
	return &hcmv3.HttpConnectionManager{
		StatPrefix: prefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: route,
			ConfigSource:    adsSource(),
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
	}
}

func routeTo(name, cluster string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: name, VirtualHosts: []*routev3.VirtualHost{{
		Name: cluster, Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster}}},
		}},
	}}}
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
	}
}

func cla(name string, port uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: sockAddr("127.0.0.1", port)}}}},
	}}}
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func sockAddr(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

// logBuffer collects the server's log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// harness is a running server on a loopback port.
type harness struct {
	t    *testing.T
	srv  *Server
	fake *fake
	reg  *prometheus.Registry
	logs *logBuffer
	conn *grpc.ClientConn
	stop func() // stops the server and waits for Run
}

func start(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, fake: newFake(), reg: prometheus.NewRegistry(), logs: &logBuffer{}}
	h.srv = New(Options{
		Logger:    hclog.New(&hclog.LoggerOptions{Name: "cp", Level: hclog.Debug, Output: h.logs}),
		Registry:  h.reg,
		Translate: h.fake.proxy,
		Proxyless: h.fake.proxylessSet,
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.srv.Run(ctx, lis) }()
	var once sync.Once
	h.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(waitTimeout):
				t.Errorf("Run did not return within %s of its context ending", waitTimeout)
			}
		})
	}
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h.conn = conn
	t.Cleanup(func() {
		conn.Close()
		h.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", h.logs.String())
		}
	})
	return h
}

// waitFor polls cond until it holds or the wait times out.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func envoyNode(id string) *corev3.Node {
	return &corev3.Node{Id: id, Cluster: "web", UserAgentName: "envoy",
		Extensions: []*corev3.Extension{{Name: "envoy.filters.http.router", Category: "envoy.filters.http"}}}
}

// sotwClient is a bare state-of-the-world ADS client.
type sotwClient struct {
	t      *testing.T
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *corev3.Node
	resps  chan *discovery.DiscoveryResponse
	errc   chan error
	cancel context.CancelFunc
}

func (h *harness) sotw(node *corev3.Node) *sotwClient {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := discovery.NewAggregatedDiscoveryServiceClient(h.conn).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	c := &sotwClient{t: h.t, stream: st, node: node, resps: make(chan *discovery.DiscoveryResponse, 16),
		errc: make(chan error, 1), cancel: cancel}
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				c.errc <- err
				return
			}
			c.resps <- r
		}
	}()
	h.t.Cleanup(cancel)
	return c
}

func (c *sotwClient) send(r *discovery.DiscoveryRequest) {
	c.t.Helper()
	r.Node = c.node
	if err := c.stream.Send(r); err != nil {
		c.t.Fatalf("send %s: %v", r.GetTypeUrl(), err)
	}
}

// request asks for typeURL (names nil: wildcard) as a first request.
func (c *sotwClient) request(typeURL string, names ...string) {
	c.t.Helper()
	c.send(&discovery.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names})
}

// ack accepts r.
func (c *sotwClient) ack(r *discovery.DiscoveryResponse, names ...string) {
	c.t.Helper()
	c.send(&discovery.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), VersionInfo: r.GetVersionInfo(),
		ResponseNonce: r.GetNonce(), ResourceNames: names})
}

func (c *sotwClient) recv() *discovery.DiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.resps:
		return r
	case err := <-c.errc:
		c.t.Fatalf("stream ended: %v", err)
	case <-time.After(waitTimeout):
		c.t.Fatal("no response")
	}
	return nil
}

// recvType receives a response and requires its type.
func (c *sotwClient) recvType(typeURL string) *discovery.DiscoveryResponse {
	c.t.Helper()
	r := c.recv()
	if r.GetTypeUrl() != typeURL {
		c.t.Fatalf("got a %s response, want %s", r.GetTypeUrl(), typeURL)
	}
	return r
}

// streamErr waits for the stream to end and returns its error.
func (c *sotwClient) streamErr() error {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.t.Fatalf("got a %s response, want the stream to end", r.GetTypeUrl())
	case err := <-c.errc:
		return err
	case <-time.After(waitTimeout):
		c.t.Fatal("stream did not end")
	}
	return nil
}

// deltaClient is a bare delta ADS client.
type deltaClient struct {
	t      *testing.T
	stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node   *corev3.Node
	resps  chan *discovery.DeltaDiscoveryResponse
	errc   chan error
	cancel context.CancelFunc
}

func (h *harness) delta(node *corev3.Node) *deltaClient {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := discovery.NewAggregatedDiscoveryServiceClient(h.conn).DeltaAggregatedResources(ctx)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	c := &deltaClient{t: h.t, stream: st, node: node, resps: make(chan *discovery.DeltaDiscoveryResponse, 16),
		errc: make(chan error, 1), cancel: cancel}
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				c.errc <- err
				return
			}
			c.resps <- r
		}
	}()
	h.t.Cleanup(cancel)
	return c
}

func (c *deltaClient) send(r *discovery.DeltaDiscoveryRequest) {
	c.t.Helper()
	r.Node = c.node
	if err := c.stream.Send(r); err != nil {
		c.t.Fatalf("send %s: %v", r.GetTypeUrl(), err)
	}
}

func (c *deltaClient) subscribe(typeURL string, names ...string) {
	c.t.Helper()
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: typeURL, ResourceNamesSubscribe: names})
}

func (c *deltaClient) ack(r *discovery.DeltaDiscoveryResponse) {
	c.t.Helper()
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()})
}

func (c *deltaClient) recvType(typeURL string) *discovery.DeltaDiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.resps:
		if r.GetTypeUrl() != typeURL {
			c.t.Fatalf("got a %s response, want %s", r.GetTypeUrl(), typeURL)
		}
		return r
	case err := <-c.errc:
		c.t.Fatalf("stream ended: %v", err)
	case <-time.After(waitTimeout):
		c.t.Fatalf("no %s response", typeURL)
	}
	return nil
}

func (c *deltaClient) streamErr() error {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.t.Fatalf("got a %s response, want the stream to end", r.GetTypeUrl())
	case err := <-c.errc:
		return err
	case <-time.After(waitTimeout):
		c.t.Fatal("stream did not end")
	}
	return nil
}

// names lists the resource names in a response.
func names(t *testing.T, anys []*anypb.Any) []string {
	t.Helper()
	var out []string
	for _, a := range anys {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, resourceName(m))
	}
	return out
}

func deltaNames(t *testing.T, rs []*discovery.Resource) []string {
	t.Helper()
	var anys []*anypb.Any
	for _, r := range rs {
		anys = append(anys, r.GetResource())
	}
	return names(t, anys)
}

func resourceName(m proto.Message) string {
	switch v := m.(type) {
	case *endpointv3.ClusterLoadAssignment:
		return v.GetClusterName()
	case interface{ GetName() string }:
		return v.GetName()
	}
	return ""
}

// warmSotW runs the Envoy-like initial exchange for a sidecar of service
// and ACKs everything: afterwards the four watches are open.
func warmSotW(t *testing.T, h *harness, c *sotwClient, service string) map[string]*discovery.DiscoveryResponse {
	t.Helper()
	got := map[string]*discovery.DiscoveryResponse{}
	c.request(resource.ClusterType)
	got[resource.ClusterType] = c.recvType(resource.ClusterType)
	c.ack(got[resource.ClusterType])
	c.request(resource.EndpointType, service)
	got[resource.EndpointType] = c.recvType(resource.EndpointType)
	c.ack(got[resource.EndpointType], service)
	c.request(resource.ListenerType)
	got[resource.ListenerType] = c.recvType(resource.ListenerType)
	c.ack(got[resource.ListenerType])
	c.request(resource.RouteType, "route_"+service)
	got[resource.RouteType] = c.recvType(resource.RouteType)
	c.ack(got[resource.RouteType], "route_"+service)
	waitFor(t, "four open watches", func() bool { return h.watches(c.node.GetId(), false) == 4 })
	return got
}

// watches counts a node's open watches in the proxy cache.
func (h *harness) watches(id string, delta bool) int {
	info := h.srv.proxyCache.GetStatusInfo(id)
	if info == nil {
		return -1
	}
	if delta {
		return info.GetNumDeltaWatches()
	}
	return info.GetNumWatches()
}

// logged waits until the server log contains every part on one line.
func (h *harness) logged(parts ...string) {
	h.t.Helper()
	waitFor(h.t, fmt.Sprintf("a log line with %q", parts), func() bool {
		for _, line := range strings.Split(h.logs.String(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				return true
			}
		}
		return false
	})
}

var errTranslate = errors.New("service-router for web names a missing subset")

// value reads a counter or gauge.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	return d.GetCounter().GetValue() + d.GetGauge().GetValue()
}

// bigResources is a configuration larger than a stream's flow-control
// window: a client that does not read blocks the server's Send on it.
func bigResources(port uint32) *translate.Resources {
	r := &translate.Resources{}
	for i := range 3000 {
		name := fmt.Sprintf("cluster-%04d-%s", i, strings.Repeat("x", 64))
		c := edsCluster(name)
		c.EdsClusterConfig.ServiceName = ""
		r.Clusters = append(r.Clusters, c)
		r.Endpoints = append(r.Endpoints, cla(name, port))
		r.Listeners = append(r.Listeners, &listenerv3.Listener{Name: name, Address: sockAddr("127.0.0.1", uint32(10000+i))})
	}
	return r
}

// stuckClient opens an ADS stream for node, asks for clusters and
// listeners and never reads: with bigResources the server's second Send
// blocks. The stream ends when the returned cancel is called (or at
// cleanup).
func (h *harness) stuckClient(node string) (discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient, context.CancelFunc) {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.t.Cleanup(cancel)
	st, err := discovery.NewAggregatedDiscoveryServiceClient(h.conn).StreamAggregatedResources(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, typ := range []string{resource.ClusterType, resource.ListenerType} {
		if err := st.Send(&discovery.DiscoveryRequest{Node: envoyNode(node), TypeUrl: typ}); err != nil {
			h.t.Fatal(err)
		}
	}
	return st, cancel
}
