// Package translate turns the control plane's model of Consul into Envoy v3
// resources: a pure function of the mesh with deterministic, sorted output.
// A Translator (New) translates one mesh for many proxies and builds what
// they share once, handing every proxy the same messages; Proxy and
// Proxyless are one-off translations.
//
// For a sidecar (Proxy) it emits the inbound listener public_listener to
// the local application (cluster local_app) and, per upstream, a listener
// named "<service>:<bind address>:<bind port>" routed through the
// upstream's discovery chain, compiled with Consul's semantics
// (service-router, service-splitter, service-resolver; see chain.go).
// Clusters are named "<service>" or "<subset>.<service>", of type EDS over
// ADS, and their ClusterLoadAssignments hold the passing sidecars, with
// same-datacenter failover targets as priorities 1..n. A config entry that
// cannot be translated is an *EntryError naming it; the caller keeps its
// previous output.
//
// Hops between sidecars use mutual TLS with Consul's Connect CA (tls.go):
// each sidecar gets the SDS secrets "roots" (the trust bundle) and
// "leaf:<service>" (its service's certificate and key) with its other
// resources; public_listener requires a client certificate chained to the
// roots, and every upstream cluster presents the local leaf, sends Consul's
// SNI and accepts only its target's SPIFFE ID. Until the mesh holds the
// trust domain, the roots and the service's leaf, a sidecar's translation
// fails with ErrCANotReady. public_listener enforces the service's
// intentions with an RBAC filter (rbac.go). Proxyless output stays
// plaintext: its clients dial instances, not sidecars. Options.Plaintext
// turns all of this off.
//
// An ingress gateway (a service of kind ingress-gateway, in Mesh.Gateways)
// is translated by Proxy too, from its ingress-gateway config entry
// (gateway.go): public listeners routing by host through the services'
// chains to clusters that present the gateway's own leaf, plus what the
// entry's Meta asks for (gateway_meta.go: JWT from jwt-provider entries, a
// local rate limit, HTTP/3, certificate files). See docs/gateway.md.
//
// Of Consul's opaque proxy config, these keys apply, from the sidecar's
// registration or, for a key it does not set, the global proxy-defaults:
// bind_address and bind_port (where public_listener binds instead of the
// sidecar's registered address and port), local_connect_timeout_ms and
// local_request_timeout_ms.
//
// Each upstream's clusters (every target of its chain) get what Consul
// v1.16.3 resolves for that upstream (upstream.go): the downstream
// service's service-defaults UpstreamConfig (Defaults, then the Overrides
// entry naming the upstream), under the upstream's own config keys in the
// registration. connect_timeout_ms replaces the resolvers' connect
// timeouts, limits become circuit_breakers thresholds and
// passive_health_check becomes outlier_detection, which, as in Consul, is
// present (Envoy's defaults) even when nothing is configured; panic mode
// is off (healthy_panic_threshold 0), as Consul sets it. When two
// upstreams' chains share a target, the first upstream's settings apply.
//
// What is not translated, by design for now: prepared-query upstreams,
// upstreams in another datacenter or peer, unix-socket upstreams (all
// skipped); failover to other datacenters, peers or sameness groups
// (skipped: only same-datacenter failover becomes extra priorities);
// redirects outside the datacenter (an error); the upstream config keys
// other than the three above (protocol: the protocol is the service's;
// envoy_cluster_json, envoy_listener_json, mesh_gateway,
// balance_outbound_connections); namespaces and partitions (ignored:
// Consul CE has one of each).
package translate

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
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

// Resources is one complete configuration, each list sorted by name. Its
// messages may be shared with other Resources from the same Translator:
// treat them as immutable.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	// Secrets are the SDS secrets the listeners and clusters refer to (a
	// sidecar's leaf certificate and the trust bundle); none for
	// proxyless clients or with mesh TLS off.
	Secrets []*tlsv3.Secret
}

// Proxy translates the mesh for the sidecar registered with service ID id.
// The error wraps ErrUnknownProxy when id is not a registered proxy, and is
// an *EntryError when a config entry on one of its upstreams' chains cannot
// be translated. It is New(m).Proxy(id): to translate several proxies of
// one mesh, share a Translator, which builds what they share once.
func Proxy(m *model.Mesh, id string) (*Resources, error) {
	return New(m).Proxy(id)
}

// Proxyless translates the mesh for proxyless gRPC clients: per service an
// API listener named after the service, its route, cluster and endpoints
// (the service's own passing instances). Only services with at least one
// instance and protocol grpc or http2 are included: grpc-go speaks HTTP/2
// only, and an http service is left to sidecars. Clusters differ from the
// sidecars' in what grpc-go needs: ClusterLoadAssignments carry an (empty)
// locality with weight 1, and the random and maglev policies become
// ROUND_ROBIN and RING_HASH. It is New(m).Proxyless().
//
// The routes are referenced from api_listener, which go-control-plane's
// Snapshot.Consistent does not look into: a snapshot of this output fails
// that check although it is complete.
func Proxyless(m *model.Mesh) (*Resources, error) {
	return New(m).Proxyless()
}

// builder gathers one proxy's (or the proxyless set's) resources by name,
// taking shared ones from its Translator.
type builder struct {
	t  *Translator
	md mode
	// local is the sidecar's service (empty for proxyless clients): whose
	// leaf certificate its clusters present.
	local     string
	listeners map[string]checked[*listenerv3.Listener]
	routes    map[string]checked[*routev3.RouteConfiguration]
	clusters  map[string]checked[*clusterv3.Cluster]
	endpoints map[string]checked[*endpointv3.ClusterLoadAssignment]
	secrets   map[string]checked[*tlsv3.Secret]
	bound     map[string]string // "host:port" -> listener name
}

func newBuilder(t *Translator, md mode) *builder {
	return &builder{
		t:         t,
		md:        md,
		listeners: map[string]checked[*listenerv3.Listener]{},
		routes:    map[string]checked[*routev3.RouteConfiguration]{},
		clusters:  map[string]checked[*clusterv3.Cluster]{},
		endpoints: map[string]checked[*endpointv3.ClusterLoadAssignment]{},
		secrets:   map[string]checked[*tlsv3.Secret]{},
		bound:     map[string]string{},
	}
}

// chain returns service's (shared) chain and adds its targets' clusters,
// built with the upstream settings s, and endpoints. A name already taken
// keeps what it has: when two upstreams' chains share a target, the first
// upstream's settings apply to it.
func (b *builder) chain(service string, s clusterSettings) (*chainEntry, error) {
	ce, err := b.t.chain(b.md, service)
	if err != nil {
		return nil, err
	}
	for _, res := range ce.ch.targets {
		name := res.target.cluster()
		if _, ok := b.clusters[name]; ok {
			continue
		}
		c, err := b.t.clusterOf(b.md, res, s, b.local)
		if err != nil {
			return nil, err
		}
		b.clusters[name] = c
		b.endpoints[name] = b.t.endpointsFor(b.md, res)
	}
	return ce, nil
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

// inbound adds public_listener and local_app. public_listener binds the
// proxy config's bind_address and bind_port when set (Consul's keys, as in
// its Envoy integration), else the sidecar's service address (or its
// node's) and port.
func (b *builder) inbound(id string, p *api.CatalogService) error {
	sp := p.ServiceProxy
	cfg := proxyConfigOf(b.t.m, sp)
	host := p.ServiceAddress
	if host == "" {
		host = p.Address
	}
	bindAddress, err := cfg.address(bindAddressKey)
	if err != nil {
		return fmt.Errorf("translate: proxy %q: %w", id, err)
	}
	if bindAddress != "" {
		host = bindAddress
	}
	if host == "" {
		return fmt.Errorf("translate: proxy %q has no address (neither %s, service nor node address)", id, bindAddressKey)
	}
	port := p.ServicePort
	bindPort, err := cfg.port(bindPortKey)
	if err != nil {
		return fmt.Errorf("translate: proxy %q: %w", id, err)
	}
	if bindPort != 0 {
		port = bindPort
	}
	if err := b.bind(id, publicListenerName, host, port); err != nil {
		return err
	}
	localHost := sp.LocalServiceAddress
	if localHost == "" {
		localHost = defaultBindAddress
	}
	if sp.LocalServicePort <= 0 || sp.LocalServicePort > 65535 {
		return fmt.Errorf("translate: proxy %q: local service port %d is out of range", id, sp.LocalServicePort)
	}
	connectTimeout, set, err := cfg.millis(localConnectTimeoutKey)
	if err != nil {
		return fmt.Errorf("translate: proxy %q: %w", id, err)
	}
	if !set || connectTimeout == 0 {
		connectTimeout = defaultConnectTimeout
	}
	// Unset keeps Envoy's route timeout (15s); 0 disables it, as in Consul.
	requestTimeout, hasRequestTimeout, err := cfg.millis(localRequestTimeoutKey)
	if err != nil {
		return fmt.Errorf("translate: proxy %q: %w", id, err)
	}
	if !hasRequestTimeout {
		requestTimeout = -1
	}

	service := sp.DestinationServiceName
	protocol := b.t.m.Protocol(service)
	app, err := b.t.localApp(localAppKey{localHost, sp.LocalServicePort, connectTimeout, protocol})
	if err != nil {
		return err
	}
	b.clusters[localAppName] = app

	k := inboundKey{http: isHTTP(protocol), grpc: protocol == "grpc", requestTimeout: requestTimeout}
	if !b.t.o.Plaintext {
		k.service = service
	}
	filters, err := b.t.inboundFilters(k)
	if err != nil {
		return err
	}
	l := socketListener(publicListenerName, host, port, filters...)
	if !b.t.o.Plaintext {
		ts, err := b.t.inboundTLS(service)
		if err != nil {
			return err
		}
		l.FilterChains[0].TransportSocket = ts
	}
	b.listeners[publicListenerName] = unchecked(l)
	return nil
}

// addSecrets adds the sidecar's SDS secrets: the trust bundle and its
// service's leaf certificate.
func (b *builder) addSecrets(service string) {
	b.secrets[RootsSecretName] = b.t.secret(RootsSecretName, func() *tlsv3.Secret { return rootsSecret(b.t.m.Roots) })
	name := LeafSecretName(service)
	b.secrets[name] = b.t.secret(name, func() *tlsv3.Secret { return leafSecret(service, b.t.m.Leaves[service]) })
}

// upstream adds the listener of one upstream and, through its chain, the
// route, clusters and endpoints behind it; the clusters get the upstream's
// settings, resolved from downstream's service-defaults and u's own config
// (upstream.go). Upstreams we cannot serve are skipped (see the package
// comment).
func (b *builder) upstream(id, downstream string, i int, u api.Upstream) error {
	switch {
	case u.DestinationType != "" && u.DestinationType != api.UpstreamDestTypeService,
		u.DestinationPeer != "",
		u.Datacenter != "" && u.Datacenter != b.t.m.Datacenter,
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
	s, err := upstreamSettings(b.t.m, id, downstream, u)
	if err != nil {
		return err
	}
	ce, err := b.chain(dest, s)
	if err != nil {
		return err
	}
	if isHTTP(ce.ch.protocol) {
		if _, ok := b.routes[dest]; !ok {
			b.routes[dest] = ce.route
		}
	}
	out := ce.outbound
	if out.err != nil {
		return out.err
	}
	if out.marshalErr != nil {
		return fmt.Errorf("translate: listener %q: %w", name, out.marshalErr)
	}
	b.listeners[name] = unchecked(socketListener(name, host, u.LocalBindPort, out.f))
	return nil
}

// resources returns everything sorted by name, each resource checked with
// its own ValidateAll (shared ones once, when built) so nothing invalid is
// ever served.
func (b *builder) resources() (*Resources, error) {
	r := &Resources{
		Listeners: make([]*listenerv3.Listener, 0, len(b.listeners)),
		Routes:    make([]*routev3.RouteConfiguration, 0, len(b.routes)),
		Clusters:  make([]*clusterv3.Cluster, 0, len(b.clusters)),
		Endpoints: make([]*endpointv3.ClusterLoadAssignment, 0, len(b.endpoints)),
	}
	if len(b.secrets) > 0 {
		r.Secrets = make([]*tlsv3.Secret, 0, len(b.secrets))
	}
	for _, n := range sortedKeys(b.listeners) {
		if err := b.listeners[n].check("listener", n); err != nil {
			return nil, err
		}
		r.Listeners = append(r.Listeners, b.listeners[n].res)
	}
	for _, n := range sortedKeys(b.routes) {
		if err := b.routes[n].check("route", n); err != nil {
			return nil, err
		}
		r.Routes = append(r.Routes, b.routes[n].res)
	}
	for _, n := range sortedKeys(b.clusters) {
		if err := b.clusters[n].check("cluster", n); err != nil {
			return nil, err
		}
		r.Clusters = append(r.Clusters, b.clusters[n].res)
	}
	for _, n := range sortedKeys(b.endpoints) {
		if err := b.endpoints[n].check("endpoints", n); err != nil {
			return nil, err
		}
		r.Endpoints = append(r.Endpoints, b.endpoints[n].res)
	}
	for _, n := range sortedKeys(b.secrets) {
		if err := b.secrets[n].check("secret", n); err != nil {
			return nil, err
		}
		r.Secrets = append(r.Secrets, b.secrets[n].res)
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
