package resource

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_web/v3" // registers GrpcWeb
	"google.golang.org/protobuf/reflect/protoreflect"
)

// GRPCWeb is the message of the envoy.filters.http.grpc_web filter.
const GRPCWeb protoreflect.FullName = "envoy.extensions.filters.http.grpc_web.v3.GrpcWeb"

// The grpcweb feature's part of the support table: its typed extensions,
// its messages, and the fields it implements on core messages (merged by
// name into Messages).
var (
	grpcWebExtensions = []Extension{
		{"envoy.filters.http.grpc_web", GRPCWeb, "HttpConnectionManager http_filters[].typed_config (before the router; no settings; see docs/grpc-web.md)"},
	}
	grpcWebMessages = []Message{
		{"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", map[string]Field{
			"typed_config": anyOf(RouterFilter, HTTPFault, GRPCWeb),
		}},
		{GRPCWeb, map[string]Field{}},
	}
)
