package snapshot

import (
	"crypto/tls"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	quicv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/quic/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/h3"
	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// quicListener converts a listener with udp_listener_config.quic_options:
// HTTP/3 over QUIC on a UDP socket. Each filter chain has the connection
// manager with codec_type HTTP3 as its only network filter and
// envoy.transport_sockets.quic (QuicDownstreamTransport) as its transport
// socket; with more than one, each matches on server_names (the client's
// SNI) alone, and at most one has no match. The chains land in
// Config.FilterChains like a TCP listener's, so the server builds their
// handlers the same way; the QUIC settings go in Listener.QUIC (with
// Chains, whose handlers the server fills in from FilterChains, when the
// listener has several chains or names).
func (c *converter) quicListener(p string, l *listenerv3.Listener) Listener {
	out := Listener{Config: listener.Config{Name: l.GetName()}}
	if l.GetName() == "" {
		c.fail(resource.Join(p, "name"), "a listener needs a name")
	}
	ap := resource.Join(p, "address")
	out.Config.Address = c.socketAddress(ap, l.GetAddress())
	if l.GetAddress().GetSocketAddress().GetProtocol() != corev3.SocketAddress_UDP {
		c.fail(resource.Join(ap, "socket_address.protocol"), "a QUIC listener (udp_listener_config.quic_options) needs protocol UDP")
	}
	up := resource.Join(p, "udp_listener_config")
	qo := l.GetUdpListenerConfig().GetQuicOptions()
	if qo == nil {
		c.fail(resource.Join(up, "quic_options"), "is required: only QUIC (HTTP/3) listeners are supported on UDP")
	}
	q := &h3.Config{
		Name:                 l.GetName(),
		Address:              out.Config.Address,
		IdleTimeout:          duration(qo.GetIdleTimeout(), h3.DefaultIdleTimeout),
		HandshakeTimeout:     duration(qo.GetCryptoHandshakeTimeout(), h3.DefaultHandshakeTimeout),
		MaxConcurrentStreams: h3.DefaultMaxConcurrentStreams,
	}
	if n := qo.GetQuicProtocolOptions().GetMaxConcurrentStreams(); n != nil { // at least 1 (PGV)
		q.MaxConcurrentStreams = n.GetValue()
	}
	if l.GetDefaultFilterChain() != nil {
		c.fail(resource.Join(p, "default_filter_chain"), "is not supported on a QUIC listener: give a filter chain without filter_chain_match")
	}
	chains := l.GetFilterChains()
	if len(chains) == 0 {
		c.fail(resource.Join(p, "filter_chains"), "a QUIC listener needs a filter chain")
		return out
	}
	named := len(chains) > 1
	fallback := -1
	taken := map[string]int{}
	for i, fc := range chains {
		cp := resource.Index(resource.Join(p, "filter_chains"), i)
		qc, chain, h, early, ok := c.quicChain(cp, fc)
		if !ok {
			return out
		}
		if len(qc.ServerNames) > 0 {
			named = true
		} else if fallback >= 0 {
			c.fail(cp, "a second chain without filter_chain_match.server_names (filter_chains[%d] is the first): a QUIC listener picks its chain by SNI", fallback)
		} else {
			fallback = i
		}
		for k, n := range qc.ServerNames {
			if j, dup := taken[n]; dup {
				c.fail(resource.Index(resource.Join(cp, "filter_chain_match.server_names"), k), "%q is also a server name of filter_chains[%d]", n, j)
			}
			taken[n] = i
		}
		if i == 0 {
			q.TLS, q.EarlyData, q.MaxRequestHeadersBytes = qc.TLS, early, chain.HTTP.MaxRequestHeadersBytes
		} else {
			tp := resource.Join(cp, "transport_socket.typed_config.enable_early_data")
			if early != q.EarlyData {
				c.fail(tp, "every chain of a QUIC listener must set the same enable_early_data (0-RTT is a property of the socket)")
			}
			if chain.HTTP.MaxRequestHeadersBytes != q.MaxRequestHeadersBytes {
				c.fail(resource.Join(cp, "filters[0].typed_config.max_request_headers_kb"), "every chain of a QUIC listener must have the same max_request_headers_kb")
			}
		}
		q.Chains = append(q.Chains, qc)
		out.Config.FilterChains = append(out.Config.FilterChains, chain)
		out.HTTP = append(out.HTTP, h)
	}
	if !named {
		q.Chains = nil // one chain for every connection: TLS and Handler
	}
	out.QUIC = q
	return out
}

// quicChain converts one filter chain of a QUIC listener (at path cp).
func (c *converter) quicChain(cp string, fc *listenerv3.FilterChain) (h3.Chain, listener.FilterChain, hcm.Config, bool, bool) {
	qc := h3.Chain{Name: fc.GetName()}
	if m := fc.GetFilterChainMatch(); m != nil {
		mp := resource.Join(cp, "filter_chain_match")
		if m.GetDestinationPort() != nil || len(m.GetPrefixRanges()) > 0 || len(m.GetDirectSourcePrefixRanges()) > 0 ||
			m.GetSourceType() != 0 || len(m.GetSourcePrefixRanges()) > 0 || len(m.GetSourcePorts()) > 0 ||
			m.GetTransportProtocol() != "" || len(m.GetApplicationProtocols()) > 0 || m.GetAddressSuffix() != "" || m.GetSuffixLen() != nil {
			c.fail(mp, "a QUIC listener's chains match on server_names only")
		}
		for i, n := range m.GetServerNames() {
			if strings.Contains(n, "*") && (!strings.HasPrefix(n, "*.") || strings.Count(n, "*") > 1) {
				c.fail(resource.Index(resource.Join(mp, "server_names"), i), "%q: a wildcard must be a leading \"*.\"", n)
			}
			qc.ServerNames = append(qc.ServerNames, strings.ToLower(n))
		}
	}
	chain := listener.FilterChain{Name: fc.GetName()}
	chain.Match.ServerNames = qc.ServerNames
	filters := fc.GetFilters()
	if len(filters) != 1 {
		c.fail(resource.Join(cp, "filters"), "a QUIC listener's chain takes exactly one network filter, the HTTP connection manager; got %d", len(filters))
		return qc, chain, hcm.Config{}, false, false
	}
	fp := resource.Join(resource.Index(resource.Join(cp, "filters"), 0), "typed_config")
	var mgr hcmv3.HttpConnectionManager
	if !c.unpack(fp, filters[0].GetTypedConfig(), &mgr) {
		return qc, chain, hcm.Config{}, false, false
	}
	if mgr.GetCodecType() != hcmv3.HttpConnectionManager_HTTP3 {
		c.fail(resource.Join(fp, "codec_type"), "a QUIC listener needs codec_type HTTP3, got %s", mgr.GetCodecType())
	}
	settings, h := c.connectionManager(fp, &mgr)
	chain.HTTP = settings

	early := false
	tp := resource.Join(cp, "transport_socket")
	ts := fc.GetTransportSocket()
	if ts == nil {
		c.fail(tp, "a QUIC listener needs envoy.transport_sockets.quic (QuicDownstreamTransport): QUIC is always TLS")
	} else {
		tp = resource.Join(tp, "typed_config")
		var qt quicv3.QuicDownstreamTransport
		if c.unpack(tp, ts.GetTypedConfig(), &qt) { // downstream_tls_context is required (PGV)
			chain.TLS = c.serverTLS(resource.Join(tp, "downstream_tls_context"), qt.GetDownstreamTlsContext(), listener.CodecAuto)
			if chain.TLS != nil && chain.TLS.MaxVersion != 0 && chain.TLS.MaxVersion < tls.VersionTLS13 {
				c.fail(resource.Join(tp, "downstream_tls_context.common_tls_context.tls_params.tls_maximum_protocol_version"), "QUIC needs TLS 1.3")
			}
			qc.TLS = chain.TLS
			early = qt.GetEnableEarlyData().GetValue()
		}
	}
	return qc, chain, h, early, true
}

// isQUICTransport reports whether a filter chain's transport socket is
// envoy.transport_sockets.quic.
func isQUICTransport(a *anypb.Any) bool {
	return a.MessageIs((*quicv3.QuicDownstreamTransport)(nil))
}

// isQUICUpstream reports whether a cluster's transport socket is
// envoy.transport_sockets.quic.
func isQUICUpstream(a *anypb.Any) bool {
	return a.MessageIs((*quicv3.QuicUpstreamTransport)(nil))
}

// quicUpstream converts an HTTP/3 cluster's transport socket,
// QuicUpstreamTransport, into the cluster's TLS; it must go with
// explicit_http_config.http3_protocol_options and back.
func (c *converter) quicUpstream(p string, a *anypb.Any, out *cluster.Config) {
	tp := resource.Join(p, "transport_socket.typed_config")
	if out.Protocol != cluster.HTTP3 {
		c.fail(tp, "envoy.transport_sockets.quic needs typed_extension_protocol_options with explicit_http_config.http3_protocol_options")
		return
	}
	var qt quicv3.QuicUpstreamTransport
	if !c.unpack(tp, a, &qt) { // upstream_tls_context is required (PGV)
		return
	}
	out.TLS = c.upstreamTLS(resource.Join(tp, "upstream_tls_context"), qt.GetUpstreamTlsContext())
	// Envoy's TLS client default is 1.2 at most; QUIC is 1.3 only.
	if v := qt.GetUpstreamTlsContext().GetCommonTlsContext().GetTlsParams().GetTlsMaximumProtocolVersion(); v != tlsv3.TlsParameters_TLS_AUTO && v != tlsv3.TlsParameters_TLSv1_3 {
		c.fail(resource.Join(tp, "upstream_tls_context.common_tls_context.tls_params.tls_maximum_protocol_version"), "QUIC needs TLS 1.3")
	}
	if out.TLS != nil {
		out.TLS.MinVersion, out.TLS.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	}
	if out.TLS != nil && out.TLS.VerifyConnection != nil {
		out.TLSVerifyKey = VerifyChainKey
	}
}
