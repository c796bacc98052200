package router

import (
	"net/http"
	"strings"
)

// PickCluster chooses the upstream cluster. n must be uniform in
// [0, TotalWeight) (the caller owns the randomness, so tests are
// deterministic); larger values are reduced modulo TotalWeight. Legs own
// consecutive ranges of that interval in order, the way Envoy walks its
// weighted clusters, so a leg of weight 0 is never picked. A single cluster
// is returned as (Cluster, nil).
func (a *ForwardAction) PickCluster(n uint32) (string, *WeightedCluster) {
	if len(a.WeightedClusters) == 0 {
		return a.Cluster, nil
	}
	if a.TotalWeight > 0 {
		n %= a.TotalWeight
	}
	var end uint64
	var last *WeightedCluster
	for i := range a.WeightedClusters {
		wc := &a.WeightedClusters[i]
		if wc.Weight == 0 {
			continue
		}
		end += uint64(wc.Weight)
		last = wc
		if uint64(n) < end {
			return wc.Name, wc
		}
	}
	// Only reachable when TotalWeight disagrees with the weights, which New
	// rejects; stay on a leg that carries traffic.
	if last == nil {
		last = &a.WeightedClusters[len(a.WeightedClusters)-1]
	}
	return last.Name, last
}

// MatchedPrefix is the part of path (without query) that rt's match
// consumed, which prefix_rewrite replaces: the prefix for prefix and
// path_separated_prefix routes (spelled as in path, so case-insensitive
// matches keep the request's case), the whole path for path and safe_regex
// routes. It assumes rt matched path; otherwise it returns "".
func (rt *Route) MatchedPrefix(path string) string {
	m := &rt.Match
	switch {
	case m.Regex != nil, m.Path != "":
		return path
	case m.PathSeparatedPrefix != "":
		if hasPrefix(path, m.PathSeparatedPrefix, m.CaseInsensitive) {
			return path[:len(m.PathSeparatedPrefix)]
		}
		return ""
	default:
		if hasPrefix(path, m.Prefix, m.CaseInsensitive) {
			return path[:len(m.Prefix)]
		}
		return ""
	}
}

// RewritePath applies the route's prefix_rewrite or regex_rewrite to path,
// which may carry a query string ("/a/b?x=1"); the query is kept untouched.
// Without a rewrite (or for a redirect or direct response) path is returned
// as is. prefix_rewrite replaces MatchedPrefix; regex_rewrite replaces every
// match of its pattern in the path with the substitution (${1} syntax).
func (rt *Route) RewritePath(path string) string {
	f := rt.Forward
	if f == nil || (f.PrefixRewrite == "" && f.RegexRewrite == nil) {
		return path
	}
	p, q := path, ""
	if i := strings.IndexByte(path, '?'); i >= 0 {
		p, q = path[:i], path[i:]
	}
	if f.PrefixRewrite != "" {
		m := rt.MatchedPrefix(p)
		return f.PrefixRewrite + p[len(m):] + q
	}
	return f.RegexRewrite.Pattern.ReplaceAllString(p, f.RegexRewrite.Substitution) + q
}

// RedirectLocation is rt.Redirect.Location with the matched prefix worked
// out from the route; "" when rt is not a redirect.
func (rt *Route) RedirectLocation(r *http.Request, tls bool) string {
	if rt.Redirect == nil {
		return ""
	}
	return rt.Redirect.Location(r, rt.MatchedPrefix(RequestPath(r)), tls)
}
