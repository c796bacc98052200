package snapshot

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// defaultCleanupInterval is ORIGINAL_DST's cleanup_interval default.
const defaultCleanupInterval = cluster.DefaultCleanupInterval

// hasOriginalDstFilter reports whether the listener lists the
// envoy.filters.listener.original_dst listener filter (the support table
// has checked every listener filter's type already).
func hasOriginalDstFilter(l *listenerv3.Listener) bool {
	for _, f := range l.GetListenerFilters() {
		if f.GetTypedConfig().GetTypeUrl() == resource.TypeURLPrefix+string(resource.OriginalDstFilter) {
			return true
		}
	}
	return false
}

// destinationMatch converts filter_chain_match's destination_port and
// prefix_ranges.
func (c *converter) destinationMatch(mp string, m *listenerv3.FilterChainMatch, out *listener.ChainMatch) {
	// The proto's own rule (checked before conversion) keeps the port in
	// 1-65535.
	out.DestinationPort = uint16(m.GetDestinationPort().GetValue())
	for i, r := range m.GetPrefixRanges() {
		if p := c.cidr(resource.Index(resource.Join(mp, "prefix_ranges"), i), r); p.IsValid() {
			out.PrefixRanges = append(out.PrefixRanges, p)
		}
	}
}

// originalDstCluster applies what an ORIGINAL_DST cluster takes instead
// of endpoints and a load-balancing policy: lb_policy CLUSTER_PROVIDED
// (Envoy requires it) and cleanup_interval. CLUSTER_PROVIDED on another
// type, and what an ORIGINAL_DST cluster cannot use, are refused.
func (c *converter) originalDstCluster(p string, cl *clusterv3.Cluster, out *cluster.Config) {
	if cl.GetType() != clusterv3.Cluster_ORIGINAL_DST {
		c.fail(resource.Join(p, "lb_policy"), "CLUSTER_PROVIDED is only for clusters of type ORIGINAL_DST")
		return
	}
	if cl.GetLbPolicy() != clusterv3.Cluster_CLUSTER_PROVIDED {
		c.fail(resource.Join(p, "lb_policy"), "an ORIGINAL_DST cluster needs CLUSTER_PROVIDED, not %s", cl.GetLbPolicy())
	}
	// A slice, not a map, so the errors come in the same order every time
	// (the Cluster's field order).
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"health_checks", len(cl.GetHealthChecks()) > 0},
		{"outlier_detection", cl.GetOutlierDetection() != nil},
		{"common_lb_config", cl.GetCommonLbConfig() != nil},
		{"load_assignment", cl.GetLoadAssignment() != nil},
		{"load_balancing_policy", cl.GetLoadBalancingPolicy() != nil},
	} {
		if f.set {
			c.fail(resource.Join(p, f.name), "is not supported on an ORIGINAL_DST cluster (its hosts are the connections' original destinations)")
		}
	}
	// The proto's own rule (checked before conversion) keeps it positive.
	out.CleanupInterval = duration(cl.GetCleanupInterval(), defaultCleanupInterval)
}

// destinationKeys are a chain's destination conditions as duplicate-check
// keys: "port/prefix" for each prefix range (one "port/" without any).
func destinationKeys(m *listenerv3.FilterChainMatch) []string {
	port := m.GetDestinationPort().GetValue()
	if len(m.GetPrefixRanges()) == 0 {
		return []string{fmt.Sprintf("%d/", port)}
	}
	out := make([]string, 0, len(m.GetPrefixRanges()))
	for _, r := range m.GetPrefixRanges() {
		out = append(out, fmt.Sprintf("%d/%s/%d", port, r.GetAddressPrefix(), r.GetPrefixLen().GetValue()))
	}
	return out
}
