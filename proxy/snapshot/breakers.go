package snapshot

import (
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// thresholds converts circuit_breakers. Requests all run at the DEFAULT
// routing priority (RouteAction.priority is not supported), so the DEFAULT
// thresholds are the ones in force; HIGH ones are validated and kept out.
func (c *converter) thresholds(p string, cb *clusterv3.CircuitBreakers) cluster.Thresholds {
	var out cluster.Thresholds
	seen := map[corev3.RoutingPriority]bool{}
	for i, t := range cb.GetThresholds() {
		tp := resource.Index(resource.Join(p, "thresholds"), i)
		if seen[t.GetPriority()] {
			c.fail(resource.Join(tp, "priority"), "%s is configured twice", t.GetPriority())
		}
		seen[t.GetPriority()] = true
		var th cluster.Thresholds
		th.MaxConnections = c.positive(resource.Join(tp, "max_connections"), t.GetMaxConnections())
		th.MaxPendingRequests = c.positive(resource.Join(tp, "max_pending_requests"), t.GetMaxPendingRequests())
		th.MaxRequests = c.positive(resource.Join(tp, "max_requests"), t.GetMaxRequests())
		if mr := t.GetMaxRetries(); mr != nil {
			th.MaxRetries, th.MaxRetriesSet = mr.GetValue(), true
		}
		if b := t.GetRetryBudget(); b != nil {
			bp := resource.Join(tp, "retry_budget")
			th.Budget = cluster.DefaultBudget
			if pc := b.GetBudgetPercent(); pc != nil {
				if v := pc.GetValue(); v <= 0 || v > 100 {
					c.fail(resource.Join(bp, "budget_percent"), "%g: must be in (0, 100]", v)
				}
				th.Budget.Percent = pc.GetValue()
			}
			if m := b.GetMinRetryConcurrency(); m != nil {
				th.Budget.MinConcurrency = m.GetValue()
			}
		}
		if t.GetPriority() == corev3.RoutingPriority_DEFAULT {
			out = th
		}
	}
	return out
}

// positive reads a threshold: unset is 0 (the default applies); an explicit
// 0 would refuse every request, which is never what a config means.
func (c *converter) positive(p string, v *wrapperspb.UInt32Value) uint32 {
	if v == nil {
		return 0
	}
	if v.GetValue() == 0 {
		c.fail(p, "0 would refuse every request; leave it unset for the default")
	}
	return v.GetValue()
}
