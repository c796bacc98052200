package translate

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	quicv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/quic/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/hashicorp/consul/api"
)

// This file translates an ingress gateway: a Consul service of kind
// "ingress-gateway" whose ingress-gateway config entry (named like the
// service) lists public listeners and the mesh services behind them.
//
//   - Each entry listener becomes a listener "<protocol>:<address>:<port>"
//     on the gateway's service address (or its node's). An http, http2 or
//     grpc listener runs an HTTP connection manager (HTTP/1.1 and h2,
//     ALPN or prior knowledge) taking route configuration "<port>" over
//     RDS: one virtual host per service, answering its Hosts (default
//     "<service>.ingress.*", as in Consul, which also adds each host
//     without a port or wildcard with ":<port>"),
//     with the routes of the service's discovery chain (service-router,
//     -splitter, -resolver). A tcp listener proxies to its one service.
//   - The clusters are the chains' targets, as a sidecar's, with mutual
//     TLS presenting the gateway's own leaf certificate: to the services'
//     sidecars the gateway is spiffe://<td>/ns/default/dc/<dc>/svc/<name>,
//     so intentions from the gateway's name apply.
//   - TLS (the entry's or the listener's Enabled) serves the gateway's
//     Connect CA leaf over SDS, or the certificate and key files named in
//     the entry's Meta.
//   - The entry's Meta adds what Consul's entry has no field for (meta.go):
//     JWT validation with jwt-provider entries, a local rate limit and an
//     HTTP/3 listener.

// gatewayStatPrefix prefixes the gateway listeners' statistics.
const gatewayStatPrefix = "ingress_upstream_"

// gateway translates the ingress gateway registered with service ID id.
func (t *Translator) gateway(id string, g *api.CatalogService) (*Resources, error) {
	name := g.ServiceName
	if name == "" {
		return nil, fmt.Errorf("translate: gateway %q has no service name", id)
	}
	b := newBuilder(t, sidecarMode)
	entry := t.m.IngressGateways[name]
	if entry == nil || len(entry.Listeners) == 0 {
		// As in Consul: a gateway without an entry has no listeners yet.
		return b.resources()
	}
	ref := entryRef{api.IngressGateway, name}
	opts, err := gatewayOptionsOf(t.m, entry)
	if err != nil {
		return nil, err
	}
	if !t.o.Plaintext {
		if err := caReady(t.m, id, name); err != nil {
			return nil, err
		}
		b.local = name
		b.addSecrets(name)
	}
	host := g.ServiceAddress
	if host == "" {
		host = g.Address
	}
	if host == "" {
		return nil, fmt.Errorf("translate: gateway %q has no address (neither service nor node address)", id)
	}
	settings, err := ingressSettings(ref, entry)
	if err != nil {
		return nil, err
	}
	gb := &gatewayBuilder{builder: b, id: id, name: name, host: host, entry: entry, ref: ref, opts: opts, settings: settings}
	listeners := slices.Clone(entry.Listeners)
	slices.SortStableFunc(listeners, func(a, b api.IngressListener) int { return a.Port - b.Port })
	for i, l := range listeners {
		if err := gb.listener(i, l); err != nil {
			return nil, err
		}
	}
	for _, c := range opts.jwksClusters {
		b.clusters[c.GetName()] = unchecked(c)
	}
	r, err := b.resources()
	if err != nil {
		return nil, err
	}
	return t.traced(r, name)
}

// gatewayBuilder adds one gateway's listeners to its builder.
type gatewayBuilder struct {
	*builder
	id, name, host string
	entry          *api.IngressGatewayConfigEntry
	ref            entryRef
	opts           *gatewayOptions
	// settings are the clusters' limits and passive health check by
	// service name (the entry's Defaults under the service's own).
	settings map[string]clusterSettings
}

// listenerProtocol is Consul's default: tcp.
func listenerProtocol(l api.IngressListener) string {
	if l.Protocol == "" {
		return "tcp"
	}
	return l.Protocol
}

func (gb *gatewayBuilder) listener(i int, l api.IngressListener) error {
	protocol := listenerProtocol(l)
	where := fmt.Sprintf("Listeners (port %d)", l.Port)
	if len(l.Services) == 0 {
		return entryErr(gb.ref, "%s: no services", where)
	}
	name := fmt.Sprintf("%s:%s:%d", protocol, gb.host, l.Port)
	if err := gb.bind(gb.id, name, gb.host, l.Port); err != nil {
		return err
	}
	tlsOn, err := gb.listenerTLS(where, l)
	if err != nil {
		return err
	}
	var filter *listenerv3.Filter
	switch {
	case protocol == "tcp":
		if filter, err = gb.tcpFilter(where, name, l); err != nil {
			return err
		}
	case isHTTP(protocol):
		routeName := strconv.Itoa(l.Port)
		if err := gb.routeConfig(where, routeName, l, tlsOn); err != nil {
			return err
		}
		h, err := gb.connectionManager(name, routeName, hcmv3.HttpConnectionManager_AUTO)
		if err != nil {
			return err
		}
		if filter, err = hcmFilter(h); err != nil {
			return fmt.Errorf("translate: listener %q: %w", name, err)
		}
	default:
		return entryErr(gb.ref, "%s: protocol %q is not supported (tcp, http, http2, grpc)", where, protocol)
	}
	lis := socketListener(name, gb.host, l.Port, filter)
	if tlsOn {
		ts, err := gb.downstreamTLS(l, protocol, false)
		if err != nil {
			return fmt.Errorf("translate: listener %q: %w", name, err)
		}
		lis.FilterChains[0].TransportSocket = ts
	}
	gb.listeners[name] = unchecked(lis)
	if gb.opts.http3 && isHTTP(protocol) {
		return gb.quicListener(l, protocol)
	}
	return nil
}

// listenerTLS reports whether the listener terminates TLS, and refuses
// what we do not translate: Consul's SDS (a certificate from an external
// SDS cluster) and cipher suites.
func (gb *gatewayBuilder) listenerTLS(where string, l api.IngressListener) (bool, error) {
	configs := []*api.GatewayTLSConfig{&gb.entry.TLS}
	if l.TLS != nil {
		configs = append(configs, l.TLS)
	}
	on := false
	for _, c := range configs {
		on = on || c.Enabled
		if c.SDS != nil {
			return false, entryErr(gb.ref, "%s: TLS.SDS is not supported: use the Connect CA (TLS.Enabled) or the %s and %s meta keys", where, MetaTLSCertFile, MetaTLSKeyFile)
		}
		if len(c.CipherSuites) > 0 {
			return false, entryErr(gb.ref, "%s: TLS.CipherSuites is not supported", where)
		}
	}
	for _, s := range l.Services {
		if s.TLS != nil && s.TLS.SDS != nil {
			return false, entryErr(gb.ref, "%s: service %q: TLS.SDS is not supported", where, s.Name)
		}
	}
	return on, nil
}

// service compiles one entry service's chain, checks it matches the
// listener's protocol family and adds its clusters.
func (gb *gatewayBuilder) service(where, protocol string, s api.IngressService) (*chainEntry, error) {
	if s.Name == "" {
		return nil, entryErr(gb.ref, "%s: a service has no name", where)
	}
	if s.Name == "*" {
		return nil, entryErr(gb.ref, "%s: the wildcard service \"*\" is not supported: list the services", where)
	}
	if s.Namespace != "" && s.Namespace != "default" || s.Partition != "" && s.Partition != "default" {
		return nil, entryErr(gb.ref, "%s: service %q: namespaces and partitions other than default are not supported", where, s.Name)
	}
	ce, err := gb.chain(s.Name, gb.settings[s.Name])
	if err != nil {
		return nil, err
	}
	if isHTTP(ce.ch.protocol) != isHTTP(protocol) {
		return nil, entryErr(gb.ref, "%s: service %q has protocol %q, which does not match the listener's %q", where, s.Name, ce.ch.protocol, protocol)
	}
	return ce, nil
}

// tcpFilter proxies a tcp listener to its one service.
func (gb *gatewayBuilder) tcpFilter(where, name string, l api.IngressListener) (*listenerv3.Filter, error) {
	if len(l.Services) != 1 {
		return nil, entryErr(gb.ref, "%s: a tcp listener takes exactly one service, not %d", where, len(l.Services))
	}
	ce, err := gb.service(where, "tcp", l.Services[0])
	if err != nil {
		return nil, err
	}
	target := ce.ch.routes[len(ce.ch.routes)-1].to.resolved.target.cluster()
	f, err := tcpProxyFilter(gatewayStatPrefix+l.Services[0].Name, target)
	if err != nil {
		return nil, fmt.Errorf("translate: listener %q: %w", name, err)
	}
	return f, nil
}

// routeConfig adds route configuration routeName: a virtual host per
// service.
func (gb *gatewayBuilder) routeConfig(where, routeName string, l api.IngressListener, tlsOn bool) error {
	rc := &routev3.RouteConfiguration{Name: routeName}
	owner := map[string]string{} // domain -> service
	for _, s := range l.Services {
		ce, err := gb.service(where, listenerProtocol(l), s)
		if err != nil {
			return err
		}
		domains := s.Hosts
		if len(domains) == 0 {
			// Consul's default host for a service on an HTTP listener;
			// the prefix match takes a port too.
			domains = []string{s.Name + ".ingress.*"}
		}
		domains = withPorts(domains, l.Port)
		for _, d := range domains {
			if err := checkDomain(d); err != nil {
				return entryErr(gb.ref, "%s: service %q: host %q: %v", where, s.Name, d, err)
			}
			key := strings.ToLower(d)
			if other, dup := owner[key]; dup {
				return entryErr(gb.ref, "%s: host %q is given to both %q and %q", where, d, other, s.Name)
			}
			owner[key] = s.Name
		}
		vh := &routev3.VirtualHost{
			Name:                    s.Name,
			Domains:                 domains,
			Routes:                  chainRoutes(ce.ch),
			RequestHeadersToAdd:     headersToAdd(s.RequestHeaders),
			RequestHeadersToRemove:  headersToRemove(s.RequestHeaders),
			ResponseHeadersToAdd:    headersToAdd(s.ResponseHeaders),
			ResponseHeadersToRemove: headersToRemove(s.ResponseHeaders),
		}
		rc.VirtualHosts = append(rc.VirtualHosts, vh)
	}
	if gb.opts.http3 {
		if !tlsOn {
			return entryErr(gb.ref, "%s: meta %s needs TLS on the listener (QUIC is always encrypted)", where, MetaHTTP3)
		}
		rc.ResponseHeadersToAdd = []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{
			Key: "alt-svc", Value: fmt.Sprintf(`h3=":%d"; ma=86400`, l.Port),
		}}}
	}
	gb.routes[routeName] = unchecked(rc)
	return nil
}

// withPorts adds "<host>:<port>" for every host without a port or a
// wildcard, as Consul does: a client sends the port in Host when it is not
// the scheme's default, and Envoy matches Host as sent.
func withPorts(hosts []string, port int) []string {
	out := slices.Clone(hosts)
	have := map[string]bool{}
	for _, h := range hosts {
		have[strings.ToLower(h)] = true
	}
	for _, h := range hosts {
		if strings.Contains(h, "*") || h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err == nil {
			continue
		}
		hp := h + ":" + strconv.Itoa(port)
		if !have[strings.ToLower(hp)] {
			have[strings.ToLower(hp)] = true
			out = append(out, hp)
		}
	}
	return out
}

// checkDomain accepts what Envoy accepts in a virtual host's domains:
// names with at most one "*", at the start or at the end ("*" alone
// matches everything).
func checkDomain(d string) error {
	switch n := strings.Count(d, "*"); {
	case d == "":
		return fmt.Errorf("empty")
	case n > 1 || n == 1 && !strings.HasPrefix(d, "*") && !strings.HasSuffix(d, "*"):
		return fmt.Errorf("a wildcard may only be the first or the last character")
	}
	return nil
}

// connectionManager is a gateway listener's HTTP connection manager: the
// gateway's HTTP filters (local rate limit, JWT) before the router.
func (gb *gatewayBuilder) connectionManager(name, routeName string, codec hcmv3.HttpConnectionManager_CodecType) (*hcmv3.HttpConnectionManager, error) {
	h, err := connectionManager(name, routeName, nil)
	if err != nil {
		return nil, fmt.Errorf("translate: listener %q: %w", name, err)
	}
	h.CodecType = codec
	h.HttpFilters = append(slices.Clone(gb.opts.httpFilters), h.HttpFilters...)
	return h, nil
}

// downstreamTLS is a gateway listener's TLS: the certificate files from
// the entry's Meta, else the gateway's Connect CA leaf over SDS; the
// entry's (or the listener's) TLS versions; ALPN h2 and http/1.1 for
// HTTP. quic is the QUIC listener's variant (TLS 1.3, h3).
func (gb *gatewayBuilder) downstreamTLS(l api.IngressListener, protocol string, quic bool) (*corev3.TransportSocket, error) {
	common := &tlsv3.CommonTlsContext{}
	switch {
	case gb.opts.certFile != "":
		common.TlsCertificates = []*tlsv3.TlsCertificate{{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: gb.opts.certFile}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: gb.opts.keyFile}},
		}}
	case gb.t.o.Plaintext:
		return nil, entryErr(gb.ref, "TLS needs the Connect CA, which is off (plaintext mesh): set meta %s and %s", MetaTLSCertFile, MetaTLSKeyFile)
	default:
		common.TlsCertificateSdsSecretConfigs = []*tlsv3.SdsSecretConfig{sdsSecret(LeafSecretName(gb.name))}
	}
	if quic {
		common.AlpnProtocols = []string{"h3"}
		return transportSocketNamed("envoy.transport_sockets.quic", &quicv3.QuicDownstreamTransport{
			DownstreamTlsContext: &tlsv3.DownstreamTlsContext{CommonTlsContext: common},
		})
	}
	params, err := gb.tlsParams(l)
	if err != nil {
		return nil, err
	}
	common.TlsParams = params
	if isHTTP(protocol) {
		common.AlpnProtocols = []string{"h2", "http/1.1"}
	}
	return transportSocket(&tlsv3.DownstreamTlsContext{CommonTlsContext: common})
}

// tlsVersions are Consul's names of TLS versions.
var tlsVersions = map[string]tlsv3.TlsParameters_TlsProtocol{
	"TLS_AUTO": tlsv3.TlsParameters_TLS_AUTO,
	"TLSv1_0":  tlsv3.TlsParameters_TLSv1_0,
	"TLSv1_1":  tlsv3.TlsParameters_TLSv1_1,
	"TLSv1_2":  tlsv3.TlsParameters_TLSv1_2,
	"TLSv1_3":  tlsv3.TlsParameters_TLSv1_3,
}

// tlsParams are the listener's TLS versions, else the entry's; nil when
// neither sets one.
func (gb *gatewayBuilder) tlsParams(l api.IngressListener) (*tlsv3.TlsParameters, error) {
	min, max := gb.entry.TLS.TLSMinVersion, gb.entry.TLS.TLSMaxVersion
	if l.TLS != nil {
		if l.TLS.TLSMinVersion != "" {
			min = l.TLS.TLSMinVersion
		}
		if l.TLS.TLSMaxVersion != "" {
			max = l.TLS.TLSMaxVersion
		}
	}
	if min == "" && max == "" {
		return nil, nil
	}
	p := &tlsv3.TlsParameters{}
	for _, v := range []struct {
		field, value string
		dst          *tlsv3.TlsParameters_TlsProtocol
	}{{"TLSMinVersion", min, &p.TlsMinimumProtocolVersion}, {"TLSMaxVersion", max, &p.TlsMaximumProtocolVersion}} {
		if v.value == "" {
			continue
		}
		ver, ok := tlsVersions[v.value]
		if !ok {
			return nil, entryErr(gb.ref, "TLS.%s: unknown version %q (TLS_AUTO, TLSv1_0 .. TLSv1_3)", v.field, v.value)
		}
		*v.dst = ver
	}
	return p, nil
}

// quicListener adds the HTTP/3 twin of an HTTP listener: the same port
// over UDP, the same routes and filters.
func (gb *gatewayBuilder) quicListener(l api.IngressListener, protocol string) error {
	name := fmt.Sprintf("quic:%s:%d", gb.host, l.Port)
	h, err := gb.connectionManager(name, strconv.Itoa(l.Port), hcmv3.HttpConnectionManager_HTTP3)
	if err != nil {
		return err
	}
	f, err := hcmFilter(h)
	if err != nil {
		return fmt.Errorf("translate: listener %q: %w", name, err)
	}
	ts, err := gb.downstreamTLS(l, protocol, true)
	if err != nil {
		return fmt.Errorf("translate: listener %q: %w", name, err)
	}
	lis := socketListener(name, gb.host, l.Port, f)
	lis.Address.GetSocketAddress().Protocol = corev3.SocketAddress_UDP
	lis.UdpListenerConfig = &listenerv3.UdpListenerConfig{QuicOptions: &listenerv3.QuicProtocolOptions{}}
	lis.FilterChains[0].TransportSocket = ts
	gb.listeners[name] = unchecked(lis)
	return nil
}

// ingressSettings resolves each service's cluster settings: the entry's
// Defaults, field by field under the service's own limits and passive
// health check (as Consul's ingress gateway does).
func ingressSettings(ref entryRef, e *api.IngressGatewayConfigEntry) (map[string]clusterSettings, error) {
	out := map[string]clusterSettings{}
	for _, l := range e.Listeners {
		for _, s := range l.Services {
			if _, done := out[s.Name]; done {
				continue
			}
			var d api.IngressServiceConfig
			if e.Defaults != nil {
				d = *e.Defaults
			}
			pick := func(own, def *uint32) *int {
				if own == nil {
					own = def
				}
				if own == nil {
					return nil
				}
				v := int(*own)
				return &v
			}
			limits := &api.UpstreamLimits{
				MaxConnections:        pick(s.MaxConnections, d.MaxConnections),
				MaxPendingRequests:    pick(s.MaxPendingRequests, d.MaxPendingRequests),
				MaxConcurrentRequests: pick(s.MaxConcurrentRequests, d.MaxConcurrentRequests),
			}
			passive := s.PassiveHealthCheck
			if passive == nil {
				passive = d.PassiveHealthCheck
			}
			var cs clusterSettings
			if err := cs.applyEntry(ref, "service "+strconv.Quote(s.Name), &api.UpstreamConfig{Limits: limits, PassiveHealthCheck: passive}); err != nil {
				return nil, err
			}
			out[s.Name] = cs
		}
	}
	return out, nil
}

// hostPort splits a URL host with the scheme's default port.
func hostPort(host, scheme string) (string, int, error) {
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		h, p = host, "80"
		if scheme == "https" {
			p = "443"
		}
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is out of range", p)
	}
	if h == "" {
		return "", 0, fmt.Errorf("no host")
	}
	return h, port, nil
}
