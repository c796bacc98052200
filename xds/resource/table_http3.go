package resource

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/quic/v3" // registers the QUIC transports
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The configs of envoy.transport_sockets.quic: on a QUIC listener's filter
// chain, and on an HTTP/3 cluster.
const (
	QUICDownstreamTransport protoreflect.FullName = "envoy.extensions.transport_sockets.quic.v3.QuicDownstreamTransport"
	QUICUpstreamTransport   protoreflect.FullName = "envoy.extensions.transport_sockets.quic.v3.QuicUpstreamTransport"
)

// The http3 feature's part of the support table: its typed extensions,
// its messages, and the fields it implements on core messages (merged by
// name into Messages).
var (
	http3Extensions = []Extension{
		{"envoy.transport_sockets.quic", QUICDownstreamTransport, "FilterChain transport_socket.typed_config of a QUIC listener (udp_listener_config.quic_options)"},
		{"envoy.transport_sockets.quic", QUICUpstreamTransport, "Cluster transport_socket.typed_config of an HTTP/3 cluster (explicit_http_config.http3_protocol_options)"},
	}
	http3Messages = []Message{
		{"envoy.config.listener.v3.Listener", map[string]Field{
			"udp_listener_config": note(supported, "with quic_options: an HTTP/3 listener (one filter chain, codec_type HTTP3, envoy.transport_sockets.quic)"),
		}},
		{"envoy.config.core.v3.SocketAddress", map[string]Field{
			"protocol": note(enums("TCP", "UDP"), "UDP only for a QUIC listener"),
		}},
		{"envoy.config.listener.v3.UdpListenerConfig", map[string]Field{
			"quic_options": supported,
		}},
		{"envoy.config.listener.v3.QuicProtocolOptions", map[string]Field{
			"idle_timeout":             note(supported, "default 300s"),
			"crypto_handshake_timeout": note(supported, "default 20s"),
			"quic_protocol_options":    supported,
		}},
		{"envoy.config.core.v3.QuicProtocolOptions", map[string]Field{
			"max_concurrent_streams": note(supported, "downstream only; default 100"),
		}},
		{HTTPConnectionManager, map[string]Field{
			"codec_type": note(enums("AUTO", "HTTP1", "HTTP2", "HTTP3"), "HTTP3 on a QUIC listener only, and required there"),
		}},
		{"envoy.config.core.v3.TransportSocket", map[string]Field{
			"typed_config": anyOf(DownstreamTLSContext, UpstreamTLSContext, QUICDownstreamTransport, QUICUpstreamTransport),
		}},
		{QUICUpstreamTransport, map[string]Field{
			"upstream_tls_context": note(supported, "required; TLS 1.3 only"),
		}},
		{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig", map[string]Field{
			"http3_protocol_options": note(supported, "HTTP/3 upstream; needs transport_socket envoy.transport_sockets.quic"),
		}},
		{"envoy.config.core.v3.Http3ProtocolOptions", map[string]Field{}},
		{QUICDownstreamTransport, map[string]Field{
			"downstream_tls_context": note(supported, "required; TLS 1.3 only"),
			"enable_early_data":      note(supported, "0-RTT; unlike Envoy (default on) off unless set true: 0-RTT requests can be replayed"),
		}},
	}
)
