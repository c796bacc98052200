package resource

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"    // registers LocalRateLimit
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3" // registers LocalRateLimit
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Messages of the local rate limit filters; the HTTP filter's per-route
// config is the same message.
const (
	HTTPLocalRateLimit    protoreflect.FullName = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
	NetworkLocalRateLimit protoreflect.FullName = "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit"
)

// The local rate limit feature's part of the support table (see
// table_grpcweb.go and docs/ratelimit.md). Descriptors, rate_limits,
// per-connection buckets, the cluster-shared limit and runtime keys stay
// unlisted, so refused.
var (
	rateLimitExtensions = []Extension{
		{"envoy.filters.http.local_ratelimit", HTTPLocalRateLimit, "HttpConnectionManager http_filters[].typed_config (before the router), " +
			"and Route/VirtualHost typed_per_filter_config (a bucket of the route's own); see docs/ratelimit.md"},
		{"envoy.filters.network.local_ratelimit", NetworkLocalRateLimit, "Listener filter_chains[].filters[].typed_config, " +
			"before the connection manager or the TCP proxy: connections over the budget are closed; see docs/ratelimit.md"},
	}
	rateLimitMessages = []Message{
		{"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", map[string]Field{
			"typed_config": anyOf(HTTPLocalRateLimit),
		}},
		{"envoy.config.route.v3.VirtualHost", map[string]Field{
			"typed_per_filter_config": anyOf(HTTPLocalRateLimit),
		}},
		{"envoy.config.route.v3.Route", map[string]Field{
			"typed_per_filter_config": anyOf(HTTPLocalRateLimit),
		}},
		{"envoy.config.listener.v3.Filter", map[string]Field{
			"typed_config": anyOf(NetworkLocalRateLimit),
		}},
		{HTTPLocalRateLimit, map[string]Field{
			"stat_prefix":  note(supported, "counters <stat_prefix>.http_local_rate_limit.{enabled,enforced,rate_limited,ok}"),
			"status":       note(supported, "default 429; gRPC requests get a grpc-status from it (429: UNAVAILABLE)"),
			"token_bucket": note(supported, "required in typed_per_filter_config; fill_interval at least 50ms"),
			"filter_enabled": note(supported,
				"default_value only; unset means no request is checked, as in Envoy"),
			"filter_enforced": note(supported,
				"default_value only; unset means requests over the limit are only counted, as in Envoy"),
			"response_headers_to_add":    note(supported, "added to rate-limited replies"),
			"enable_x_ratelimit_headers": note(enums("OFF", "DRAFT_VERSION_03"), "x-ratelimit-limit, -remaining and -reset on every checked response"),
		}},
		{NetworkLocalRateLimit, map[string]Field{
			"stat_prefix":     note(supported, "counter local_rate_limit.<stat_prefix>.rate_limited"),
			"token_bucket":    note(supported, "one token per new connection; fill_interval at least 50ms"),
			"runtime_enabled": note(supported, "default_value only"),
		}},
		{"envoy.type.v3.TokenBucket", map[string]Field{
			"max_tokens":      supported,
			"tokens_per_fill": note(supported, "default 1"),
			"fill_interval":   supported,
		}},
		{"envoy.type.v3.HttpStatus", map[string]Field{
			"code": supported,
		}},
		{"envoy.config.core.v3.RuntimeFeatureFlag", map[string]Field{
			"default_value": supported,
			"runtime_key":   note(ignored, "required by the proto; there is no runtime, default_value applies"),
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
