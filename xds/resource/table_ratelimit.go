package resource

import "google.golang.org/protobuf/reflect/protoreflect"

// Messages of the local rate limit filters; the HTTP filter's per-route
// config is the same message.
const (
	HTTPLocalRateLimit    protoreflect.FullName = "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
	NetworkLocalRateLimit protoreflect.FullName = "envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit"
)

// The local rate limit feature's part of the support table (see
// table_grpcweb.go).
var (
	rateLimitExtensions []Extension
	rateLimitMessages   []Message
)
