package snapshot

import (
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
)

// jwtAuthnFilter converts an envoy.filters.http.jwt_authn filter named
// name (at path p). Placeholder until the filter lands.
func (c *converter) jwtAuthnFilter(p, name string, a *anypb.Any) hcm.HTTPFilter {
	c.fail(p, "%s is not supported yet", a.GetTypeUrl())
	return nil
}

// jwtAuthnPerRoute converts a jwt_authn PerRouteConfig.
func (c *converter) jwtAuthnPerRoute(p string, a *anypb.Any) any {
	c.fail(p, "%s is not supported yet", a.GetTypeUrl())
	return nil
}
