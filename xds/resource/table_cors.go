package resource

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3" // registers Cors, CorsPolicy
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Messages of the envoy.filters.http.cors filter and its per-route policy.
const (
	CORS       protoreflect.FullName = "envoy.extensions.filters.http.cors.v3.Cors"
	CORSPolicy protoreflect.FullName = "envoy.extensions.filters.http.cors.v3.CorsPolicy"
)

// The CORS feature's part of the support table (see table_grpcweb.go).
// The deprecated route-level `cors` fields of VirtualHost and
// RouteAction stay unlisted, so refused: policies go in
// typed_per_filter_config.
var (
	corsExtensions = []Extension{
		{"envoy.filters.http.cors", CORS, "HttpConnectionManager http_filters[].typed_config (before the router; no settings: " +
			"the policies are CorsPolicy entries in typed_per_filter_config; see docs/protocols.md)"},
	}
	corsMessages = []Message{
		{"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", map[string]Field{
			"typed_config": anyOf(CORS),
		}},
		{"envoy.config.route.v3.VirtualHost", map[string]Field{
			"typed_per_filter_config": anyOf(CORSPolicy),
		}},
		{"envoy.config.route.v3.Route", map[string]Field{
			"typed_per_filter_config": anyOf(CORSPolicy),
		}},
		{CORS, map[string]Field{}},
		{CORSPolicy, map[string]Field{
			"allow_origin_string_match":       note(supported, `a matcher that matches "*" allows every origin (Envoy's rule); the origin itself is sent back`),
			"allow_methods":                   note(supported, `"*" echoes Access-Control-Request-Method`),
			"allow_headers":                   note(supported, `"*" echoes Access-Control-Request-Headers`),
			"expose_headers":                  supported,
			"max_age":                         supported,
			"allow_credentials":               supported,
			"filter_enabled":                  note(supported, "default_value only"),
			"shadow_enabled":                  note(supported, "default_value only"),
			"allow_private_network_access":    supported,
			"forward_not_matching_preflights": note(supported, "default true"),
		}},
		{"envoy.config.core.v3.RuntimeFractionalPercent", map[string]Field{
			"default_value": supported,
		}},
		{"envoy.type.v3.FractionalPercent", map[string]Field{
			"numerator":   supported,
			"denominator": supported,
		}},
	}
)
