package snapshot

import (
	"crypto/tls"

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
// HTTP/3 over QUIC on a UDP socket. It takes one filter chain (no match)
// whose only network filter is the connection manager with codec_type
// HTTP3 and whose transport_socket is envoy.transport_sockets.quic
// (QuicDownstreamTransport). The chain lands in Config.FilterChains[0]
// like a TCP listener's, so the server builds its handler the same way;
// the QUIC settings go in Listener.QUIC.
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
		c.fail(resource.Join(p, "default_filter_chain"), "is not supported on a QUIC listener: give one filter chain")
	}
	chains := l.GetFilterChains()
	if len(chains) != 1 {
		c.fail(resource.Join(p, "filter_chains"), "a QUIC listener takes exactly one filter chain; got %d", len(chains))
		return out
	}
	cp := resource.Index(resource.Join(p, "filter_chains"), 0)
	fc := chains[0]
	if fc.GetFilterChainMatch() != nil {
		c.fail(resource.Join(cp, "filter_chain_match"), "is not supported on a QUIC listener (one chain serves every connection)")
	}
	chain := listener.FilterChain{Name: fc.GetName()}
	filters := fc.GetFilters()
	if len(filters) != 1 {
		c.fail(resource.Join(cp, "filters"), "a QUIC listener's chain takes exactly one network filter, the HTTP connection manager; got %d", len(filters))
		return out
	}
	fp := resource.Join(resource.Index(resource.Join(cp, "filters"), 0), "typed_config")
	var mgr hcmv3.HttpConnectionManager
	if !c.unpack(fp, filters[0].GetTypedConfig(), &mgr) {
		return out
	}
	if mgr.GetCodecType() != hcmv3.HttpConnectionManager_HTTP3 {
		c.fail(resource.Join(fp, "codec_type"), "a QUIC listener needs codec_type HTTP3, got %s", mgr.GetCodecType())
	}
	settings, h := c.connectionManager(fp, &mgr)
	chain.HTTP = settings
	q.MaxRequestHeadersBytes = settings.MaxRequestHeadersBytes

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
			q.TLS = chain.TLS
			q.EarlyData = qt.GetEnableEarlyData().GetValue()
		}
	}
	out.Config.FilterChains = []listener.FilterChain{chain}
	out.HTTP = []hcm.Config{h}
	out.QUIC = q
	return out
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
