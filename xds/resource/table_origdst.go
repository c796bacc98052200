package resource

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// OriginalDstFilter is the full name of the original_dst listener
// filter's config.
const OriginalDstFilter protoreflect.FullName = "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"

// The transparent-proxy feature's part of the support table: the
// original_dst listener filter, destination matching of filter chains,
// and ORIGINAL_DST clusters (the type and lb_policy enum values are in
// table.go's Cluster entry).
var (
	origDstExtensions = []Extension{
		{"envoy.filters.listener.original_dst", OriginalDstFilter, "Listener listener_filters[].typed_config (Linux: restores a redirected connection's destination, SO_ORIGINAL_DST)"},
	}
	origDstMessages = []Message{
		{"envoy.config.listener.v3.ListenerFilter", map[string]Field{
			"typed_config": anyOf(OriginalDstFilter),
		}},
		{OriginalDstFilter, map[string]Field{}},
		{"envoy.config.listener.v3.FilterChainMatch", map[string]Field{
			"destination_port": note(supported, "matched first; with original_dst the port the client dialled"),
			"prefix_ranges":    note(supported, "destination address, longest prefix wins; matched after destination_port, before server_names"),
		}},
		{"envoy.config.cluster.v3.Cluster", map[string]Field{
			"cleanup_interval": note(supported, "ORIGINAL_DST only; default 5s"),
		}},
	}
)
