package snapshot

import (
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
)

// rbacHTTPFilter converts an envoy.filters.http.rbac filter named name (at
// path p). Placeholder until the filter lands.
func (c *converter) rbacHTTPFilter(p, name string, a *anypb.Any) hcm.HTTPFilter {
	c.fail(p, "%s is not supported yet", a.GetTypeUrl())
	return nil
}

// rbacPerRoute converts an RBACPerRoute typed_per_filter_config.
func (c *converter) rbacPerRoute(p string, a *anypb.Any) any {
	c.fail(p, "%s is not supported yet", a.GetTypeUrl())
	return nil
}

// rbacNetworkFilter converts an envoy.filters.network.rbac filter.
func (c *converter) rbacNetworkFilter(p string, a *anypb.Any) listener.ConnFilter {
	c.fail(p, "%s is not supported yet", a.GetTypeUrl())
	return nil
}
