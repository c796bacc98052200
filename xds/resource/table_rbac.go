package resource

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"    // registers RBAC, RBACPerRoute
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3" // registers RBAC
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Messages of the envoy.filters.http.rbac and envoy.filters.network.rbac
// filters.
const (
	HTTPRBAC         protoreflect.FullName = "envoy.extensions.filters.http.rbac.v3.RBAC"
	HTTPRBACPerRoute protoreflect.FullName = "envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
	NetworkRBAC      protoreflect.FullName = "envoy.extensions.filters.network.rbac.v3.RBAC"
)

// The RBAC feature's part of the support table (see table_grpcweb.go and
// docs/rbac.md). The engine's messages (envoy.config.rbac.v3) are shared
// by both filters; header and url_path rules are refused by the network
// filter's converter, as they need a request.
var (
	rbacExtensions = []Extension{
		{"envoy.filters.http.rbac", HTTPRBAC, "HttpConnectionManager http_filters[].typed_config (before the router; see docs/rbac.md)"},
		{"envoy.filters.http.rbac", HTTPRBACPerRoute, "Route and VirtualHost typed_per_filter_config (replaces the filter's rules on the route; no rbac turns it off)"},
		{"envoy.filters.network.rbac", NetworkRBAC, "Listener filter_chains[].filters[].typed_config, before the HTTP connection manager or the TCP proxy"},
	}
	rbacMessages = []Message{
		{"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", map[string]Field{
			"typed_config": anyOf(HTTPRBAC),
		}},
		{"envoy.config.route.v3.Route", map[string]Field{
			"typed_per_filter_config": anyOf(HTTPRBACPerRoute),
		}},
		{"envoy.config.route.v3.VirtualHost", map[string]Field{
			"typed_per_filter_config": anyOf(HTTPRBACPerRoute),
		}},
		{"envoy.config.listener.v3.Filter", map[string]Field{
			"typed_config": anyOf(NetworkRBAC),
		}},

		{HTTPRBAC, map[string]Field{
			"rules":                    note(supported, "absent: no enforcement; present with no policies: ALLOW denies everything"),
			"shadow_rules":             note(supported, "evaluated, counted (shadow_allowed/shadow_denied) and logged; never enforced"),
			"rules_stat_prefix":        note(supported, "rbac.<prefix>.allowed/denied (a route override counts under its filter's names)"),
			"shadow_rules_stat_prefix": note(supported, "rbac.<prefix>.shadow_allowed/shadow_denied"),
		}},
		{HTTPRBACPerRoute, map[string]Field{
			"rbac": note(supported, "replaces the filter's rules and shadow rules on the route; absent or with neither: RBAC off on the route"),
		}},
		{NetworkRBAC, map[string]Field{
			"stat_prefix":              note(supported, "<stat_prefix>.rbac.allowed/denied/shadow_allowed/shadow_denied"),
			"rules":                    note(supported, "no header or url_path rules (they need a request)"),
			"shadow_rules":             note(supported, "evaluated, counted and logged; never enforced"),
			"shadow_rules_stat_prefix": supported,
			"enforcement_type":         note(enums("ONE_TIME_ON_FIRST_BYTE"), "decided once, right after the TLS handshake, before any byte is proxied"),
		}},

		{"envoy.config.rbac.v3.RBAC", map[string]Field{
			"action":   note(enums("ALLOW", "DENY"), "LOG is not supported"),
			"policies": note(supported, "evaluated in name order; the first match is the one logged"),
		}},
		{"envoy.config.rbac.v3.Policy", map[string]Field{
			"permissions": note(supported, "any of them"),
			"principals":  note(supported, "any of them"),
		}},
		{"envoy.config.rbac.v3.Permission", map[string]Field{
			"any":              supported,
			"and_rules":        supported,
			"or_rules":         supported,
			"not_rule":         supported,
			"header":           note(supported, "HTTP only; pseudo-headers :authority, :method, :path (with query), :scheme"),
			"url_path":         note(supported, "HTTP only; the path without its query"),
			"destination_ip":   supported,
			"destination_port": supported,
		}},
		{"envoy.config.rbac.v3.Permission.Set", map[string]Field{
			"rules": supported,
		}},
		{"envoy.config.rbac.v3.Principal", map[string]Field{
			"any":              supported,
			"and_ids":          supported,
			"or_ids":           supported,
			"not_id":           supported,
			"authenticated":    supported,
			"direct_remote_ip": supported,
			"remote_ip":        note(supported, "the connection's peer (x-forwarded-for is not consulted yet)"),
			"source_ip":        note(supported, "deprecated: the connection's peer"),
			"header":           note(supported, "HTTP only"),
			"url_path":         note(supported, "HTTP only; the path without its query"),
		}},
		{"envoy.config.rbac.v3.Principal.Set", map[string]Field{
			"ids": supported,
		}},
		{"envoy.config.rbac.v3.Principal.Authenticated", map[string]Field{
			"principal_name": note(supported, "matched against each URI SAN, then each DNS SAN, then the subject; absent: any TLS peer"),
		}},
		{"envoy.type.matcher.v3.PathMatcher", map[string]Field{
			"path": supported,
		}},
		{"envoy.config.core.v3.CidrRange", map[string]Field{
			"address_prefix": supported,
			"prefix_len":     note(supported, "absent: 0, as in Envoy"),
		}},
	}
)
