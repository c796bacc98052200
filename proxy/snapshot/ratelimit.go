package snapshot

import (
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
)

// localRateLimitFilter converts an envoy.filters.http.local_ratelimit
// filter named name (at path p). Placeholder until the filter lands.
func (c *converter) localRateLimitFilter(p, name string, a *anypb.Any) hcm.HTTPFilter {
	c.fail(p, "%s is not supported yet", a.GetTypeUrl())
	return nil
}

// localRateLimitPerRoute converts a local_ratelimit typed_per_filter_config.
func (c *converter) localRateLimitPerRoute(p string, a *anypb.Any) any {
	c.fail(p, "%s is not supported yet", a.GetTypeUrl())
	return nil
}

// localRateLimitNetworkFilter converts an
// envoy.filters.network.local_ratelimit filter.
func (c *converter) localRateLimitNetworkFilter(p string, a *anypb.Any) listener.ConnFilter {
	c.fail(p, "%s is not supported yet", a.GetTypeUrl())
	return nil
}
