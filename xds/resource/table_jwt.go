package resource

import "google.golang.org/protobuf/reflect/protoreflect"

// Messages of the envoy.filters.http.jwt_authn filter.
const (
	JWTAuthn         protoreflect.FullName = "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication"
	JWTAuthnPerRoute protoreflect.FullName = "envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig"
)

// The jwt_authn feature's part of the support table (see table_grpcweb.go).
var (
	jwtExtensions []Extension
	jwtMessages   []Message
)
