package resource

import "google.golang.org/protobuf/reflect/protoreflect"

// Messages of the envoy.filters.http.cors filter and its per-route policy.
const (
	CORS       protoreflect.FullName = "envoy.extensions.filters.http.cors.v3.Cors"
	CORSPolicy protoreflect.FullName = "envoy.extensions.filters.http.cors.v3.CorsPolicy"
)

// The CORS feature's part of the support table (see table_grpcweb.go).
var (
	corsExtensions []Extension
	corsMessages   []Message
)
