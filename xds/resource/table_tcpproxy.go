package resource

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TCPProxy is the full name of the TCP proxy network filter's config.
const TCPProxy protoreflect.FullName = "envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"

// The tcpproxy feature's part of the support table: its typed extensions,
// its messages, and the fields it implements on core messages (merged by
// name into Messages).
var (
	tcpProxyExtensions = []Extension{
		{"envoy.filters.network.tcp_proxy", TCPProxy, "Listener filter_chains[].filters[].typed_config (the chain's only network filter)"},
	}
	tcpProxyMessages = []Message{
		{"envoy.config.listener.v3.FilterChain", map[string]Field{
			"filters": note(supported, "exactly one: the HTTP connection manager or the TCP proxy"),
			"transport_socket": note(supported, "terminates TLS; a TCP proxy chain without one that matches on server_names, "+
				"application_protocols or transport_protocol tls passes TLS through (SNI routing, ClientHello included)"),
		}},
		{"envoy.config.listener.v3.Filter", map[string]Field{
			"typed_config": anyOf(HTTPConnectionManager, TCPProxy),
		}},
		{TCPProxy, map[string]Field{
			"stat_prefix":          note(supported, "tcp.<stat_prefix>.* counters"),
			"cluster":              supported,
			"weighted_clusters":    supported,
			"idle_timeout":         note(supported, "default 1h, 0s disables; closes between the timeout and 1/8 of it later"),
			"max_connect_attempts": note(supported, "each retry on a host not tried yet when there is one; no backoff"),
			"access_log":           note(supported, "one line per connection when it closes"),
		}},
		{"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster", map[string]Field{
			"clusters": supported,
		}},
		{"envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy.WeightedCluster.ClusterWeight", map[string]Field{
			"name":   supported,
			"weight": supported,
		}},
	}
)
