// Package translate turns the control plane's model of Consul into Envoy v3
// resources: a pure function with deterministic, sorted output.
//
// For a sidecar (Proxy) it emits the inbound listener public_listener to
// the local application (cluster local_app; Consul's proxy config keys
// local_connect_timeout_ms and local_request_timeout_ms apply) and, per
// upstream, a listener named "<service>:<bind address>:<bind port>" routed
// through the upstream's discovery chain, compiled with Consul's semantics
// (service-router, service-splitter, service-resolver; see chain.go).
// Clusters are named "<service>" or "<subset>.<service>", of type EDS over
// ADS, and their ClusterLoadAssignments hold the passing sidecars, with
// same-datacenter failover targets as priorities 1..n. A config entry that
// cannot be translated is an *EntryError naming it; the caller keeps its
// previous output.
//
// What is not translated, by design for now: prepared-query upstreams,
// upstreams in another datacenter or peer, unix-socket upstreams (all
// skipped); failover to other datacenters, peers or sameness groups
// (skipped: only same-datacenter failover becomes extra priorities);
// redirects outside the datacenter (an error); an upstream's own config
// (Upstream.Config, e.g. a protocol override: the protocol is the
// service's); namespaces and partitions (ignored: Consul CE has one of
// each).
package translate

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// ErrUnknownProxy is returned for a proxy ID that is not registered.
var ErrUnknownProxy = errors.New("translate: unknown proxy")

// Fixed names the bootstrap and the proxy rely on.
const (
	publicListenerName = "public_listener"
	localAppName       = "local_app"
	defaultBindAddress = "127.0.0.1"
)

// Consul's proxy config keys (ServiceProxy.Config) that we honour.
const (
	localConnectTimeoutKey = "local_connect_timeout_ms"
	localRequestTimeoutKey = "local_request_timeout_ms"
)

// Resources is one complete configuration, each list sorted by name.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
}

// Proxy translates the mesh for the sidecar registered with service ID id.
// The error wraps ErrUnknownProxy when id is not a registered proxy, and is
// an *EntryError when a config entry on one of its upstreams' chains cannot
// be translated.
func Proxy(m *model.Mesh, id string) (*Resources, error) {
	if m == nil {
		return nil, errors.New("translate: no mesh")
	}
	p := m.Proxies[id]
	if p == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownProxy, id)
	}
	sp := p.ServiceProxy
	if sp == nil || sp.DestinationServiceName == "" {
		return nil, fmt.Errorf("translate: proxy %q has no destination service", id)
	}
	b := newBuilder(m, sidecarMode)
	if err := b.inbound(id, p); err != nil {
		return nil, err
	}
	for i, u := range sp.Upstreams {
		if err := b.upstream(id, i, u); err != nil {
			return nil, err
		}
	}
	return b.resources()
}

// Proxyless translates the mesh for proxyless gRPC clients: per service an
// API listener named after the service, its route, cluster and endpoints
// (the service's own passing instances). Only services with at least one
// instance and protocol grpc or http2 are included: grpc-go speaks HTTP/2
// only, and an http service is left to sidecars. Clusters differ from the
// sidecars' in what grpc-go needs: ClusterLoadAssignments carry an (empty)
// locality with weight 1, and the random and maglev policies become
// ROUND_ROBIN and RING_HASH.
//
// The routes are referenced from api_listener, which go-control-plane's
// Snapshot.Consistent does not look into: a snapshot of this output fails
// that check although it is complete.
func Proxyless(m *model.Mesh) (*Resources, error) {
	if m == nil {
		return nil, errors.New("translate: no mesh")
	}
	b := newBuilder(m, proxylessMode)
	for _, name := range sortedKeys(m.Services) {
		s := m.Services[name]
		if len(s.Instances) == 0 {
			continue
		}
		if p := m.Protocol(name); p != "grpc" && p != "http2" {
			continue
		}
		ch, err := b.chain(name)
		if err != nil {
			return nil, err
		}
		b.routes[name] = routeConfig(name, []string{name}, ch)
		l, err := apiListener(name)
		if err != nil {
			return nil, err
		}
		b.listeners[name] = l
	}
	return b.resources()
}

// builder gathers resources by name.
type builder struct {
	m         *model.Mesh
	md        mode
	chains    map[string]*chain
	listeners map[string]*listenerv3.Listener
	routes    map[string]*routev3.RouteConfiguration
	clusters  map[string]*clusterv3.Cluster
	endpoints map[string]*endpointv3.ClusterLoadAssignment
	bound     map[string]string // "host:port" -> listener name
}

func newBuilder(m *model.Mesh, md mode) *builder {
	return &builder{
		m:         m,
		md:        md,
		chains:    map[string]*chain{},
		listeners: map[string]*listenerv3.Listener{},
		routes:    map[string]*routev3.RouteConfiguration{},
		clusters:  map[string]*clusterv3.Cluster{},
		endpoints: map[string]*endpointv3.ClusterLoadAssignment{},
		bound:     map[string]string{},
	}
}

// chain compiles service's chain once and adds its targets' clusters and
// endpoints.
func (b *builder) chain(service string) (*chain, error) {
	if ch, ok := b.chains[service]; ok {
		return ch, nil
	}
	ch, err := compileChain(b.m, service)
	if err != nil {
		return nil, err
	}
	for _, res := range ch.targets {
		name := res.target.cluster()
		if _, ok := b.clusters[name]; ok {
			continue
		}
		c, err := edsCluster(b.m, res, b.md)
		if err != nil {
			return nil, err
		}
		b.clusters[name] = c
		b.endpoints[name] = loadAssignment(b.m, res, b.md)
	}
	b.chains[service] = ch
	return ch, nil
}

// bind claims host:port for listener name; two listeners on one address
// would fail to start.
func (b *builder) bind(proxy, name, host string, port int) error {
	if port <= 0 || port > 65535 {
		return fmt.Errorf("translate: proxy %q: listener %q: port %d is out of range", proxy, name, port)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if other, ok := b.bound[addr]; ok {
		return fmt.Errorf("translate: proxy %q: listeners %q and %q both bind %s", proxy, other, name, addr)
	}
	b.bound[addr] = name
	return nil
}

// inbound adds public_listener and local_app.
func (b *builder) inbound(id string, p *api.CatalogService) error {
	sp := p.ServiceProxy
	host := p.ServiceAddress
	if host == "" {
		host = p.Address
	}
	if host == "" {
		return fmt.Errorf("translate: proxy %q has no address (neither service nor node address)", id)
	}
	if err := b.bind(id, publicListenerName, host, p.ServicePort); err != nil {
		return err
	}
	localHost := sp.LocalServiceAddress
	if localHost == "" {
		localHost = defaultBindAddress
	}
	if sp.LocalServicePort <= 0 || sp.LocalServicePort > 65535 {
		return fmt.Errorf("translate: proxy %q: local service port %d is out of range", id, sp.LocalServicePort)
	}
	connectTimeout, set, err := configMillis(sp.Config, localConnectTimeoutKey)
	if err != nil {
		return fmt.Errorf("translate: proxy %q: %w", id, err)
	}
	if !set || connectTimeout == 0 {
		connectTimeout = defaultConnectTimeout
	}
	// Unset keeps Envoy's route timeout (15s); 0 disables it, as in Consul.
	requestTimeout, hasRequestTimeout, err := configMillis(sp.Config, localRequestTimeoutKey)
	if err != nil {
		return fmt.Errorf("translate: proxy %q: %w", id, err)
	}
	if !hasRequestTimeout {
		requestTimeout = -1
	}

	protocol := b.m.Protocol(sp.DestinationServiceName)
	app, err := localAppCluster(localHost, sp.LocalServicePort, connectTimeout, protocol)
	if err != nil {
		return err
	}
	b.clusters[localAppName] = app

	var l *listenerv3.Listener
	if isHTTP(protocol) {
		h, err := connectionManager(publicListenerName, "", localAppRoute(requestTimeout))
		if err != nil {
			return err
		}
		l, err = httpListener(publicListenerName, host, p.ServicePort, h)
		if err != nil {
			return err
		}
	} else {
		l, err = tcpListener(publicListenerName, host, p.ServicePort, publicListenerName, localAppName)
		if err != nil {
			return err
		}
	}
	b.listeners[publicListenerName] = l
	return nil
}

// upstream adds the listener of one upstream and, through its chain, the
// route, clusters and endpoints behind it. Upstreams we cannot serve are
// skipped (see the package comment).
func (b *builder) upstream(id string, i int, u api.Upstream) error {
	switch {
	case u.DestinationType != "" && u.DestinationType != api.UpstreamDestTypeService,
		u.DestinationPeer != "",
		u.Datacenter != "" && u.Datacenter != b.m.Datacenter,
		u.LocalBindPort == 0:
		return nil
	case u.DestinationName == "":
		return fmt.Errorf("translate: proxy %q: upstream %d has no destination name", id, i)
	}
	dest := u.DestinationName
	host := u.LocalBindAddress
	if host == "" {
		host = defaultBindAddress
	}
	name := fmt.Sprintf("%s:%s:%d", dest, host, u.LocalBindPort)
	if err := b.bind(id, name, host, u.LocalBindPort); err != nil {
		return err
	}
	ch, err := b.chain(dest)
	if err != nil {
		return err
	}
	statPrefix := "upstream." + dest
	var l *listenerv3.Listener
	if isHTTP(ch.protocol) {
		if _, ok := b.routes[dest]; !ok {
			b.routes[dest] = routeConfig(dest, []string{"*"}, ch)
		}
		h, err := connectionManager(statPrefix, dest, nil)
		if err != nil {
			return err
		}
		l, err = httpListener(name, host, u.LocalBindPort, h)
		if err != nil {
			return err
		}
	} else {
		// A tcp chain has no router or splitter: one route, one target.
		target := ch.routes[len(ch.routes)-1].to.resolved.target.cluster()
		l, err = tcpListener(name, host, u.LocalBindPort, statPrefix, target)
		if err != nil {
			return err
		}
	}
	b.listeners[name] = l
	return nil
}

// resources returns everything sorted by name, each resource checked with
// its own ValidateAll so nothing invalid is ever served.
func (b *builder) resources() (*Resources, error) {
	r := &Resources{}
	for _, n := range sortedKeys(b.listeners) {
		r.Listeners = append(r.Listeners, b.listeners[n])
	}
	for _, n := range sortedKeys(b.routes) {
		r.Routes = append(r.Routes, b.routes[n])
	}
	for _, n := range sortedKeys(b.clusters) {
		r.Clusters = append(r.Clusters, b.clusters[n])
	}
	for _, n := range sortedKeys(b.endpoints) {
		r.Endpoints = append(r.Endpoints, b.endpoints[n])
	}
	for _, l := range r.Listeners {
		if err := validate("listener", l.GetName(), l); err != nil {
			return nil, err
		}
	}
	for _, rc := range r.Routes {
		if err := validate("route", rc.GetName(), rc); err != nil {
			return nil, err
		}
	}
	for _, c := range r.Clusters {
		if err := validate("cluster", c.GetName(), c); err != nil {
			return nil, err
		}
	}
	for _, e := range r.Endpoints {
		if err := validate("endpoints", e.GetClusterName(), e); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// validate runs the resource's own protoc-gen-validate rules.
func validate(kind, name string, m interface{ ValidateAll() error }) error {
	if err := m.ValidateAll(); err != nil {
		return fmt.Errorf("translate: %s %q: %w", kind, name, err)
	}
	return nil
}

// configMillis reads a millisecond count from Consul's opaque proxy config
// (a JSON number or a decimal string); set is false when it is absent.
func configMillis(cfg map[string]any, key string) (d time.Duration, set bool, err error) {
	v, ok := cfg[key]
	if !ok || v == nil {
		return 0, false, nil
	}
	var ms float64
	switch x := v.(type) {
	case float64:
		ms = x
	case int:
		ms = float64(x)
	case int64:
		ms = float64(x)
	case string:
		f, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0, false, fmt.Errorf("config %s: %q is not a number of milliseconds", key, x)
		}
		ms = f
	default:
		return 0, false, fmt.Errorf("config %s: %v is not a number of milliseconds", key, v)
	}
	if ms < 0 || ms > float64((1<<63-1)/time.Millisecond) {
		return 0, false, fmt.Errorf("config %s: %v is out of range", key, v)
	}
	return time.Duration(ms * float64(time.Millisecond)), true, nil
}
