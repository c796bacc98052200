package translate

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// Translator translates one Mesh for any number of proxies, building what
// proxies have in common once: per upstream service its discovery chain,
// route configuration and outbound filter; per chain target its
// ClusterLoadAssignment, and its cluster per set of upstream settings (the
// downstream's resolved UpstreamConfig: most proxies share the default);
// the inbound filter and local_app cluster per set of settings. Only what names a proxy's own addresses (public_listener and the
// "<service>:<address>:<port>" listeners) is built per call. Errors are
// memoized with the results: every proxy whose upstream has a broken chain
// gets the same *EntryError.
//
// A Translator is safe for concurrent use by several goroutines; the Mesh
// must not change while it is in use. Resources returned by different calls
// share their messages (two proxies with the same upstream get the same
// *clusterv3.Cluster, *endpointv3.ClusterLoadAssignment and
// *routev3.RouteConfiguration pointers, and listeners share filters):
// callers must treat every returned message as immutable. Marshalling them
// concurrently is fine.
type Translator struct {
	m *model.Mesh
	o Options

	chains    memo[chainKey, *chainEntry]
	clusters  memo[clusterKey, checked[*clusterv3.Cluster]]
	endpoints memo[targetKey, checked[*endpointv3.ClusterLoadAssignment]]
	inbound   memo[inboundKey, []*listenerv3.Filter]
	inTLS     memo[string, *corev3.TransportSocket]
	secrets   memo[string, checked[*tlsv3.Secret]]
	localApps memo[localAppKey, checked[*clusterv3.Cluster]]
	proxyless memo[struct{}, *Resources]
}

// Options change what a Translator emits. The zero value is the default:
// mesh mTLS and intentions enforced.
type Options struct {
	// Plaintext turns mesh TLS off: sidecars get no certificates, their
	// public_listener accepts plaintext and no RBAC filter, and their
	// clusters dial plaintext. Intentions are then not enforced (without a
	// peer certificate there is no identity to check) and the Connect CA is
	// not needed. For a Consul whose Connect CA is off, or to debug.
	Plaintext bool
}

// New returns a Translator for m, which must not change afterwards. A nil
// m gives a Translator whose every call fails.
func New(m *model.Mesh) *Translator {
	return &Translator{m: m}
}

// NewWithOptions is New with options.
func NewWithOptions(m *model.Mesh, o Options) *Translator {
	return &Translator{m: m, o: o}
}

// errNoMesh is what a Translator of no mesh returns.
var errNoMesh = errors.New("translate: no mesh")

// Proxy translates the mesh for the sidecar or ingress gateway (gateway.go)
// registered with service ID id.
// The error wraps ErrUnknownProxy when id is not a registered proxy, and is
// an *EntryError when a config entry on one of its upstreams' chains cannot
// be translated. The result shares messages with other calls' results: do
// not modify it.
func (t *Translator) Proxy(id string) (*Resources, error) {
	if t.m == nil {
		return nil, errNoMesh
	}
	if g := t.m.Gateways[id]; g != nil {
		return t.gateway(id, g)
	}
	p := t.m.Proxies[id]
	if p == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownProxy, id)
	}
	sp := p.ServiceProxy
	if sp == nil || sp.DestinationServiceName == "" {
		return nil, fmt.Errorf("translate: proxy %q has no destination service", id)
	}
	b := newBuilder(t, sidecarMode)
	if !t.o.Plaintext {
		if err := caReady(t.m, id, sp.DestinationServiceName); err != nil {
			return nil, err
		}
		b.local = sp.DestinationServiceName
		b.addSecrets(sp.DestinationServiceName)
	}
	if err := b.inbound(id, p); err != nil {
		return nil, err
	}
	for i, u := range sp.Upstreams {
		if err := b.upstream(id, sp.DestinationServiceName, i, u); err != nil {
			return nil, err
		}
	}
	if port := transparentPort(sp, t.m.ProxyDefaults); port != 0 {
		if err := b.transparent(id, sp.DestinationServiceName, port, sp.Upstreams); err != nil {
			return nil, err
		}
	}
	r, err := b.resources()
	if err != nil {
		return nil, err
	}
	return t.traced(r, sp.DestinationServiceName)
}

// traced adds the mesh's tracing (proxy-defaults ConfigOTLPAddress) to a
// sidecar's or gateway's resources.
func (t *Translator) traced(r *Resources, service string) (*Resources, error) {
	var defaults map[string]any
	if t.m.ProxyDefaults != nil {
		defaults = t.m.ProxyDefaults.Config
	}
	tc, err := meshTracing(defaults)
	if err != nil || tc == nil {
		return r, err
	}
	if err := tc.addTracing(r, service); err != nil {
		return nil, err
	}
	return r, nil
}

// Proxyless translates the mesh for proxyless gRPC clients (see the
// package function Proxyless), once per Translator. The result shares
// messages with other calls' results: do not modify it.
func (t *Translator) Proxyless() (*Resources, error) {
	if t.m == nil {
		return nil, errNoMesh
	}
	r, err := t.proxyless.get(struct{}{}, t.buildProxyless)
	if err != nil {
		return nil, err
	}
	// Fresh slices, so a caller's append cannot reach the memoized lists.
	return &Resources{
		Listeners: slices.Clone(r.Listeners),
		Routes:    slices.Clone(r.Routes),
		Clusters:  slices.Clone(r.Clusters),
		Endpoints: slices.Clone(r.Endpoints),
		Secrets:   slices.Clone(r.Secrets),
	}, nil
}

func (t *Translator) buildProxyless() (*Resources, error) {
	b := newBuilder(t, proxylessMode)
	for _, name := range sortedKeys(t.m.Services) {
		s := t.m.Services[name]
		if len(s.Instances) == 0 {
			continue
		}
		if p := t.m.Protocol(name); p != "grpc" && p != "http2" {
			continue
		}
		ce, err := b.chain(name, clusterSettings{})
		if err != nil {
			return nil, err
		}
		b.routes[name] = ce.route
		l, err := apiListener(name)
		if err != nil {
			return nil, err
		}
		b.listeners[name] = unchecked(l)
	}
	return b.resources()
}

// checked is a resource and, when it is shared, the result of its
// ValidateAll, run once when it was built; a per-proxy resource is
// validated by resources.
type checked[T interface{ ValidateAll() error }] struct {
	res       T
	validated bool
	err       error
}

func unchecked[T interface{ ValidateAll() error }](res T) checked[T] {
	return checked[T]{res: res}
}

// validatedNow validates a shared resource once; kind and name are for the
// error, as resources would report it.
func validatedNow[T interface{ ValidateAll() error }](kind, name string, res T) checked[T] {
	return checked[T]{res: res, validated: true, err: validate(kind, name, res)}
}

// check returns the resource's validation error, validating it now if it
// was not validated when built.
func (c checked[T]) check(kind, name string) error {
	if c.validated {
		return c.err
	}
	return validate(kind, name, c.res)
}

// chainKey names a chain: the service it starts from, compiled for one
// mode.
type chainKey struct {
	md      mode
	service string
}

// chainEntry is one compiled chain and what every proxy (or the proxyless
// set) takes from it; its targets' clusters and endpoints are built on
// demand (clusterOf, endpointsFor).
type chainEntry struct {
	ch *chain
	// route is the chain's RouteConfiguration when it is HTTP: named after
	// the service, for domains "*" (sidecars) or the service (proxyless).
	route checked[*routev3.RouteConfiguration]
	// outbound is the network filter of a sidecar's listener for this
	// upstream, whatever its bind address: the HTTP connection manager
	// taking the route over RDS, or a tcp_proxy to the only target.
	outbound outboundFilter
}

// outboundFilter is a shared filter or why it could not be built: err is
// returned as it is, marshalErr wrapped with the listener's name (as
// httpListener and tcpListener do).
type outboundFilter struct {
	f          *listenerv3.Filter
	err        error
	marshalErr error
}

// targetKey names one target's endpoints, for one mode. A target's
// endpoints depend only on the target: its resolution is its own
// service-resolver's (subset, failover), whichever chain reached it.
type targetKey struct {
	md mode
	t  target
}

// clusterKey names one target's cluster: the target's resolution, the
// settings of the upstream whose chain reached it and, with mesh TLS, the
// service whose leaf certificate the cluster presents.
type clusterKey struct {
	targetKey
	s     clusterSettings
	local string
}

// chain compiles service's chain for md once and builds its targets.
func (t *Translator) chain(md mode, service string) (*chainEntry, error) {
	return t.chains.get(chainKey{md, service}, func() (*chainEntry, error) {
		ch, err := compileChain(t.m, service)
		if err != nil {
			return nil, err
		}
		ce := &chainEntry{ch: ch}
		if isHTTP(ch.protocol) {
			domains := []string{"*"}
			if md == proxylessMode {
				domains = []string{service}
			}
			ce.route = validatedNow("route", service, routeConfig(service, domains, ch))
		}
		if md == sidecarMode {
			ce.outbound = upstreamFilter(service, ch)
		}
		return ce, nil
	})
}

// clusterOf builds res's cluster once per mode, upstream settings and
// local service (empty: a plaintext cluster).
func (t *Translator) clusterOf(md mode, res *resolution, s clusterSettings, local string) (checked[*clusterv3.Cluster], error) {
	return t.clusters.get(clusterKey{targetKey{md, res.target}, s, local}, func() (checked[*clusterv3.Cluster], error) {
		c, err := edsCluster(t.m, res, md, s)
		if err != nil {
			return checked[*clusterv3.Cluster]{}, err
		}
		if local != "" {
			ts, err := upstreamTLS(t.m, local, res)
			if err != nil {
				return checked[*clusterv3.Cluster]{}, fmt.Errorf("translate: cluster %q: %w", res.target.cluster(), err)
			}
			c.TransportSocket = ts
		}
		return validatedNow("cluster", res.target.cluster(), c), nil
	})
}

// endpointsFor builds res's ClusterLoadAssignment once per mode.
func (t *Translator) endpointsFor(md mode, res *resolution) checked[*endpointv3.ClusterLoadAssignment] {
	cla, _ := t.endpoints.get(targetKey{md, res.target}, func() (checked[*endpointv3.ClusterLoadAssignment], error) {
		return validatedNow("endpoints", res.target.cluster(), loadAssignment(t.m, res, md)), nil
	})
	return cla
}

// upstreamFilter is the filter of every sidecar listener for upstream dest.
func upstreamFilter(dest string, ch *chain) outboundFilter {
	statPrefix := "upstream." + dest
	if isHTTP(ch.protocol) {
		h, err := connectionManager(statPrefix, dest, nil)
		if err != nil {
			return outboundFilter{err: err}
		}
		f, err := hcmFilter(h)
		return outboundFilter{f: f, marshalErr: err}
	}
	// A tcp chain has no router or splitter: one route, one target.
	target := ch.routes[len(ch.routes)-1].to.resolved.target.cluster()
	f, err := tcpProxyFilter(statPrefix, target)
	return outboundFilter{f: f, marshalErr: err}
}

// inboundKey is what public_listener's filters depend on.
type inboundKey struct {
	http bool
	// grpc services get no x-forwarded-client-cert (as in Consul).
	grpc bool
	// requestTimeout is local_request_timeout_ms, negative when unset
	// (http only).
	requestTimeout time.Duration
	// service is the destination whose intentions the RBAC filter
	// enforces; empty with mesh TLS off (no RBAC filter).
	service string
}

// inboundFilters are public_listener's filters: an HTTP connection manager
// routing everything to local_app, or a tcp_proxy to it, each behind the
// service's RBAC filter when there is one. With mesh TLS, HTTP services
// other than grpc also get the caller's identity in x-forwarded-client-cert,
// as Consul sets it up: appended to what the calling sidecar forwards (its
// outbound side sanitizes what its app sent), with the subject, URI SAN,
// DNS SANs, certificate and chain of the peer.
func (t *Translator) inboundFilters(k inboundKey) ([]*listenerv3.Filter, error) {
	if !k.http {
		k.requestTimeout, k.grpc = 0, false
	}
	return t.inbound.get(k, func() ([]*listenerv3.Filter, error) {
		if !k.http {
			f, err := tcpProxyFilter(publicListenerName, localAppName)
			if err != nil {
				return nil, fmt.Errorf("translate: listener %q: %w", publicListenerName, err)
			}
			if k.service == "" {
				return []*listenerv3.Filter{f}, nil
			}
			rbac, err := networkRBACFilter(t.m, k.service)
			if err != nil {
				return nil, err
			}
			return []*listenerv3.Filter{rbac, f}, nil
		}
		h, err := connectionManager(publicListenerName, "", localAppRoute(k.requestTimeout))
		if err != nil {
			return nil, err
		}
		if k.service != "" {
			rbac, err := httpRBACFilter(t.m, k.service)
			if err != nil {
				return nil, err
			}
			h.HttpFilters = append([]*hcmv3.HttpFilter{rbac}, h.HttpFilters...)
			if !k.grpc {
				h.ForwardClientCertDetails = hcmv3.HttpConnectionManager_APPEND_FORWARD
				h.SetCurrentClientCertDetails = &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{
					Subject: wrapperspb.Bool(true), Cert: true, Chain: true, Dns: true, Uri: true,
				}
			}
		}
		f, err := hcmFilter(h)
		if err != nil {
			return nil, fmt.Errorf("translate: listener %q: %w", publicListenerName, err)
		}
		return []*listenerv3.Filter{f}, nil
	})
}

// inboundTLS is public_listener's transport socket for service, built once.
func (t *Translator) inboundTLS(service string) (*corev3.TransportSocket, error) {
	return t.inTLS.get(service, func() (*corev3.TransportSocket, error) {
		ts, err := inboundTLS(service)
		if err != nil {
			return nil, fmt.Errorf("translate: listener %q: %w", publicListenerName, err)
		}
		return ts, nil
	})
}

// secret builds the secret name once and validates it.
func (t *Translator) secret(name string, build func() *tlsv3.Secret) checked[*tlsv3.Secret] {
	s, _ := t.secrets.get(name, func() (checked[*tlsv3.Secret], error) {
		return validatedNow("secret", name, build()), nil
	})
	return s
}

// localAppKey is what local_app depends on.
type localAppKey struct {
	host           string
	port           int
	connectTimeout time.Duration
	protocol       string
}

// localApp is the local_app cluster for k, validated once.
func (t *Translator) localApp(k localAppKey) (checked[*clusterv3.Cluster], error) {
	return t.localApps.get(k, func() (checked[*clusterv3.Cluster], error) {
		c, err := localAppCluster(k.host, k.port, k.connectTimeout, k.protocol)
		if err != nil {
			return checked[*clusterv3.Cluster]{}, err
		}
		return validatedNow("cluster", localAppName, c), nil
	})
}

// memo builds each key's value once, however many goroutines ask for it at
// the same time, and keeps the error with the value.
type memo[K comparable, V any] struct {
	mu      sync.Mutex
	entries map[K]*memoEntry[V]
}

type memoEntry[V any] struct {
	once sync.Once
	v    V
	err  error
}

// get returns k's value, calling build the first time. A panic in build
// becomes the memoized error: every caller, the first included, gets it,
// rather than a zero value behind a spent sync.Once.
func (c *memo[K, V]) get(k K, build func() (V, error)) (V, error) {
	c.mu.Lock()
	e := c.entries[k]
	if e == nil {
		if c.entries == nil {
			c.entries = map[K]*memoEntry[V]{}
		}
		e = &memoEntry[V]{}
		c.entries[k] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				var zero V
				e.v, e.err = zero, fmt.Errorf("translate: internal error building %v: %v", k, r)
			}
		}()
		e.v, e.err = build()
	})
	return e.v, e.err
}
