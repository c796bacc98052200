package snapshot

import (
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/snapshot/matchconv"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

const defaultRouteTimeout = 15 * time.Second

func (c *converter) route(p string, rc *routev3.RouteConfiguration) *router.Config {
	before := len(c.errs)
	out := c.routeTable(p, rc)
	if len(c.errs) == before {
		// The router's own checks (domains, rewrites, matchers) with our path
		// in front, so a table that converts is one the router accepts.
		if _, err := router.New(out); err != nil {
			var ce *router.ConfigError
			if errors.As(err, &ce) {
				c.fail(resource.Join(p, ce.Field), "%s", strings.TrimPrefix(ce.Error(), ce.Field+": "))
			} else {
				c.fail(p, "%v", err)
			}
		}
	}
	return out
}

func (c *converter) routeTable(p string, rc *routev3.RouteConfiguration) *router.Config {
	out := &router.Config{
		Name: rc.GetName(),
		Headers: c.headerEdits(p, rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(),
			rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove()),
	}
	vhostAt := map[string]int{}
	domainAt := map[string]int{}
	for i, vh := range rc.GetVirtualHosts() {
		vp := resource.Index(resource.Join(p, "virtual_hosts"), i)
		if prev, dup := vhostAt[vh.GetName()]; dup {
			c.fail(resource.Join(vp, "name"), "virtual host %q is also virtual_hosts[%d]", vh.GetName(), prev)
		}
		vhostAt[vh.GetName()] = i
		v := router.VirtualHost{
			Name: vh.GetName(),
			Headers: c.headerEdits(vp, vh.GetRequestHeadersToAdd(), vh.GetRequestHeadersToRemove(),
				vh.GetResponseHeadersToAdd(), vh.GetResponseHeadersToRemove()),
			PerFilter: c.perFilterConfig(resource.Join(vp, "typed_per_filter_config"), vh.GetTypedPerFilterConfig()),
		}
		for j, d := range vh.GetDomains() {
			dp := resource.Index(resource.Join(vp, "domains"), j)
			d = strings.ToLower(d)
			if n := strings.Count(d, "*"); n > 1 || (n == 1 && d != "*" && !strings.HasPrefix(d, "*") && !strings.HasSuffix(d, "*")) {
				c.fail(dp, "%q: a wildcard must be the whole domain, its first or its last character", d)
			}
			if prev, dup := domainAt[d]; dup {
				c.fail(dp, "domain %q is also in virtual_hosts[%d]", d, prev)
			}
			domainAt[d] = i
			v.Domains = append(v.Domains, d)
		}
		defaults := c.vhostDefaults(vp, vh)
		for j, r := range vh.GetRoutes() {
			v.Routes = append(v.Routes, c.routeEntry(resource.Index(resource.Join(vp, "routes"), j), r, defaults))
		}
		out.VirtualHosts = append(out.VirtualHosts, v)
	}
	return out
}

func (c *converter) routeEntry(p string, r *routev3.Route, vh *vhostDefaults) router.Route {
	out := router.Route{
		Name:  r.GetName(),
		Match: c.routeMatch(resource.Join(p, "match"), r.GetMatch()),
		Headers: c.headerEdits(p, r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove(),
			r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove()),
		PerFilter: c.perFilterConfig(resource.Join(p, "typed_per_filter_config"), r.GetTypedPerFilterConfig()),
	}
	switch {
	case r.GetRoute() != nil:
		out.Forward = c.forward(resource.Join(p, "route"), r.GetRoute())
		c.resilience(resource.Join(p, "route"), r.GetRoute(), vh, out.Forward)
		if n := r.GetPerRequestBufferLimitBytes(); n != nil {
			out.Forward.RetryBufferLimit = n.GetValue()
		}
	case r.GetRedirect() != nil:
		out.Redirect = redirect(r.GetRedirect())
	case r.GetDirectResponse() != nil:
		dr := r.GetDirectResponse()
		out.Direct = &router.DirectResponse{Status: int(dr.GetStatus())}
		if dr.GetBody() != nil {
			out.Direct.Body, _ = c.dataSource(resource.Join(resource.Join(p, "direct_response"), "body"), dr.GetBody())
		}
	default:
		c.fail(p, "route, redirect or direct_response is required")
	}
	return out
}

func (c *converter) routeMatch(p string, m *routev3.RouteMatch) router.Match {
	out := router.Match{
		CaseInsensitive: m.GetCaseSensitive() != nil && !m.GetCaseSensitive().GetValue(),
		GRPC:            m.GetGrpc() != nil,
	}
	switch ps := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.Prefix = ps.Prefix
	case *routev3.RouteMatch_Path:
		out.Path = ps.Path
	case *routev3.RouteMatch_SafeRegex:
		out.Regex = c.fullRegex(resource.Join(p, "safe_regex.regex"), ps.SafeRegex.GetRegex())
	case *routev3.RouteMatch_PathSeparatedPrefix:
		out.PathSeparatedPrefix = ps.PathSeparatedPrefix
	default:
		c.fail(p, "prefix, path, safe_regex or path_separated_prefix is required")
	}
	for i, h := range m.GetHeaders() {
		out.Headers = append(out.Headers, c.headerMatcher(resource.Index(resource.Join(p, "headers"), i), h))
	}
	for i, q := range m.GetQueryParameters() {
		qp := resource.Index(resource.Join(p, "query_parameters"), i)
		qm := router.QueryParamMatcher{Name: q.GetName()}
		switch {
		case q.GetStringMatch() != nil:
			qm.String = c.stringMatcher(resource.Join(qp, "string_match"), q.GetStringMatch())
		default:
			// Envoy: present_match, or no matcher at all, asks for presence.
			qm.Present = true
		}
		out.QueryParams = append(out.QueryParams, qm)
	}
	return out
}

func (c *converter) headerMatcher(p string, h *routev3.HeaderMatcher) router.HeaderMatcher {
	return c.matchConv().HeaderMatcher(p, h)
}

func (c *converter) stringMatcher(p string, m *matcherv3.StringMatcher) *router.StringMatcher {
	return c.matchConv().StringMatcher(p, m)
}

func (c *converter) fullRegex(p, expr string) *regexp.Regexp {
	return c.matchConv().Regex(p, expr)
}

// matchConv converts matchers with their regexes anchored, so a route's
// regex reads as the whole-path match it is.
func (c *converter) matchConv() matchconv.Conv {
	return matchconv.Conv{Fail: c.fail, Anchor: true}
}

func (c *converter) forward(p string, a *routev3.RouteAction) *router.ForwardAction {
	out := &router.ForwardAction{
		PrefixRewrite:      a.GetPrefixRewrite(),
		HostRewriteLiteral: a.GetHostRewriteLiteral(),
		AutoHostRewrite:    a.GetAutoHostRewrite().GetValue(),
		Timeout:            duration(a.GetTimeout(), defaultRouteTimeout),
		IdleTimeout:        duration(a.GetIdleTimeout(), 0),
		IdleTimeoutSet:     a.GetIdleTimeout() != nil,
	}
	switch {
	case a.GetCluster() != "":
		out.Cluster = a.GetCluster()
		c.clusterRefs = append(c.clusterRefs, reference{path: resource.Join(p, "cluster"), name: out.Cluster})
	case a.GetWeightedClusters() != nil:
		wp := resource.Join(p, "weighted_clusters")
		var total uint32
		for i, w := range a.GetWeightedClusters().GetClusters() {
			cp := resource.Index(resource.Join(wp, "clusters"), i)
			if w.GetName() == "" {
				c.fail(resource.Join(cp, "name"), "a cluster name is required")
			}
			c.clusterRefs = append(c.clusterRefs, reference{path: resource.Join(cp, "name"), name: w.GetName()})
			out.WeightedClusters = append(out.WeightedClusters, router.WeightedCluster{
				Name:   w.GetName(),
				Weight: w.GetWeight().GetValue(),
				Headers: c.headerEdits(cp, w.GetRequestHeadersToAdd(), w.GetRequestHeadersToRemove(),
					w.GetResponseHeadersToAdd(), w.GetResponseHeadersToRemove()),
			})
			total += w.GetWeight().GetValue()
		}
		if tw := a.GetWeightedClusters().GetTotalWeight(); tw != nil && tw.GetValue() != total {
			c.fail(resource.Join(wp, "total_weight"), "is %d but the weights sum to %d", tw.GetValue(), total)
		}
		if total == 0 {
			c.fail(resource.Join(wp, "clusters"), "the weights sum to 0")
		}
		out.TotalWeight = total
	default:
		c.fail(p, "cluster or weighted_clusters is required")
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		rp := resource.Join(p, "regex_rewrite")
		re, err := regexp.Compile(rr.GetPattern().GetRegex())
		if err != nil {
			c.fail(resource.Join(rp, "pattern.regex"), "invalid regex %q: %v", rr.GetPattern().GetRegex(), err)
		}
		out.RegexRewrite = &router.RegexRewrite{Pattern: re, Substitution: goSubstitution(rr.GetSubstitution())}
	}
	return out
}

// goSubstitution turns an RE2 substitution (\1, \\) into Go's
// Regexp.Expand syntax (${1}, with $ escaped as $$).
func goSubstitution(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case ch == '\\' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			b.WriteString("${" + string(s[i+1]) + "}")
			i++
		case ch == '\\' && i+1 < len(s) && s[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case ch == '$':
			b.WriteString("$$")
		default:
			b.WriteByte(ch)
		}
	}
	return b.String()
}

func redirect(r *routev3.RedirectAction) *router.Redirect {
	out := &router.Redirect{
		SchemeRedirect: r.GetSchemeRedirect(),
		HostRedirect:   r.GetHostRedirect(),
		PortRedirect:   r.GetPortRedirect(),
		PathRedirect:   r.GetPathRedirect(),
		PrefixRewrite:  r.GetPrefixRewrite(),
		StripQuery:     r.GetStripQuery(),
		HTTPSRedirect:  r.GetHttpsRedirect(),
		Status:         http.StatusMovedPermanently,
	}
	switch r.GetResponseCode() {
	case routev3.RedirectAction_FOUND:
		out.Status = http.StatusFound
	case routev3.RedirectAction_SEE_OTHER:
		out.Status = http.StatusSeeOther
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		out.Status = http.StatusTemporaryRedirect
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		out.Status = http.StatusPermanentRedirect
	}
	return out
}
