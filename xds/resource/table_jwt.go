package resource

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3" // registers JwtAuthentication, PerRouteConfig
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Messages of the envoy.filters.http.jwt_authn filter.
const (
	JWTAuthn         protoreflect.FullName = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
	JWTAuthnPerRoute protoreflect.FullName = "envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig"
)

// The jwt_authn feature's part of the support table (see table_grpcweb.go
// and docs/jwt.md). Dynamic metadata outputs, the JWT cache, subjects,
// require_expiration, max_lifetime, filter_state_rules, stat_prefix, the
// JWKS fetch retry policy and extract_only_without_validation stay
// unlisted, so refused.
var (
	jwtExtensions = []Extension{
		{"envoy.filters.http.jwt_authn", JWTAuthn, "HttpConnectionManager http_filters[].typed_config (before the router), " +
			"and PerRouteConfig in Route/VirtualHost typed_per_filter_config; see docs/jwt.md"},
	}
	jwtMessages = []Message{
		{"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter", map[string]Field{
			"typed_config": anyOf(JWTAuthn),
		}},
		{"envoy.config.route.v3.VirtualHost", map[string]Field{
			"typed_per_filter_config": anyOf(JWTAuthnPerRoute),
		}},
		{"envoy.config.route.v3.Route", map[string]Field{
			"typed_per_filter_config": anyOf(JWTAuthnPerRoute),
		}},
		{JWTAuthn, map[string]Field{
			"providers":              supported,
			"rules":                  note(supported, "the first rule whose match accepts the request applies; a request no rule matches is not checked"),
			"requirement_map":        note(supported, "for requirement_name in rules and in PerRouteConfig"),
			"bypass_cors_preflight":  supported,
			"strip_failure_response": supported,
		}},
		{"envoy.extensions.filters.http.jwt_authn.v3.JwtProvider", map[string]Field{
			"issuer":    note(supported, "tokens with another iss fail with \"Jwt issuer is not configured\""),
			"audiences": note(supported, "compared without http:// or https:// and a trailing slash, as Envoy; a mismatch answers 403"),
			"local_jwks": note(supported,
				"a JWKS (RSA, EC P-256/384/521, OKP Ed25519 keys); a set without one usable key is refused"),
			"remote_jwks":                supported,
			"forward":                    note(supported, "false removes the header that carried the token (query parameters and cookies keep it, as in Envoy)"),
			"from_headers":               supported,
			"from_params":                supported,
			"from_cookies":               supported,
			"forward_payload_header":     note(supported, "the payload as base64url; a client's own value is removed first"),
			"pad_forward_payload_header": supported,
			"clock_skew_seconds":         note(supported, "default 60"),
			"claim_to_headers":           note(supported, "string, number and boolean claims; claim_name may be a dotted path into nested claims"),
		}},
		{"envoy.extensions.filters.http.jwt_authn.v3.RemoteJwks", map[string]Field{
			"http_uri":       note(supported, "fetched with GET through a host of http_uri.cluster (its protocol, TLS and load balancing); timeout 0 means 5s"),
			"cache_duration": note(supported, "default 10 minutes"),
			"async_fetch":    note(supported, "fetch when the listener starts, and refresh in the background once stale while the stale keys keep serving"),
		}},
		{"envoy.extensions.filters.http.jwt_authn.v3.JwksAsyncFetch", map[string]Field{
			"fast_listener": note(ignored, "listeners never wait for the first fetch"),
		}},
		{"envoy.extensions.filters.http.jwt_authn.v3.JwtHeader", map[string]Field{
			"name":         supported,
			"value_prefix": supported,
		}},
		{"envoy.extensions.filters.http.jwt_authn.v3.JwtClaimToHeader", map[string]Field{
			"header_name": supported,
			"claim_name":  supported,
		}},
		{"envoy.extensions.filters.http.jwt_authn.v3.RequirementRule", map[string]Field{
			"match":            note(supported, "as a route's match"),
			"requires":         supported,
			"requirement_name": supported,
		}},
		{"envoy.extensions.filters.http.jwt_authn.v3.JwtRequirement", map[string]Field{
			"provider_name":           supported,
			"provider_and_audiences":  supported,
			"requires_any":            supported,
			"requires_all":            supported,
			"allow_missing_or_failed": supported,
			"allow_missing":           supported,
		}},
		{"envoy.extensions.filters.http.jwt_authn.v3.ProviderWithAudiences", map[string]Field{
			"provider_name": supported,
			"audiences":     supported,
		}},
		{"envoy.extensions.filters.http.jwt_authn.v3.JwtRequirementOrList", map[string]Field{
			"requirements": supported,
		}},
		{"envoy.extensions.filters.http.jwt_authn.v3.JwtRequirementAndList", map[string]Field{
			"requirements": supported,
		}},
		{JWTAuthnPerRoute, map[string]Field{
			"disabled":         supported,
			"requirement_name": note(supported, "a name missing from requirement_map answers 403, as Envoy"),
		}},
	}
)
