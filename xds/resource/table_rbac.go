package resource

import "google.golang.org/protobuf/reflect/protoreflect"

// Messages of the envoy.filters.http.rbac and envoy.filters.network.rbac
// filters.
const (
	HTTPRBAC         protoreflect.FullName = "envoy.extensions.filters.http.rbac.v3.RBAC"
	HTTPRBACPerRoute protoreflect.FullName = "envoy.extensions.filters.http.rbac.v3.RBACPerRoute"
	NetworkRBAC      protoreflect.FullName = "envoy.extensions.filters.network.rbac.v3.RBAC"
)

// The RBAC feature's part of the support table (see table_grpcweb.go).
var (
	rbacExtensions []Extension
	rbacMessages   []Message
)
