// Package resource says which parts of Envoy's v3 API Outrigger implements
// and checks decoded resources against it. The support table below is the
// single source of truth: the generic walk in check.go reports every set
// field that is not in it, and docs/configuration.md is generated from it.
// Adding support for a field is one line here plus the code that honours it
// (proxy/snapshot).
package resource

import (
	"maps"
	"slices"

	// The typed extensions we support: imported so that protojson and
	// anypb find their types in the global registry.
	_ "github.com/cncf/xds/go/xds/type/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/maglev/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/random/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/ring_hash/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Field is the support rule for one field of one message.
type Field struct {
	// Enums lists the enum values we implement; nil allows every value.
	Enums []string
	// Types lists the message full names a google.protobuf.Any field may
	// carry; the walk unpacks such an Any and checks it in turn.
	Types []protoreflect.FullName
	// Leaf accepts a message field as a whole without looking inside.
	Leaf bool
	// Ignored marks a purely operational field: accepted, has no effect,
	// and reported so the caller can log it once.
	Ignored bool
	// Note is shown in the generated documentation.
	Note string
}

// Extension is a supported typed extension.
type Extension struct {
	Name    string // Envoy's extension name, e.g. envoy.filters.http.router
	Message protoreflect.FullName
	Where   string // the field that carries it
}

// TypeURL is the Any type URL of the extension.
func (e Extension) TypeURL() string { return TypeURLPrefix + string(e.Message) }

// TypeURLPrefix is the prefix of every Any type URL.
const TypeURLPrefix = "type.googleapis.com/"

// Message full names of the typed extensions, for the converters.
const (
	HTTPConnectionManager  protoreflect.FullName = "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	RouterFilter           protoreflect.FullName = "envoy.extensions.filters.http.router.v3.Router"
	TLSInspector           protoreflect.FullName = "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
	DownstreamTLSContext   protoreflect.FullName = "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext"
	UpstreamTLSContext     protoreflect.FullName = "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	UpstreamHTTPOptions    protoreflect.FullName = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
	StdoutAccessLog        protoreflect.FullName = "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"
	StderrAccessLog        protoreflect.FullName = "envoy.extensions.access_loggers.stream.v3.StderrAccessLog"
	FileAccessLog          protoreflect.FullName = "envoy.extensions.access_loggers.file.v3.FileAccessLog"
	PreviousHostsPredicate protoreflect.FullName = "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
	RoundRobinLB           protoreflect.FullName = "envoy.extensions.load_balancing_policies.round_robin.v3.RoundRobin"
	LeastRequestLB         protoreflect.FullName = "envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest"
	RandomLB               protoreflect.FullName = "envoy.extensions.load_balancing_policies.random.v3.Random"
	RingHashLB             protoreflect.FullName = "envoy.extensions.load_balancing_policies.ring_hash.v3.RingHash"
	MaglevLB               protoreflect.FullName = "envoy.extensions.load_balancing_policies.maglev.v3.Maglev"
	TypedStruct            protoreflect.FullName = "xds.type.v3.TypedStruct"
	HTTPFault              protoreflect.FullName = "envoy.extensions.filters.http.fault.v3.HTTPFault"
)

// Extensions are the typed extensions we support: the core's, then each
// feature file's (table_*.go).
var Extensions = slices.Concat(coreExtensions, tcpProxyExtensions, grpcWebExtensions, http3Extensions, accessLogExtensions, tracingExtensions,
	sdsExtensions, rbacExtensions, jwtExtensions, rateLimitExtensions, corsExtensions, origDstExtensions, overloadExtensions)

var coreExtensions = []Extension{
	{"envoy.filters.network.http_connection_manager", HTTPConnectionManager, "Listener filter_chains[].filters[].typed_config"},
	{"envoy.filters.http.router", RouterFilter, "HttpConnectionManager http_filters[].typed_config (must be last)"},
	{"envoy.filters.http.fault", HTTPFault, "HttpConnectionManager http_filters[].typed_config (before the router; response_rate_limit and runtime keys are refused)"},
	{"envoy.filters.listener.tls_inspector", TLSInspector, "Listener listener_filters[].typed_config (TLS is always inspected; accepted for compatibility)"},
	{"envoy.transport_sockets.tls", DownstreamTLSContext, "FilterChain transport_socket.typed_config"},
	{"envoy.transport_sockets.tls", UpstreamTLSContext, "Cluster transport_socket.typed_config"},
	{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions", UpstreamHTTPOptions, "Cluster typed_extension_protocol_options"},
	{"envoy.access_loggers.stdout", StdoutAccessLog, "access_log[].typed_config"},
	{"envoy.access_loggers.stderr", StderrAccessLog, "access_log[].typed_config"},
	{"envoy.access_loggers.file", FileAccessLog, "access_log[].typed_config"},
	{"envoy.retry_host_predicates.previous_hosts", PreviousHostsPredicate, "RetryPolicy retry_host_predicate[].typed_config"},
	{"envoy.load_balancing_policies.round_robin", RoundRobinLB, "Cluster load_balancing_policy.policies[].typed_extension_config.typed_config"},
	{"envoy.load_balancing_policies.least_request", LeastRequestLB, "Cluster load_balancing_policy.policies[].typed_extension_config.typed_config"},
	{"envoy.load_balancing_policies.random", RandomLB, "Cluster load_balancing_policy.policies[].typed_extension_config.typed_config"},
	{"envoy.load_balancing_policies.ring_hash", RingHashLB, "Cluster load_balancing_policy.policies[].typed_extension_config.typed_config"},
	{"envoy.load_balancing_policies.maglev", MaglevLB, "Cluster load_balancing_policy.policies[].typed_extension_config.typed_config"},
	{"outrigger.load_balancing_policies.peak_ewma", TypedStruct, "Cluster load_balancing_policy.policies[].typed_extension_config.typed_config, with type_url outrigger.lb.v1.PeakEwma (see docs/load-balancing.md)"},
}

// Message is the support rule for one message type.
type Message struct {
	Name   protoreflect.FullName
	Fields map[string]Field
}

var (
	supported = Field{}
	ignored   = Field{Ignored: true}
	leaf      = Field{Leaf: true}
)

func enums(values ...string) Field { return Field{Enums: values} }

func anyOf(types ...protoreflect.FullName) Field { return Field{Types: types} }

func note(f Field, n string) Field { f.Note = n; return f }

// Messages is the support table: every message type we look inside, with
// the fields we implement or ignore. A set field not listed is rejected.
var Messages = mergeMessages(coreMessages, tcpProxyMessages, grpcWebMessages, http3Messages, accessLogMessages, tracingMessages,
	sdsMessages, rbacMessages, jwtMessages, rateLimitMessages, corsMessages, origDstMessages, overloadMessages)

// coreMessages is the table of the HTTP proxy core; feature files
// (table_*.go) add their own messages and, for messages listed here, the
// fields they implement: entries of the same name are merged.
var coreMessages = []Message{
	// Bootstrap.
	{"envoy.config.bootstrap.v3.Bootstrap", map[string]Field{
		"node":                          supported,
		"static_resources":              supported,
		"dynamic_resources":             supported,
		"admin":                         supported,
		"cluster_manager":               supported,
		"flags_path":                    ignored,
		"stats_sinks":                   ignored,
		"deferred_stat_options":         ignored,
		"stats_config":                  ignored,
		"stats_flush_interval":          ignored,
		"stats_flush_on_admin":          ignored,
		"stats_eviction_interval":       ignored,
		"stats_server_version_override": ignored,
		"watchdog":                      ignored,
		"watchdogs":                     ignored,
		"layered_runtime":               ignored,
		"overload_manager":              supported,
		"enable_dispatcher_stats":       ignored,
		"fatal_actions":                 ignored,
		"perf_tracing_file_path":        ignored,
		"application_log_config":        ignored,
		"memory_allocator_manager":      ignored,
		"enable_worker_cpu_affinity":    ignored,
	}},
	// What changes traffic here (upstream_bind_config, local_cluster_name
	// for zone-aware routing, load reporting; overload actions and load
	// shed points) is refused like any other field; the rest is operational.
	{"envoy.config.bootstrap.v3.ClusterManager", map[string]Field{
		"outlier_detection":                ignored,
		"enable_deferred_cluster_creation": ignored,
	}},
	{"envoy.config.overload.v3.OverloadManager", map[string]Field{
		"refresh_interval":      ignored,
		"resource_monitors":     supported,
		"buffer_factory_config": ignored,
	}},
	{"envoy.config.bootstrap.v3.Bootstrap.StaticResources", map[string]Field{
		"listeners": supported,
		"clusters":  supported,
	}},
	{"envoy.config.bootstrap.v3.Bootstrap.DynamicResources", map[string]Field{
		"ads_config": supported,
		"lds_config": supported,
		"cds_config": supported,
	}},
	{"envoy.config.bootstrap.v3.Admin", map[string]Field{
		"address":                  supported,
		"access_log":               ignored,
		"access_log_path":          ignored,
		"profile_path":             ignored,
		"ignore_global_conn_limit": ignored,
	}},
	{"envoy.config.core.v3.Node", map[string]Field{
		"id":                       supported,
		"cluster":                  supported,
		"metadata":                 ignored,
		"dynamic_parameters":       ignored,
		"locality":                 ignored,
		"user_agent_name":          ignored,
		"user_agent_version":       ignored,
		"user_agent_build_version": ignored,
		"extensions":               ignored,
		"client_features":          ignored,
		"listening_addresses":      ignored,
	}},
	{"envoy.config.core.v3.Address", map[string]Field{
		"socket_address": supported,
	}},
	{"envoy.config.core.v3.SocketAddress", map[string]Field{
		"protocol":   enums("TCP"),
		"address":    supported,
		"port_value": supported,
	}},
	{"envoy.config.core.v3.ConfigSource", map[string]Field{
		"ads":                   supported,
		"initial_fetch_timeout": supported,
		"resource_api_version":  enums("V3"),
	}},
	{"envoy.config.core.v3.AggregatedConfigSource", map[string]Field{}},
	{"envoy.config.core.v3.ApiConfigSource", map[string]Field{
		"api_type":                       enums("GRPC", "DELTA_GRPC"),
		"transport_api_version":          enums("V3"),
		"grpc_services":                  supported,
		"set_node_on_first_message_only": supported,
	}},
	{"envoy.config.core.v3.GrpcService", map[string]Field{
		"envoy_grpc":  supported,
		"google_grpc": note(supported, "plaintext target_uri only"),
		"timeout":     supported,
	}},
	{"envoy.config.core.v3.GrpcService.GoogleGrpc", map[string]Field{
		"target_uri":  supported,
		"stat_prefix": ignored,
	}},
	{"envoy.config.core.v3.GrpcService.EnvoyGrpc", map[string]Field{
		"cluster_name": supported,
		"authority":    supported,
	}},

	// Listeners.
	{"envoy.config.listener.v3.Listener", map[string]Field{
		"name":                 supported,
		"address":              supported,
		"filter_chains":        supported,
		"default_filter_chain": supported,
		"listener_filters":     supported,
		"stat_prefix":          ignored,
		"metadata":             ignored,
		"traffic_direction":    note(supported, "OUTBOUND names the server spans egress <host>"),
	}},
	{"envoy.config.listener.v3.ListenerFilter", map[string]Field{
		"name":         supported,
		"typed_config": anyOf(TLSInspector),
	}},
	{TLSInspector, map[string]Field{}},
	{"envoy.config.listener.v3.FilterChain", map[string]Field{
		"name":               supported,
		"filter_chain_match": supported,
		"filters":            note(supported, "exactly one: the HTTP connection manager"),
		"transport_socket":   supported,
		"metadata":           ignored,
	}},
	{"envoy.config.listener.v3.FilterChainMatch", map[string]Field{
		"server_names":          supported,
		"transport_protocol":    supported,
		"application_protocols": supported,
	}},
	{"envoy.config.listener.v3.Filter", map[string]Field{
		"name":         supported,
		"typed_config": anyOf(HTTPConnectionManager),
	}},
	{"envoy.config.core.v3.TransportSocket", map[string]Field{
		"name":         supported,
		"typed_config": anyOf(DownstreamTLSContext, UpstreamTLSContext),
	}},

	// HTTP connection manager.
	{HTTPConnectionManager, map[string]Field{
		"codec_type":                      enums("AUTO", "HTTP1", "HTTP2"),
		"stat_prefix":                     ignored,
		"rds":                             supported,
		"route_config":                    supported,
		"http_filters":                    note(supported, "the HTTP filters listed under typed extensions (any number, any order), then envoy.filters.http.router, last"),
		"common_http_protocol_options":    supported,
		"http_protocol_options":           supported,
		"http2_protocol_options":          supported,
		"server_name":                     supported,
		"server_header_transformation":    enums("OVERWRITE", "PASS_THROUGH"),
		"max_request_headers_kb":          supported,
		"stream_idle_timeout":             supported,
		"request_timeout":                 supported,
		"request_headers_timeout":         note(supported, "default 10s (Envoy: disabled)"),
		"drain_timeout":                   supported,
		"access_log":                      supported,
		"use_remote_address":              supported,
		"xff_num_trusted_hops":            supported,
		"skip_xff_append":                 supported,
		"forward_client_cert_details":     note(supported, "x-forwarded-client-cert; see docs/mtls.md"),
		"set_current_client_cert_details": supported,
		"internal_address_config":         note(supported, "cidr_ranges (prefix_len required unless the address is 0.0.0.0 or ::); none by default (every client external, as current Envoy)"),
		"generate_request_id":             supported,
		"preserve_external_request_id":    supported,
		"upgrade_configs":                 supported,
	}},
	{"envoy.extensions.filters.network.http_connection_manager.v3.Rds", map[string]Field{
		"config_source":     supported,
		"route_config_name": supported,
	}},
	{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.InternalAddressConfig", map[string]Field{
		"cidr_ranges": supported,
	}},
	{"envoy.config.core.v3.CidrRange", map[string]Field{"address_prefix": supported, "prefix_len": supported}},
	{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails", map[string]Field{
		"subject": supported, "cert": supported, "chain": supported, "dns": supported, "uri": supported,
	}},
	{"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", map[string]Field{
		"name":         supported,
		"typed_config": anyOf(RouterFilter, HTTPFault),
	}},
	{RouterFilter, map[string]Field{
		"dynamic_stats": ignored,
	}},
	{HTTPFault, map[string]Field{
		"delay":                            note(leaf, "fixed_delay or header_delay, percentage"),
		"abort":                            note(leaf, "http_status, grpc_status or header_abort, percentage, response_body"),
		"upstream_cluster":                 supported,
		"headers":                          leaf,
		"downstream_nodes":                 supported,
		"max_active_faults":                supported,
		"disable_downstream_cluster_stats": ignored,
	}},
	{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.UpgradeConfig", map[string]Field{
		"upgrade_type": supported,
		"enabled":      supported,
	}},
	{"envoy.config.core.v3.HttpProtocolOptions", map[string]Field{
		"idle_timeout":                supported,
		"max_stream_duration":         note(supported, "connection manager only"),
		"max_requests_per_connection": note(supported, "clusters only"),
	}},
	{"envoy.config.core.v3.Http1ProtocolOptions", map[string]Field{}},
	{"envoy.config.core.v3.Http2ProtocolOptions", map[string]Field{
		"max_concurrent_streams": note(supported, "default 1000 downstream (Envoy: 2147483647)"),
	}},
	{"envoy.config.accesslog.v3.AccessLog", map[string]Field{
		"name":         supported,
		"typed_config": note(anyOf(StdoutAccessLog, StderrAccessLog, FileAccessLog), "always our fixed JSON line"),
	}},
	{StdoutAccessLog, map[string]Field{}},
	{StderrAccessLog, map[string]Field{}},
	{FileAccessLog, map[string]Field{
		"path": supported,
	}},

	// Routes.
	{"envoy.config.route.v3.RouteConfiguration", map[string]Field{
		"name":                       supported,
		"virtual_hosts":              supported,
		"request_headers_to_add":     supported,
		"request_headers_to_remove":  supported,
		"response_headers_to_add":    supported,
		"response_headers_to_remove": supported,
		"validate_clusters":          note(ignored, "references are always checked"),
	}},
	{"envoy.config.route.v3.VirtualHost", map[string]Field{
		"name":                           supported,
		"domains":                        supported,
		"routes":                         supported,
		"request_headers_to_add":         supported,
		"request_headers_to_remove":      supported,
		"response_headers_to_add":        supported,
		"response_headers_to_remove":     supported,
		"metadata":                       ignored,
		"retry_policy":                   note(supported, "for routes without their own"),
		"hedge_policy":                   note(supported, "for routes without their own"),
		"per_request_buffer_limit_bytes": note(supported, "bounds the request body kept for retries (default 1 MiB)"),
	}},
	{"envoy.config.route.v3.Route", map[string]Field{
		"name":                           supported,
		"match":                          supported,
		"route":                          supported,
		"redirect":                       supported,
		"direct_response":                supported,
		"request_headers_to_add":         supported,
		"request_headers_to_remove":      supported,
		"response_headers_to_add":        supported,
		"response_headers_to_remove":     supported,
		"metadata":                       ignored,
		"stat_prefix":                    ignored,
		"per_request_buffer_limit_bytes": note(supported, "bounds the request body kept for retries (default 1 MiB)"),
	}},
	{"envoy.config.route.v3.RouteMatch", map[string]Field{
		"prefix":                supported,
		"path":                  supported,
		"safe_regex":            supported,
		"path_separated_prefix": supported,
		"case_sensitive":        supported,
		"headers":               supported,
		"query_parameters":      supported,
		"grpc":                  supported,
	}},
	{"envoy.config.route.v3.RouteMatch.GrpcRouteMatchOptions", map[string]Field{}},
	{"envoy.type.matcher.v3.RegexMatcher", map[string]Field{
		"regex":      note(supported, "Go regexp (RE2 syntax)"),
		"google_re2": note(leaf, "deprecated; engine is always RE2"),
	}},
	{"envoy.config.route.v3.HeaderMatcher", map[string]Field{
		"name":                          supported,
		"string_match":                  supported,
		"present_match":                 supported,
		"range_match":                   supported,
		"invert_match":                  supported,
		"treat_missing_header_as_empty": supported,
		"exact_match":                   supported,
		"prefix_match":                  supported,
		"suffix_match":                  supported,
		"contains_match":                supported,
		"safe_regex_match":              supported,
	}},
	{"envoy.type.matcher.v3.StringMatcher", map[string]Field{
		"exact":       supported,
		"prefix":      supported,
		"suffix":      supported,
		"contains":    supported,
		"safe_regex":  supported,
		"ignore_case": supported,
	}},
	{"envoy.type.v3.Int64Range", map[string]Field{
		"start": supported,
		"end":   supported,
	}},
	{"envoy.config.route.v3.QueryParameterMatcher", map[string]Field{
		"name":          supported,
		"string_match":  supported,
		"present_match": supported,
	}},
	{"envoy.config.route.v3.RouteAction", map[string]Field{
		"cluster":              supported,
		"weighted_clusters":    supported,
		"prefix_rewrite":       supported,
		"regex_rewrite":        supported,
		"host_rewrite_literal": supported,
		"auto_host_rewrite":    supported,
		"timeout":              note(supported, "default 15s, 0 disables"),
		"idle_timeout":         supported,
		"retry_policy":         note(supported, "replaces the virtual host's whole; the cluster's retry budget (default 20 %, min 3) caps retries"),
		"hedge_policy":         supported,
		"hash_policy":          supported,
		"max_stream_duration":  supported,
	}},
	{"envoy.config.route.v3.RetryPolicy", map[string]Field{
		"retry_on":                          note(supported, "5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable"),
		"num_retries":                       note(supported, "default 1"),
		"per_try_timeout":                   supported,
		"per_try_idle_timeout":              supported,
		"retry_host_predicate":              note(supported, "envoy.retry_host_predicates.previous_hosts"),
		"host_selection_retry_max_attempts": supported,
		"retriable_status_codes":            supported,
		"retry_back_off":                    note(supported, "full jitter; default base 25ms, max 10 × base"),
		"retriable_headers":                 supported,
		"retriable_request_headers":         supported,
	}},
	{"envoy.config.route.v3.RetryPolicy.RetryBackOff", map[string]Field{
		"base_interval": supported,
		"max_interval":  supported,
	}},
	{"envoy.config.route.v3.RetryPolicy.RetryHostPredicate", map[string]Field{
		"name":         supported,
		"typed_config": anyOf(PreviousHostsPredicate),
	}},
	{PreviousHostsPredicate, map[string]Field{}},
	{"envoy.config.route.v3.HedgePolicy", map[string]Field{
		"initial_requests":          note(supported, "1 only"),
		"additional_request_chance": note(leaf, "0 only"),
		"hedge_on_per_try_timeout":  supported,
	}},
	{"envoy.config.route.v3.RouteAction.HashPolicy", map[string]Field{
		"header":                supported,
		"cookie":                supported,
		"connection_properties": supported,
		"query_parameter":       supported,
		"terminal":              supported,
	}},
	{"envoy.config.route.v3.RouteAction.HashPolicy.Header", map[string]Field{
		"header_name": supported,
	}},
	{"envoy.config.route.v3.RouteAction.HashPolicy.Cookie", map[string]Field{
		"name": supported,
		"ttl":  note(supported, "generates the cookie when absent"),
		"path": supported,
	}},
	{"envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties", map[string]Field{
		"source_ip": supported,
	}},
	{"envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter", map[string]Field{
		"name": supported,
	}},
	{"envoy.config.route.v3.RouteAction.MaxStreamDuration", map[string]Field{
		"max_stream_duration":        supported,
		"grpc_timeout_header_max":    note(supported, "0 or unset: the grpc-timeout header is honoured uncapped (Envoy ignores it when unset)"),
		"grpc_timeout_header_offset": supported,
	}},
	{"envoy.config.route.v3.WeightedCluster", map[string]Field{
		"clusters":     supported,
		"total_weight": note(supported, "deprecated; must equal the sum when set"),
	}},
	{"envoy.config.route.v3.WeightedCluster.ClusterWeight", map[string]Field{
		"name":                       supported,
		"weight":                     supported,
		"request_headers_to_add":     supported,
		"request_headers_to_remove":  supported,
		"response_headers_to_add":    supported,
		"response_headers_to_remove": supported,
	}},
	{"envoy.type.matcher.v3.RegexMatchAndSubstitute", map[string]Field{
		"pattern":      supported,
		"substitution": note(supported, `\1 becomes ${1}`),
	}},
	{"envoy.config.route.v3.DirectResponseAction", map[string]Field{
		"status": supported,
		"body":   supported,
	}},
	{"envoy.config.route.v3.RedirectAction", map[string]Field{
		"https_redirect":  supported,
		"scheme_redirect": supported,
		"host_redirect":   supported,
		"port_redirect":   supported,
		"path_redirect":   supported,
		"prefix_rewrite":  supported,
		"response_code":   supported,
		"strip_query":     supported,
	}},
	{"envoy.config.core.v3.HeaderValueOption", map[string]Field{
		"header":        note(supported, "values with % command operators are rejected (%% is a literal %)"),
		"append":        supported,
		"append_action": enums("APPEND_IF_EXISTS_OR_ADD", "ADD_IF_ABSENT", "OVERWRITE_IF_EXISTS_OR_ADD"),
	}},
	{"envoy.config.core.v3.HeaderValue", map[string]Field{
		"key":       supported,
		"value":     supported,
		"raw_value": supported,
	}},
	{"envoy.config.core.v3.DataSource", map[string]Field{
		"filename":      supported,
		"inline_bytes":  supported,
		"inline_string": supported,
	}},

	// Clusters.
	{"envoy.config.cluster.v3.Cluster", map[string]Field{
		"name":                             supported,
		"alt_stat_name":                    ignored,
		"type":                             note(enums("STATIC", "STRICT_DNS", "LOGICAL_DNS", "EDS", "ORIGINAL_DST"), "EDS only over xDS, not in static_resources; ORIGINAL_DST with lb_policy CLUSTER_PROVIDED"),
		"eds_cluster_config":               supported,
		"connect_timeout":                  note(supported, "default 5s"),
		"lb_policy":                        note(enums("ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV", "CLUSTER_PROVIDED"), "CLUSTER_PROVIDED for ORIGINAL_DST only"),
		"least_request_lb_config":          supported,
		"ring_hash_lb_config":              supported,
		"maglev_lb_config":                 supported,
		"common_lb_config":                 supported,
		"load_balancing_policy":            note(supported, "the first supported policy wins; PEAK_EWMA is ours (docs/load-balancing.md)"),
		"load_assignment":                  supported,
		"typed_extension_protocol_options": note(anyOf(UpstreamHTTPOptions), "key envoy.extensions.upstreams.http.v3.HttpProtocolOptions"),
		"http2_protocol_options":           note(supported, "deprecated form of explicit HTTP/2"),
		"dns_refresh_rate":                 note(supported, "default 5s"),
		"dns_lookup_family":                supported,
		"transport_socket":                 supported,
		"metadata":                         ignored,
		"track_cluster_stats":              ignored,
		"circuit_breakers":                 supported,
		"outlier_detection":                note(supported, "gobreaker per host: ejected = open, expiry = half-open probe"),
		"health_checks":                    note(supported, "HTTP, gRPC and TCP"),
	}},
	{"envoy.config.cluster.v3.OutlierDetection", map[string]Field{
		"consecutive_5xx":                             note(supported, "default 5"),
		"interval":                                    note(supported, "default 10s"),
		"base_ejection_time":                          note(supported, "default 30s, × the ejection count"),
		"max_ejection_percent":                        note(supported, "default 10"),
		"enforcing_consecutive_5xx":                   supported,
		"enforcing_success_rate":                      supported,
		"success_rate_minimum_hosts":                  supported,
		"success_rate_request_volume":                 supported,
		"success_rate_stdev_factor":                   supported,
		"consecutive_gateway_failure":                 supported,
		"enforcing_consecutive_gateway_failure":       supported,
		"split_external_local_origin_errors":          supported,
		"consecutive_local_origin_failure":            supported,
		"enforcing_consecutive_local_origin_failure":  supported,
		"enforcing_local_origin_success_rate":         supported,
		"failure_percentage_threshold":                supported,
		"enforcing_failure_percentage":                supported,
		"enforcing_failure_percentage_local_origin":   supported,
		"failure_percentage_minimum_hosts":            supported,
		"failure_percentage_request_volume":           supported,
		"max_ejection_time":                           note(supported, "default 300s"),
		"max_ejection_time_jitter":                    supported,
		"successful_active_health_check_uneject_host": supported,
		"always_eject_one_host":                       supported,
		"detect_degraded_hosts":                       note(leaf, "false only"),
	}},
	{"envoy.config.core.v3.HealthCheck", map[string]Field{
		"timeout":                          supported,
		"interval":                         supported,
		"initial_jitter":                   supported,
		"interval_jitter":                  supported,
		"interval_jitter_percent":          supported,
		"unhealthy_threshold":              supported,
		"healthy_threshold":                supported,
		"reuse_connection":                 note(supported, "default true"),
		"http_health_check":                supported,
		"tcp_health_check":                 supported,
		"grpc_health_check":                supported,
		"no_traffic_interval":              note(supported, "default 60s"),
		"no_traffic_healthy_interval":      supported,
		"unhealthy_interval":               supported,
		"unhealthy_edge_interval":          supported,
		"healthy_edge_interval":            supported,
		"always_log_health_check_failures": ignored,
		"always_log_health_check_success":  ignored,
	}},
	{"envoy.config.core.v3.HealthCheck.HttpHealthCheck", map[string]Field{
		"host":                   supported,
		"path":                   supported,
		"request_headers_to_add": supported,
		"expected_statuses":      note(supported, "default [200, 201)"),
		"retriable_statuses":     supported,
		"codec_client_type":      enums("HTTP1", "HTTP2"),
		"method":                 supported,
	}},
	{"envoy.config.core.v3.HealthCheck.GrpcHealthCheck", map[string]Field{
		"service_name":     supported,
		"authority":        supported,
		"initial_metadata": supported,
	}},
	{"envoy.config.core.v3.HealthCheck.TcpHealthCheck", map[string]Field{
		"send":    supported,
		"receive": supported,
	}},
	{"envoy.config.core.v3.HealthCheck.Payload", map[string]Field{
		"text":   note(supported, "hex"),
		"binary": supported,
	}},
	{"envoy.config.cluster.v3.Cluster.LeastRequestLbConfig", map[string]Field{
		"choice_count":        note(supported, "default 2"),
		"active_request_bias": note(supported, "default 1.0"),
	}},
	{"envoy.config.core.v3.RuntimeDouble", map[string]Field{
		"default_value": supported,
		"runtime_key":   note(ignored, "no runtime: the default value applies"),
	}},
	{"envoy.config.cluster.v3.Cluster.RingHashLbConfig", map[string]Field{
		"minimum_ring_size": note(supported, "default 1024"),
		"maximum_ring_size": note(supported, "default 8M"),
		"hash_function":     enums("XX_HASH"),
	}},
	{"envoy.config.cluster.v3.Cluster.MaglevLbConfig", map[string]Field{
		"table_size": note(supported, "prime, default 65537"),
	}},
	{"envoy.config.cluster.v3.Cluster.CommonLbConfig", map[string]Field{
		"healthy_panic_threshold":     note(supported, "default 50 %, 0 disables panic mode"),
		"locality_weighted_lb_config": supported,
		"update_merge_window":         ignored,
	}},
	{"envoy.config.cluster.v3.Cluster.CommonLbConfig.LocalityWeightedLbConfig", map[string]Field{}},
	{"envoy.config.cluster.v3.LoadBalancingPolicy", map[string]Field{
		"policies": supported,
	}},
	{"envoy.config.cluster.v3.LoadBalancingPolicy.Policy", map[string]Field{
		"typed_extension_config": supported,
	}},
	{"envoy.config.core.v3.TypedExtensionConfig", map[string]Field{
		"name":         supported,
		"typed_config": anyOf(RoundRobinLB, LeastRequestLB, RandomLB, RingHashLB, MaglevLB, TypedStruct),
	}},
	{RoundRobinLB, map[string]Field{"locality_lb_config": supported}},
	{LeastRequestLB, map[string]Field{
		"choice_count":        supported,
		"active_request_bias": supported,
		"locality_lb_config":  supported,
	}},
	{RandomLB, map[string]Field{"locality_lb_config": supported}},
	{RingHashLB, map[string]Field{
		"hash_function":               enums("DEFAULT_HASH", "XX_HASH"),
		"minimum_ring_size":           supported,
		"maximum_ring_size":           supported,
		"locality_weighted_lb_config": supported,
	}},
	{MaglevLB, map[string]Field{
		"table_size":                  supported,
		"locality_weighted_lb_config": supported,
	}},
	{"envoy.extensions.load_balancing_policies.common.v3.LocalityLbConfig", map[string]Field{
		"locality_weighted_lb_config": supported,
	}},
	{"envoy.extensions.load_balancing_policies.common.v3.LocalityLbConfig.LocalityWeightedLbConfig", map[string]Field{}},
	{TypedStruct, map[string]Field{
		"type_url": note(supported, "outrigger.lb.v1.PeakEwma"),
		"value":    note(supported, "decay, default_rtt, choice_count"),
	}},
	{"envoy.config.cluster.v3.CircuitBreakers", map[string]Field{
		"thresholds": note(supported, "requests all run at DEFAULT priority; max_connections and max_pending_requests are enforced on HTTP/1.1 pools"),
	}},
	{"envoy.config.cluster.v3.CircuitBreakers.Thresholds", map[string]Field{
		"priority":             supported,
		"max_connections":      note(supported, "default 1024"),
		"max_pending_requests": note(supported, "default 1024"),
		"max_requests":         note(supported, "default 1024"),
		"max_retries":          note(supported, "no default cap: the retry budget governs unless this is set (then both apply)"),
		"retry_budget":         note(supported, "ON by default (20 %, min 3) even when not configured — a deliberate difference from Envoy"),
		"track_remaining":      ignored,
	}},
	{"envoy.config.cluster.v3.CircuitBreakers.Thresholds.RetryBudget", map[string]Field{
		"budget_percent":        note(supported, "default 20"),
		"min_retry_concurrency": note(supported, "default 3"),
	}},
	{"envoy.type.v3.Percent", map[string]Field{
		"value": supported,
	}},
	{"envoy.config.cluster.v3.Cluster.EdsClusterConfig", map[string]Field{
		"eds_config":   supported,
		"service_name": supported,
	}},
	{"envoy.config.endpoint.v3.ClusterLoadAssignment", map[string]Field{
		"cluster_name": supported,
		"endpoints":    supported,
		"policy":       supported,
	}},
	{"envoy.config.endpoint.v3.ClusterLoadAssignment.Policy", map[string]Field{
		"overprovisioning_factor":  note(supported, "default 140"),
		"weighted_priority_health": note(leaf, "false only"),
	}},
	{"envoy.config.core.v3.Locality", map[string]Field{
		"region":   supported,
		"zone":     supported,
		"sub_zone": supported,
	}},
	{"envoy.config.endpoint.v3.LocalityLbEndpoints", map[string]Field{
		"lb_endpoints":          supported,
		"priority":              note(supported, "load spills by the overprovisioning factor, as Envoy's priority levels"),
		"locality":              supported,
		"load_balancing_weight": note(supported, "used with locality_weighted_lb_config"),
		"metadata":              ignored,
	}},
	{"envoy.config.endpoint.v3.LbEndpoint", map[string]Field{
		"endpoint":              supported,
		"load_balancing_weight": supported,
		"health_status":         note(supported, "UNHEALTHY, DRAINING and TIMEOUT endpoints get no traffic"),
		"metadata":              ignored,
	}},
	{"envoy.config.endpoint.v3.Endpoint", map[string]Field{
		"address": supported,
	}},
	{UpstreamHTTPOptions, map[string]Field{
		"common_http_protocol_options":   supported,
		"explicit_http_config":           supported,
		"use_downstream_protocol_config": supported,
	}},
	{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig", map[string]Field{
		"http_protocol_options":  supported,
		"http2_protocol_options": supported,
	}},
	{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig", map[string]Field{
		"http_protocol_options":  supported,
		"http2_protocol_options": supported,
	}},

	// TLS.
	{DownstreamTLSContext, map[string]Field{
		"common_tls_context":         supported,
		"require_client_certificate": supported,
	}},
	{UpstreamTLSContext, map[string]Field{
		"common_tls_context": supported,
		"sni":                supported,
	}},
	{"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext", map[string]Field{
		"tls_params":         supported,
		"tls_certificates":   supported,
		"validation_context": supported,
		"alpn_protocols":     note(supported, "downstream only; upstream ALPN follows the cluster's protocol"),
	}},
	{"envoy.extensions.transport_sockets.tls.v3.TlsParameters", map[string]Field{
		"tls_minimum_protocol_version": enums("TLS_AUTO", "TLSv1_2", "TLSv1_3"),
		"tls_maximum_protocol_version": enums("TLS_AUTO", "TLSv1_2", "TLSv1_3"),
	}},
	{"envoy.extensions.transport_sockets.tls.v3.TlsCertificate", map[string]Field{
		"certificate_chain": supported,
		"private_key":       supported,
	}},
	{"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext", map[string]Field{
		"trusted_ca": supported,
	}},
}

// wellKnown messages are leaves: their content is a value, not config.
var wellKnown = map[protoreflect.FullName]bool{
	"google.protobuf.Duration":    true,
	"google.protobuf.Timestamp":   true,
	"google.protobuf.BoolValue":   true,
	"google.protobuf.UInt32Value": true,
	"google.protobuf.UInt64Value": true,
	"google.protobuf.Int32Value":  true,
	"google.protobuf.Int64Value":  true,
	"google.protobuf.DoubleValue": true,
	"google.protobuf.FloatValue":  true,
	"google.protobuf.StringValue": true,
	"google.protobuf.BytesValue":  true,
	"google.protobuf.Struct":      true,
	"google.protobuf.Value":       true,
	"google.protobuf.ListValue":   true,
	"google.protobuf.Empty":       true,
}

// mergeMessages concatenates tables, merging the field rules of messages
// listed more than once into the first entry (a later rule for the same
// field wins, except that the types allowed in an Any field add up).
func mergeMessages(tables ...[]Message) []Message {
	var out []Message
	at := map[protoreflect.FullName]int{}
	for _, t := range tables {
		for _, m := range t {
			i, ok := at[m.Name]
			if !ok {
				at[m.Name] = len(out)
				out = append(out, Message{Name: m.Name, Fields: maps.Clone(m.Fields)})
				continue
			}
			if out[i].Fields == nil {
				out[i].Fields = map[string]Field{}
			}
			for name, f := range m.Fields {
				// An Any field's allowed types add up across features, so
				// each lists only its own.
				if prev, ok := out[i].Fields[name]; ok && len(prev.Types) > 0 && len(f.Types) > 0 {
					types := slices.Clone(prev.Types)
					for _, t := range f.Types {
						if !slices.Contains(types, t) {
							types = append(types, t)
						}
					}
					f.Types = types
					if f.Note == "" {
						f.Note = prev.Note
					}
				}
				out[i].Fields[name] = f
			}
		}
	}
	return out
}

// rules indexes Messages by name.
var rules = func() map[protoreflect.FullName]map[string]Field {
	m := make(map[protoreflect.FullName]map[string]Field, len(Messages))
	for _, msg := range Messages {
		m[msg.Name] = msg.Fields
	}
	return m
}()
