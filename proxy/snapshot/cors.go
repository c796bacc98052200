package snapshot

import (
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
)

// corsFilter converts an envoy.filters.http.cors filter named name (at
// path p). Placeholder until the filter lands.
func (c *converter) corsFilter(p, name string, a *anypb.Any) hcm.HTTPFilter {
	c.fail(p, "%s is not supported yet", a.GetTypeUrl())
	return nil
}

// corsPerRoute converts a CorsPolicy typed_per_filter_config.
func (c *converter) corsPerRoute(p string, a *anypb.Any) any {
	c.fail(p, "%s is not supported yet", a.GetTypeUrl())
	return nil
}
