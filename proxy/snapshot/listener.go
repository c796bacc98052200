package snapshot

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// Envoy's connection manager defaults, and our two documented differences.
const (
	defaultMaxRequestHeadersKB   = 60
	defaultStreamIdleTimeout     = 5 * time.Minute
	defaultConnIdleTimeout       = time.Hour
	defaultDrainTimeout          = 5 * time.Second
	defaultRequestHeadersTimeout = 10 * time.Second // Envoy: disabled
	defaultMaxConcurrentStreams  = 1000             // Envoy: 2147483647
	defaultServerName            = "outrigger"
)

func (c *converter) listener(p string, l *listenerv3.Listener) Listener {
	if l.GetUdpListenerConfig() != nil {
		return c.quicListener(p, l)
	}
	out := Listener{Config: listener.Config{Name: l.GetName(), OriginalDst: hasOriginalDstFilter(l)}}
	if l.GetName() == "" {
		c.fail(resource.Join(p, "name"), "a listener needs a name")
	}
	out.Config.Address = c.socketAddress(resource.Join(p, "address"), l.GetAddress())
	if l.GetAddress().GetSocketAddress().GetProtocol() == corev3.SocketAddress_UDP {
		c.fail(resource.Join(p, "address.socket_address.protocol"), "UDP needs udp_listener_config.quic_options (an HTTP/3 listener)")
	}

	var entries []chainEntry
	for i, fc := range l.GetFilterChains() {
		cp := resource.Index(resource.Join(p, "filter_chains"), i)
		chain, h, ok := c.chain(cp, fc)
		if !ok {
			continue
		}
		entries = append(entries, splitBySpecificity(i, chain, h)...)
	}
	c.checkDuplicateMatches(p, l.GetFilterChains())
	sortBySpecificity(entries)
	for _, e := range entries {
		out.Config.FilterChains = append(out.Config.FilterChains, e.chain)
		out.HTTP = append(out.HTTP, e.http)
	}

	if d := l.GetDefaultFilterChain(); d != nil {
		dp := resource.Join(p, "default_filter_chain")
		if d.GetFilterChainMatch() != nil {
			c.fail(resource.Join(dp, "filter_chain_match"), "the default filter chain takes no match")
		}
		if chain, h, ok := c.chain(dp, d); ok {
			out.Config.DefaultChain = &chain
			out.DefaultHTTP = &h
		}
	}
	if len(l.GetFilterChains()) == 0 && l.GetDefaultFilterChain() == nil {
		c.fail(resource.Join(p, "filter_chains"), "a listener needs at least one filter chain")
	}
	if l.GetTrafficDirection() == corev3.TrafficDirection_OUTBOUND {
		// Envoy names an outbound listener's server spans "egress <host>".
		for i := range out.HTTP {
			if t := out.HTTP[i].Tracing; t != nil {
				t.Operation = "egress"
			}
		}
		if d := out.DefaultHTTP; d != nil && d.Tracing != nil {
			d.Tracing.Operation = "egress"
		}
	}
	return out
}

// chain converts one filter chain: its match, its TLS and its one network
// filter, the HTTP connection manager or the TCP proxy. A TCP proxy chain's
// config goes in FilterChain.TCPProxy; its hcm.Config is tcpChainHTTP, a
// placeholder with an empty inline route table, so Listener.HTTP stays
// parallel to the chains and the snapshot's route checks find nothing to
// resolve in it.
func (c *converter) chain(p string, fc *listenerv3.FilterChain) (listener.FilterChain, hcm.Config, bool) {
	out := listener.FilterChain{Name: fc.GetName()}
	m := fc.GetFilterChainMatch()
	mp := resource.Join(p, "filter_chain_match")
	for i, n := range m.GetServerNames() {
		if strings.Contains(n, "*") && (!strings.HasPrefix(n, "*.") || strings.Count(n, "*") > 1) {
			c.fail(resource.Index(resource.Join(mp, "server_names"), i), "%q: a wildcard must be a leading \"*.\"", n)
		}
		out.Match.ServerNames = append(out.Match.ServerNames, strings.ToLower(n))
	}
	out.Match.ALPN = m.GetApplicationProtocols()
	c.destinationMatch(mp, m, &out.Match)
	switch tp := m.GetTransportProtocol(); tp {
	case "", "tls", "raw_buffer":
		out.Match.TransportProtocol = tp
	default:
		c.fail(resource.Join(mp, "transport_protocol"), "%q is not supported yet (tls or raw_buffer)", tp)
	}

	filters := fc.GetFilters()
	fp := resource.Join(p, "filters")
	if len(filters) == 0 {
		c.fail(fp, "the HTTP connection manager or the TCP proxy is required, last")
		return out, hcm.Config{}, false
	}
	for i, f := range filters[:len(filters)-1] {
		out.ConnFilters = c.connFilter(resource.Index(fp, i), f, out.ConnFilters)
	}
	terminal := filters[len(filters)-1]
	fp = resource.Index(fp, len(filters)-1)
	if isTCPProxy(terminal.GetTypedConfig()) {
		out, h, ok := c.tcpChain(p, fp, fc, terminal, out)
		if ok {
			c.checkMatch(mp, fc, &out)
		}
		return out, h, ok
	}
	var mgr hcmv3.HttpConnectionManager
	if !c.unpack(resource.Join(fp, "typed_config"), terminal.GetTypedConfig(), &mgr) {
		return out, hcm.Config{}, false
	}
	if mgr.GetCodecType() == hcmv3.HttpConnectionManager_HTTP3 {
		c.fail(resource.Join(fp, "typed_config.codec_type"), "HTTP3 needs a QUIC listener (udp_listener_config.quic_options)")
	}
	settings, h := c.connectionManager(resource.Join(fp, "typed_config"), &mgr)
	out.HTTP = settings

	if ts := fc.GetTransportSocket(); ts != nil {
		tp := resource.Join(resource.Join(p, "transport_socket"), "typed_config")
		if isQUICTransport(ts.GetTypedConfig()) {
			c.fail(tp, "envoy.transport_sockets.quic needs a QUIC listener (udp_listener_config.quic_options)")
			return out, h, true
		}
		var dtc tlsv3.DownstreamTlsContext
		if c.unpack(tp, ts.GetTypedConfig(), &dtc) {
			out.TLS = c.serverTLS(tp, &dtc, settings.Codec)
		}
	}
	c.checkMatch(mp, fc, &out)
	return out, h, true
}

// checkMatch refuses a filter_chain_match (at mp) that the converted chain
// could never serve, naming the field: the listener's own check
// (listener.MatchConflict), run here so that a bootstrap fails validation
// and an xDS update is refused instead of the listener failing to start.
// A chain whose transport_socket did not convert was reported already.
func (c *converter) checkMatch(mp string, fc *listenerv3.FilterChain, out *listener.FilterChain) {
	if fc.GetTransportSocket() != nil && out.TLS == nil {
		return
	}
	if field, reason := listener.MatchConflict(out); field != "" {
		c.fail(resource.Join(mp, field), "%s", reason)
	}
}

// unpack decodes a typed_config into dst, failing on a missing config or
// another type.
func (c *converter) unpack(path string, a *anypb.Any, dst proto.Message) bool {
	if a == nil {
		c.fail(path, "a typed_config is required")
		return false
	}
	want := dst.ProtoReflect().Descriptor().FullName()
	if !a.MessageIs(dst) {
		c.fail(path, "%s is not allowed here (want %s%s)", a.GetTypeUrl(), resource.TypeURLPrefix, want)
		return false
	}
	if err := a.UnmarshalTo(dst); err != nil {
		c.fail(path, "cannot decode %s: %v", a.GetTypeUrl(), err)
		return false
	}
	return true
}

func (c *converter) connectionManager(p string, m *hcmv3.HttpConnectionManager) (listener.HTTPSettings, hcm.Config) {
	// common_http_protocol_options.idle_timeout unset is Envoy's 1h; an
	// explicit 0s disables it (a zero IdleTimeout in the listener).
	s := listener.HTTPSettings{
		MaxRequestHeadersBytes: defaultMaxRequestHeadersKB * 1024,
		RequestHeadersTimeout:  duration(m.GetRequestHeadersTimeout(), defaultRequestHeadersTimeout),
		StreamIdleTimeout:      duration(m.GetStreamIdleTimeout(), defaultStreamIdleTimeout),
		IdleTimeout:            duration(m.GetCommonHttpProtocolOptions().GetIdleTimeout(), defaultConnIdleTimeout),
		MaxConcurrentStreams:   defaultMaxConcurrentStreams,
		DrainTimeout:           duration(m.GetDrainTimeout(), defaultDrainTimeout),
	}
	switch m.GetCodecType() {
	case hcmv3.HttpConnectionManager_HTTP1:
		s.Codec = listener.CodecHTTP1
	case hcmv3.HttpConnectionManager_HTTP2:
		s.Codec = listener.CodecHTTP2
	default:
		s.Codec = listener.CodecAuto
	}
	if kb := m.GetMaxRequestHeadersKb(); kb != nil {
		s.MaxRequestHeadersBytes = int(kb.GetValue()) * 1024
	}
	if n := m.GetHttp2ProtocolOptions().GetMaxConcurrentStreams(); n != nil {
		s.MaxConcurrentStreams = n.GetValue()
	}
	if m.GetCommonHttpProtocolOptions().GetMaxRequestsPerConnection() != nil {
		c.fail(resource.Join(p, "common_http_protocol_options.max_requests_per_connection"), "is not supported yet on the connection manager")
	}

	h := hcm.Config{
		StatPrefix:                m.GetStatPrefix(),
		UseRemoteAddress:          m.GetUseRemoteAddress().GetValue(),
		XFFNumTrustedHops:         m.GetXffNumTrustedHops(),
		SkipXFFAppend:             m.GetSkipXffAppend(),
		GenerateRequestID:         true,
		PreserveExternalRequestID: m.GetPreserveExternalRequestId(),
		StreamIdleTimeout:         s.StreamIdleTimeout,
		RequestTimeout:            duration(m.GetRequestTimeout(), 0),
		MaxStreamDuration:         duration(m.GetCommonHttpProtocolOptions().GetMaxStreamDuration(), 0),
		ServerName:                defaultServerName,
		ServerHeaderPassThrough:   m.GetServerHeaderTransformation() == hcmv3.HttpConnectionManager_PASS_THROUGH,
	}
	if g := m.GetGenerateRequestId(); g != nil {
		h.GenerateRequestID = g.GetValue()
	}
	if n := m.GetServerName(); n != "" {
		h.ServerName = n
	}
	switch {
	case m.GetRouteConfig() != nil:
		h.Routes = c.route(resource.Join(p, "route_config"), m.GetRouteConfig())
	case m.GetRds() != nil:
		h.RDSName = m.GetRds().GetRouteConfigName()
		if m.GetRds().GetConfigSource().GetPathConfigSource() != nil {
			c.fail(resource.Join(p, "rds.config_source.path_config_source"), "is not supported: routes come over ads")
		}
		c.routeRefs = append(c.routeRefs, reference{path: resource.Join(p, "rds.route_config_name"), name: h.RDSName})
	default:
		c.fail(p, "route_config or rds is required")
	}
	for i, u := range m.GetUpgradeConfigs() {
		if u.GetEnabled() != nil && !u.GetEnabled().GetValue() {
			continue
		}
		t := strings.ToLower(u.GetUpgradeType())
		if t == "" {
			c.fail(resource.Index(resource.Join(p, "upgrade_configs"), i), "upgrade_type is required")
		}
		h.Upgrades = append(h.Upgrades, t)
	}
	h.ClientCert = clientCert(m)
	// A CidrRange without prefix_len is a /0, as Envoy documents it (and
	// as RBAC and prefix_ranges read it). Here that would make every
	// client internal (trusted with x-envoy-* headers) while the address
	// looks like one host: refused unless the address is unspecified too.
	for i, r := range m.GetInternalAddressConfig().GetCidrRanges() {
		rp := resource.Index(resource.Join(p, "internal_address_config.cidr_ranges"), i)
		if r.GetPrefixLen() == nil {
			if a, err := netip.ParseAddr(r.GetAddressPrefix()); err == nil && !a.IsUnspecified() {
				c.fail(resource.Join(rp, "prefix_len"), "is required with address_prefix %s: unset it is 0, which makes every client internal", r.GetAddressPrefix())
				continue
			}
		}
		if pfx := c.cidr(rp, r); pfx.IsValid() {
			h.InternalAddresses = append(h.InternalAddresses, pfx)
		}
	}
	h.Filters = c.httpFilters(resource.Join(p, "http_filters"), m.GetHttpFilters())
	if t := m.GetTracing(); t != nil {
		h.Tracing = c.tracingConfig(resource.Join(p, "tracing"), t)
	}
	for i, al := range m.GetAccessLog() {
		ap := resource.Join(resource.Index(resource.Join(p, "access_log"), i), "typed_config")
		if log, ok := c.accessLog(ap, al.GetTypedConfig()); ok {
			h.AccessLogs = append(h.AccessLogs, log)
		}
	}
	return s, h
}

// chainEntry is one filter chain, or the part of one whose server names
// share a specificity, placed where Envoy's most-specific-match rules put it.
type chainEntry struct {
	index       int // position in the listener, the last tie-breaker
	class       int // 0 exact server names, 1 wildcard, 2 none
	wildcardLen int // longer wildcard suffixes first
	chain       listener.FilterChain
	http        hcm.Config
}

// splitBySpecificity splits a chain whose server names mix exact names and
// wildcards of different lengths, so each part can be ordered on its own.
func splitBySpecificity(index int, fc listener.FilterChain, h hcm.Config) []chainEntry {
	if len(fc.Match.ServerNames) == 0 {
		return []chainEntry{{index: index, class: 2, chain: fc, http: h}}
	}
	type key struct{ class, n int }
	groups := map[key][]string{}
	var order []key
	for _, n := range fc.Match.ServerNames {
		k := key{0, 0}
		if strings.HasPrefix(n, "*.") {
			k = key{1, len(n)}
		}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], n)
	}
	out := make([]chainEntry, 0, len(order))
	for _, k := range order {
		part := fc
		part.Match.ServerNames = groups[k]
		out = append(out, chainEntry{index: index, class: k.class, wildcardLen: k.n, chain: part, http: h})
	}
	return out
}

func sortBySpecificity(entries []chainEntry) {
	set := func(b bool) int {
		if b {
			return 0
		}
		return 1
	}
	sort.SliceStable(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		if a.class != b.class {
			return a.class < b.class
		}
		if a.wildcardLen != b.wildcardLen {
			return a.wildcardLen > b.wildcardLen
		}
		if x, y := set(a.chain.Match.TransportProtocol != ""), set(b.chain.Match.TransportProtocol != ""); x != y {
			return x < y
		}
		if x, y := set(len(a.chain.Match.ALPN) > 0), set(len(b.chain.Match.ALPN) > 0); x != y {
			return x < y
		}
		return a.index < b.index
	})
}

// checkDuplicateMatches rejects two chains that match the same connections,
// as Envoy does.
func (c *converter) checkDuplicateMatches(p string, chains []*listenerv3.FilterChain) {
	seen := map[string]int{}
	for i, fc := range chains {
		m := fc.GetFilterChainMatch()
		names := orEmpty(m.GetServerNames())
		alpns := orEmpty(m.GetApplicationProtocols())
		dests := destinationKeys(m)
		reported := false
		for _, d := range dests {
			for _, n := range names {
				for _, a := range alpns {
					k := fmt.Sprintf("%s\x00%s\x00%s\x00%s", d, strings.ToLower(n), m.GetTransportProtocol(), a)
					if prev, dup := seen[k]; dup && prev != i && !reported {
						c.fail(resource.Index(resource.Join(p, "filter_chains"), i),
							"filter_chain_match is the same as filter_chains[%d]'s", prev)
						reported = true
					}
					seen[k] = i
				}
			}
		}
	}
}

func orEmpty(s []string) []string {
	if len(s) == 0 {
		return []string{""}
	}
	return s
}

// connFilter converts a network filter listed before the chain's last
// (the connection manager or the TCP proxy) and appends it to out.
func (c *converter) connFilter(fp string, f *listenerv3.Filter, out []listener.ConnFilter) []listener.ConnFilter {
	tp := resource.Join(fp, "typed_config")
	a := f.GetTypedConfig()
	var cf listener.ConnFilter
	switch strings.TrimPrefix(a.GetTypeUrl(), resource.TypeURLPrefix) {
	case string(resource.NetworkRBAC):
		cf = c.rbacNetworkFilter(tp, a)
	case string(resource.NetworkLocalRateLimit):
		cf = c.localRateLimitNetworkFilter(tp, a)
	case string(resource.HTTPConnectionManager), string(resource.TCPProxy):
		c.fail(fp, "the %s filter must be the chain's last", f.GetName())
	default:
		c.fail(tp, "%s is not supported yet before the connection manager or the TCP proxy", a.GetTypeUrl())
	}
	if cf != nil {
		out = append(out, cf)
	}
	return out
}

// clientCert converts forward_client_cert_details and
// set_current_client_cert_details (subject defaults to false, as in Envoy).
func clientCert(m *hcmv3.HttpConnectionManager) hcm.ClientCert {
	cc := hcm.ClientCert{}
	switch m.GetForwardClientCertDetails() {
	case hcmv3.HttpConnectionManager_FORWARD_ONLY:
		cc.Mode = hcm.ClientCertForwardOnly
	case hcmv3.HttpConnectionManager_APPEND_FORWARD:
		cc.Mode = hcm.ClientCertAppendForward
	case hcmv3.HttpConnectionManager_SANITIZE_SET:
		cc.Mode = hcm.ClientCertSanitizeSet
	case hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY:
		cc.Mode = hcm.ClientCertAlwaysForwardOnly
	}
	if d := m.GetSetCurrentClientCertDetails(); d != nil {
		cc.Subject = d.GetSubject().GetValue()
		cc.Cert, cc.Chain, cc.DNS, cc.URI = d.GetCert(), d.GetChain(), d.GetDns(), d.GetUri()
	}
	return cc
}
