package snapshot

import (
	"time"

	xdstypev3 "github.com/cncf/xds/go/xds/type/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	commonlbv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/common/v3"
	leastrequestv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/least_request/v3"
	maglevv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/maglev/v3"
	randomv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/random/v3"
	ringhashv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/ring_hash/v3"
	roundrobinv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// PeakEWMATypeURL is the TypedStruct type_url of our latency-aware policy,
// selected through Cluster.load_balancing_policy.
const PeakEWMATypeURL = "outrigger.lb.v1.PeakEwma"

// lbConfig converts lb_policy with its *_lb_config, common_lb_config, or
// load_balancing_policy (which wins: Envoy ignores lb_policy when it is set).
func (c *converter) lbConfig(p string, cl *clusterv3.Cluster) lb.Config {
	var out lb.Config
	if lbp := cl.GetLoadBalancingPolicy(); lbp != nil {
		out = c.loadBalancingPolicy(resource.Join(p, "load_balancing_policy"), lbp)
	} else {
		switch cl.GetLbPolicy() {
		case clusterv3.Cluster_ROUND_ROBIN:
			out.Policy = lb.RoundRobinPolicy
		case clusterv3.Cluster_LEAST_REQUEST:
			out.Policy = lb.LeastRequestPolicy
			if lr := cl.GetLeastRequestLbConfig(); lr != nil {
				lrp := resource.Join(p, "least_request_lb_config")
				out.ChoiceCount = c.choiceCount(resource.Join(lrp, "choice_count"), lr.GetChoiceCount().GetValue(), lr.GetChoiceCount() != nil)
				if b := lr.GetActiveRequestBias(); b != nil {
					v := b.GetDefaultValue()
					out.ActiveRequestBias = &v
				}
			}
		case clusterv3.Cluster_RANDOM:
			out.Policy = lb.RandomPolicy
		case clusterv3.Cluster_RING_HASH:
			out.Policy = lb.RingHashPolicy
			if rh := cl.GetRingHashLbConfig(); rh != nil {
				out.MinRingSize = rh.GetMinimumRingSize().GetValue()
				out.MaxRingSize = rh.GetMaximumRingSize().GetValue()
			}
		case clusterv3.Cluster_MAGLEV:
			out.Policy = lb.MaglevPolicy
			out.TableSize = cl.GetMaglevLbConfig().GetTableSize().GetValue()
		default:
			c.fail(resource.Join(p, "lb_policy"), "%s is not supported", cl.GetLbPolicy())
		}
	}
	if cc := cl.GetCommonLbConfig(); cc != nil {
		cp := resource.Join(p, "common_lb_config")
		if t := cc.GetHealthyPanicThreshold(); t != nil {
			v := t.GetValue()
			out.PanicThreshold = &v
		}
		if cc.GetLocalityWeightedLbConfig() != nil {
			out.LocalityWeighted = true
		}
		if cc.GetZoneAwareLbConfig() != nil {
			c.fail(resource.Join(cp, "zone_aware_lb_config"), "is not supported yet")
		}
	}
	if err := out.Validate(); err != nil {
		c.fail(p, "%v", err)
	}
	return out
}

// choiceCount: Envoy requires at least 2.
func (c *converter) choiceCount(p string, v uint32, set bool) uint32 {
	if set && v < 2 {
		c.fail(p, "%d: must be at least 2", v)
	}
	return v
}

// loadBalancingPolicy takes the first policy of the list that we implement,
// as Envoy does; none is an error naming the list.
func (c *converter) loadBalancingPolicy(p string, lbp *clusterv3.LoadBalancingPolicy) lb.Config {
	for i, pol := range lbp.GetPolicies() {
		pp := resource.Join(resource.Index(resource.Join(p, "policies"), i), "typed_extension_config.typed_config")
		tc := pol.GetTypedExtensionConfig().GetTypedConfig()
		var out lb.Config
		switch tc.GetTypeUrl() {
		case resource.TypeURLPrefix + string(resource.RoundRobinLB):
			var m roundrobinv3.RoundRobin
			if c.unpack(pp, tc, &m) {
				out.Policy = lb.RoundRobinPolicy
				c.localityLB(resource.Join(pp, "locality_lb_config"), m.GetLocalityLbConfig(), &out)
			}
		case resource.TypeURLPrefix + string(resource.LeastRequestLB):
			var m leastrequestv3.LeastRequest
			if c.unpack(pp, tc, &m) {
				out.Policy = lb.LeastRequestPolicy
				out.ChoiceCount = c.choiceCount(resource.Join(pp, "choice_count"), m.GetChoiceCount().GetValue(), m.GetChoiceCount() != nil)
				if b := m.GetActiveRequestBias(); b != nil {
					v := b.GetDefaultValue()
					out.ActiveRequestBias = &v
				}
				c.localityLB(resource.Join(pp, "locality_lb_config"), m.GetLocalityLbConfig(), &out)
			}
		case resource.TypeURLPrefix + string(resource.RandomLB):
			var m randomv3.Random
			if c.unpack(pp, tc, &m) {
				out.Policy = lb.RandomPolicy
				c.localityLB(resource.Join(pp, "locality_lb_config"), m.GetLocalityLbConfig(), &out)
			}
		case resource.TypeURLPrefix + string(resource.RingHashLB):
			var m ringhashv3.RingHash
			if c.unpack(pp, tc, &m) {
				out.Policy = lb.RingHashPolicy
				out.MinRingSize = m.GetMinimumRingSize().GetValue()
				out.MaxRingSize = m.GetMaximumRingSize().GetValue()
				out.LocalityWeighted = m.GetLocalityWeightedLbConfig() != nil
			}
		case resource.TypeURLPrefix + string(resource.MaglevLB):
			var m maglevv3.Maglev
			if c.unpack(pp, tc, &m) {
				out.Policy = lb.MaglevPolicy
				out.TableSize = m.GetTableSize().GetValue()
				out.LocalityWeighted = m.GetLocalityWeightedLbConfig() != nil
			}
		case resource.TypeURLPrefix + string(resource.TypedStruct):
			var ts xdstypev3.TypedStruct
			if !c.unpack(pp, tc, &ts) {
				return out
			}
			if ts.GetTypeUrl() != PeakEWMATypeURL && ts.GetTypeUrl() != resource.TypeURLPrefix+PeakEWMATypeURL {
				continue // not ours: try the next policy, as Envoy does with an unknown extension
			}
			out.Policy = lb.PeakEWMAPolicy
			c.peakEWMA(resource.Join(pp, "value"), ts.GetValue(), &out)
		default:
			continue
		}
		return out
	}
	c.fail(p, "none of the policies is supported (ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH, MAGLEV extensions, or a TypedStruct of type_url %s)", PeakEWMATypeURL)
	return lb.Config{}
}

func (c *converter) localityLB(p string, l *commonlbv3.LocalityLbConfig, out *lb.Config) {
	switch {
	case l == nil:
	case l.GetLocalityWeightedLbConfig() != nil:
		out.LocalityWeighted = true
	case l.GetZoneAwareLbConfig() != nil:
		c.fail(resource.Join(p, "zone_aware_lb_config"), "is not supported yet")
	}
}

// peakEWMA reads our policy's fields: decay and default_rtt (durations as
// "10s" strings) and choice_count.
func (c *converter) peakEWMA(p string, s *structpb.Struct, out *lb.Config) {
	for k, v := range s.GetFields() {
		fp := resource.Join(p, k)
		switch k {
		case "decay", "default_rtt":
			d, err := time.ParseDuration(v.GetStringValue())
			if err != nil || d <= 0 {
				c.fail(fp, "%v: a positive duration such as \"10s\" is required", v.AsInterface())
				continue
			}
			if k == "decay" {
				out.Decay = d
			} else {
				out.DefaultRTT = d
			}
		case "choice_count":
			n := v.GetNumberValue()
			if n != float64(uint32(n)) {
				c.fail(fp, "%v: an integer is required", v.AsInterface())
				continue
			}
			out.ChoiceCount = c.choiceCount(fp, uint32(n), true)
		default:
			c.fail(fp, "unknown field (decay, default_rtt and choice_count are supported)")
		}
	}
}

// healthStatus reports whether an EDS health_status takes an endpoint out
// of balancing (it stays in the host set, for panic mode, as in Envoy).
func unhealthyStatus(s corev3.HealthStatus) bool {
	switch s {
	case corev3.HealthStatus_UNHEALTHY, corev3.HealthStatus_DRAINING, corev3.HealthStatus_TIMEOUT:
		return true
	}
	return false
}
