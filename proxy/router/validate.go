package router

import (
	"strings"
)

// checkRoute validates what compileRoute does not: the path specifier's
// shape, the action, and the route's header edits. Pure; field paths use
// Envoy's names.
func checkRoute(field string, rt *Route) error {
	if err := checkMatch(join(field, "match"), &rt.Match); err != nil {
		return err
	}
	n := 0
	if rt.Forward != nil {
		n++
	}
	if rt.Direct != nil {
		n++
	}
	if rt.Redirect != nil {
		n++
	}
	if n != 1 {
		return cfgErr(field, "exactly one of route, redirect and direct_response must be set (%d are)", n)
	}
	switch {
	case rt.Forward != nil:
		if err := checkForward(join(field, "route"), rt); err != nil {
			return err
		}
	case rt.Direct != nil:
		if s := rt.Direct.Status; s < 200 || s > 599 {
			return cfgErr(join(field, "direct_response.status"), "status %d is outside [200, 599]", s)
		}
	case rt.Redirect != nil:
		if err := checkRedirect(join(field, "redirect"), rt.Redirect); err != nil {
			return err
		}
	}
	return checkHeaderEdits(field, &rt.Headers)
}

func checkMatch(field string, m *Match) error {
	n := 0
	for _, set := range []bool{m.Prefix != "", m.Path != "", m.Regex != nil, m.PathSeparatedPrefix != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return cfgErr(field, "only one of prefix, path, safe_regex and path_separated_prefix may be set")
	}
	// The query string is never part of the matched path, so a '?' or '#'
	// in a prefix or path could never match; say so instead of routing
	// nothing.
	if strings.ContainsAny(m.Prefix, "?#") {
		return cfgErr(join(field, "prefix"), "%q contains '?' or '#'; paths are matched without the query string", m.Prefix)
	}
	if strings.ContainsAny(m.Path, "?#") {
		return cfgErr(join(field, "path"), "%q contains '?' or '#'; paths are matched without the query string", m.Path)
	}
	if p := m.PathSeparatedPrefix; p != "" {
		// Envoy's rule: ^[^?#]+[^?#/]$
		if len(p) < 2 || strings.ContainsAny(p, "?#") || p[len(p)-1] == '/' {
			return cfgErr(join(field, "path_separated_prefix"), "%q must be at least two characters, contain no '?' or '#' and not end with '/'", p)
		}
	}
	return nil
}

func checkForward(field string, rt *Route) error {
	a := rt.Forward
	switch {
	case a.Cluster != "" && len(a.WeightedClusters) > 0:
		return cfgErr(field, "only one of cluster and weighted_clusters may be set")
	case a.Cluster == "" && len(a.WeightedClusters) == 0:
		return cfgErr(field, "one of cluster and weighted_clusters is required")
	case len(a.WeightedClusters) > 0:
		wf := join(field, "weighted_clusters")
		var sum uint64
		for i := range a.WeightedClusters {
			wc := &a.WeightedClusters[i]
			cf := idx(wf, "clusters", i)
			if wc.Name == "" {
				return cfgErr(join(cf, "name"), "cluster name is required")
			}
			sum += uint64(wc.Weight)
			if err := checkHeaderEdits(cf, &wc.Headers); err != nil {
				return err
			}
		}
		if sum == 0 {
			return cfgErr(wf, "weights sum to 0; at least one cluster needs a positive weight")
		}
		if sum != uint64(a.TotalWeight) {
			return cfgErr(join(wf, "total_weight"), "weights sum to %d but total_weight is %d", sum, a.TotalWeight)
		}
	}
	if a.PrefixRewrite != "" && a.RegexRewrite != nil {
		return cfgErr(field, "only one of prefix_rewrite and regex_rewrite may be set")
	}
	if rr := a.RegexRewrite; rr != nil && rr.Pattern == nil {
		return cfgErr(join(field, "regex_rewrite.pattern"), "pattern is required")
	}
	if !validPathChars(a.PrefixRewrite) {
		return cfgErr(join(field, "prefix_rewrite"), "%q contains whitespace or control characters", a.PrefixRewrite)
	}
	if a.HostRewriteLiteral != "" && a.AutoHostRewrite {
		return cfgErr(field, "only one of host_rewrite_literal and auto_host_rewrite may be set")
	}
	if !validAuthority(a.HostRewriteLiteral) {
		return cfgErr(join(field, "host_rewrite_literal"), "%q is not a valid host", a.HostRewriteLiteral)
	}
	if a.Timeout < 0 {
		return cfgErr(join(field, "timeout"), "must not be negative")
	}
	if a.IdleTimeout < 0 {
		return cfgErr(join(field, "idle_timeout"), "must not be negative")
	}
	return nil
}

func checkRedirect(field string, rd *Redirect) error {
	switch rd.Status {
	case 0, 301, 302, 303, 307, 308:
	default:
		return cfgErr(join(field, "response_code"), "status %d is not one of 301, 302, 303, 307, 308", rd.Status)
	}
	if rd.SchemeRedirect != "" && rd.HTTPSRedirect {
		return cfgErr(field, "only one of scheme_redirect and https_redirect may be set")
	}
	if rd.PathRedirect != "" && rd.PrefixRewrite != "" {
		return cfgErr(field, "only one of path_redirect and prefix_rewrite may be set")
	}
	if !validScheme(rd.SchemeRedirect) {
		return cfgErr(join(field, "scheme_redirect"), "%q is not a valid URI scheme", rd.SchemeRedirect)
	}
	if !validAuthority(rd.HostRedirect) {
		return cfgErr(join(field, "host_redirect"), "%q is not a valid host", rd.HostRedirect)
	}
	if rd.PortRedirect > 65535 {
		return cfgErr(join(field, "port_redirect"), "port %d is out of range", rd.PortRedirect)
	}
	if !validPathChars(rd.PathRedirect) {
		return cfgErr(join(field, "path_redirect"), "%q contains whitespace or control characters", rd.PathRedirect)
	}
	if !validPathChars(rd.PrefixRewrite) {
		return cfgErr(join(field, "prefix_rewrite"), "%q contains whitespace or control characters", rd.PrefixRewrite)
	}
	return nil
}

// validScheme: RFC 3986 scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ).
func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alpha := ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z')
		if !alpha && (i == 0 || !(('0' <= c && c <= '9') || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// validAuthority rejects what can never be a host[:port]: whitespace,
// control characters and URI delimiters.
func validAuthority(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || strings.IndexByte("/?#@\\", c) >= 0 {
			return false
		}
	}
	return true
}

func validPathChars(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHeaderName: RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') {
			continue
		}
		if strings.IndexByte("!#$%&'*+-.^_`|~", c) < 0 {
			return false
		}
	}
	return true
}

// validHeaderValue rejects what would split or truncate a header line.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\r' || c == '\n' || c == 0 {
			return false
		}
	}
	return true
}
