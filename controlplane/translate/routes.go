package translate

import (
	"sort"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/hashicorp/consul/api"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// routeConfig is the RouteConfiguration name for a chain, with one virtual
// host (named like the route) answering domains.
func routeConfig(name string, domains []string, ch *chain) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: domains,
			Routes:  chainRoutes(ch),
		}},
	}
}

// chainRoutes turns the compiled chain into Envoy routes, in order.
func chainRoutes(ch *chain) []*routev3.Route {
	out := make([]*routev3.Route, 0, len(ch.routes))
	for _, cr := range ch.routes {
		r := &routev3.Route{
			Match:  routeMatch(cr.match),
			Action: &routev3.Route_Route{Route: routeAction(cr, ch.routed)},
		}
		if d := cr.dest; d != nil {
			r.RequestHeadersToAdd = headersToAdd(d.RequestHeaders)
			r.RequestHeadersToRemove = headersToRemove(d.RequestHeaders)
			r.ResponseHeadersToAdd = headersToAdd(d.ResponseHeaders)
			r.ResponseHeadersToRemove = headersToRemove(d.ResponseHeaders)
		}
		out = append(out, r)
	}
	return out
}

// routeMatch is Consul's makeRouteMatchForDiscoveryRoute; nil matches
// everything (prefix "/").
func routeMatch(m *api.ServiceRouteHTTPMatch) *routev3.RouteMatch {
	out := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return out
	}
	switch {
	case m.PathExact != "":
		out.PathSpecifier = &routev3.RouteMatch_Path{Path: m.PathExact}
	case m.PathPrefix != "":
		out.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: m.PathPrefix}
	case m.PathRegex != "":
		out.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regexMatcher(m.PathRegex)}
	}
	if m.CaseInsensitive {
		out.CaseSensitive = wrapperspb.Bool(false)
	}
	for _, h := range m.Header {
		hm := &routev3.HeaderMatcher{Name: h.Name, InvertMatch: h.Invert}
		switch {
		case h.Present:
			hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		case h.Exact != "":
			hm.HeaderMatchSpecifier = stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h.Exact}})
		case h.Prefix != "":
			hm.HeaderMatchSpecifier = stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: h.Prefix}})
		case h.Suffix != "":
			hm.HeaderMatchSpecifier = stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: h.Suffix}})
		case h.Regex != "":
			hm.HeaderMatchSpecifier = stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(h.Regex)}})
		}
		out.Headers = append(out.Headers, hm)
	}
	if len(m.Methods) > 0 {
		out.Headers = append(out.Headers, &routev3.HeaderMatcher{
			Name: ":method",
			HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
				SafeRegex: regexMatcher(strings.Join(m.Methods, "|")),
			}}),
		})
	}
	for _, q := range m.QueryParam {
		qm := &routev3.QueryParameterMatcher{Name: q.Name}
		switch {
		case q.Present:
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		case q.Exact != "":
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_Exact{Exact: q.Exact},
			}}
		case q.Regex != "":
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{
				MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(q.Regex)},
			}}
		}
		out.QueryParameters = append(out.QueryParameters, qm)
	}
	return out
}

func stringMatch(sm *matcherv3.StringMatcher) *routev3.HeaderMatcher_StringMatch {
	return &routev3.HeaderMatcher_StringMatch{StringMatch: sm}
}

// regexMatcher leaves the engine unset: Envoy's default is RE2.
func regexMatcher(re string) *matcherv3.RegexMatcher {
	return &matcherv3.RegexMatcher{Regex: re}
}

// routeAction sends the route to its cluster or weighted clusters and
// applies the destination's rewrite, timeouts and retries. The resolver's
// RequestTimeout applies only when the chain starts at that resolver (no
// router, no splitter), as in Consul's makeUpstreamRouteForDiscoveryChain.
func routeAction(cr chainRoute, routed bool) *routev3.RouteAction {
	a := &routev3.RouteAction{}
	to := cr.to
	if to.resolved != nil {
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: to.resolved.target.cluster()}
		if t := to.resolved.requestTimeout; t > 0 && !routed {
			a.Timeout = durationpb.New(t)
		}
	} else {
		a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: weightedClusters(to)}
	}
	a.HashPolicy = hashPolicies(to.lb)
	d := cr.dest
	if d == nil {
		return a
	}
	a.PrefixRewrite = d.PrefixRewrite
	if d.RequestTimeout > 0 {
		a.Timeout = durationpb.New(d.RequestTimeout)
	}
	if d.IdleTimeout > 0 {
		a.IdleTimeout = durationpb.New(d.IdleTimeout)
	}
	a.RetryPolicy = retryPolicy(d)
	return a
}

// weightedClusters is Consul's makeRouteActionForSplitter: weights in
// 0.01% units out of 10000. Flattening nested splitters rounds each share,
// so the sum can drift by a few units: the drift goes to the largest
// cluster. Zero-weight splits are left out (they would get no traffic, and
// gRPC ignores them anyway). Splitters were checked to add up to 100%, so
// some weight is positive.
func weightedClusters(s step) *routev3.WeightedCluster {
	var out []*routev3.WeightedCluster_ClusterWeight
	sum, largest := 0, 0
	for _, sp := range s.splits {
		if sp.weight <= 0 {
			continue
		}
		sum += sp.weight
		if len(out) > 0 && sp.weight > int(out[largest].Weight.GetValue()) {
			largest = len(out)
		}
		out = append(out, &routev3.WeightedCluster_ClusterWeight{
			Name:                    sp.to.target.cluster(),
			Weight:                  wrapperspb.UInt32(uint32(sp.weight)),
			RequestHeadersToAdd:     headersToAdd(sp.request),
			RequestHeadersToRemove:  headersToRemove(sp.request),
			ResponseHeadersToAdd:    headersToAdd(sp.response),
			ResponseHeadersToRemove: headersToRemove(sp.response),
		})
	}
	wc := &routev3.WeightedCluster{Clusters: out}
	if fixed := int(out[largest].Weight.GetValue()) + fullWeight - sum; fixed > 0 {
		out[largest].Weight = wrapperspb.UInt32(uint32(fixed))
		sum = fullWeight
	}
	wc.TotalWeight = wrapperspb.UInt32(uint32(sum))
	return wc
}

// retryPolicy is Consul's getRetryPolicyForDestination; nil when the
// destination asks for no retries.
func retryPolicy(d *api.ServiceRouteDestination) *routev3.RetryPolicy {
	if d.NumRetries == 0 && !d.RetryOnConnectFailure && len(d.RetryOnStatusCodes) == 0 && len(d.RetryOn) == 0 {
		return nil
	}
	rp := &routev3.RetryPolicy{}
	if d.NumRetries > 0 {
		rp.NumRetries = wrapperspb.UInt32(d.NumRetries)
	}
	on := append([]string{}, d.RetryOn...)
	if d.RetryOnConnectFailure && !containsString(on, "connect-failure") {
		on = append(on, "connect-failure")
	}
	if len(d.RetryOnStatusCodes) > 0 {
		on = append(on, "retriable-status-codes")
		rp.RetriableStatusCodes = append([]uint32{}, d.RetryOnStatusCodes...)
	}
	rp.RetryOn = strings.Join(on, ",")
	return rp
}

// hashPolicies is Consul's injectLBToRouteAction: the hash policies of a
// ring_hash or maglev resolver go on the route.
func hashPolicies(lb *api.LoadBalancer) []*routev3.RouteAction_HashPolicy {
	if lb == nil {
		return nil
	}
	var out []*routev3.RouteAction_HashPolicy
	for _, p := range lb.HashPolicies {
		hp := &routev3.RouteAction_HashPolicy{Terminal: p.Terminal}
		switch {
		case p.SourceIP:
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_ConnectionProperties_{
				ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true},
			}
		case p.Field == "header":
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Header_{
				Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: p.FieldValue},
			}
		case p.Field == "cookie":
			c := &routev3.RouteAction_HashPolicy_Cookie{Name: p.FieldValue}
			if cc := p.CookieConfig; cc != nil {
				c.Path = cc.Path
				if cc.TTL != 0 {
					c.Ttl = durationpb.New(cc.TTL)
				}
				// A zero TTL makes Envoy generate a session cookie.
				if cc.Session {
					c.Ttl = durationpb.New(0)
				}
			}
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_Cookie_{Cookie: c}
		case p.Field == "query_parameter":
			hp.PolicySpecifier = &routev3.RouteAction_HashPolicy_QueryParameter_{
				QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: p.FieldValue},
			}
		default:
			continue // rejected by checkLB
		}
		out = append(out, hp)
	}
	return out
}

// headersToAdd renders Consul's Add (append) and Set (overwrite), each
// sorted by name.
func headersToAdd(h *api.HTTPHeaderModifiers) []*corev3.HeaderValueOption {
	if h == nil {
		return nil
	}
	var out []*corev3.HeaderValueOption
	for _, k := range sortedKeys(h.Add) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: h.Add[k]},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	for _, k := range sortedKeys(h.Set) {
		out = append(out, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: h.Set[k]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return out
}

func headersToRemove(h *api.HTTPHeaderModifiers) []string {
	if h == nil || len(h.Remove) == 0 {
		return nil
	}
	return append([]string{}, h.Remove...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
