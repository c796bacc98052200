// Package matchconv converts Envoy's route HeaderMatcher, StringMatcher and
// safe_regex into proxy/router's plain types. It is the one copy of that
// conversion: proxy/snapshot uses it for routes and retry policies, and the
// fault filter's converter (proxy/fault/faultxds, which proxy/snapshot
// imports) for its header gates. Field checks stay with the callers.
package matchconv

import (
	"regexp"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// Conv converts with Fail recording each invalid value at its field path.
// Anchor anchors regular expressions (^(?:…)$) as they are compiled;
// without it they are kept as written (proxy/router anchors every regex
// it compiles either way).
type Conv struct {
	Fail   func(path, format string, args ...any)
	Anchor bool
}

// HeaderMatcher converts h found at p.
func (c Conv) HeaderMatcher(p string, h *routev3.HeaderMatcher) router.HeaderMatcher {
	out := router.HeaderMatcher{
		Name:                strings.ToLower(h.GetName()),
		Invert:              h.GetInvertMatch(),
		TreatMissingAsEmpty: h.GetTreatMissingHeaderAsEmpty(),
	}
	switch s := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		out.String = c.StringMatcher(resource.Join(p, "string_match"), s.StringMatch)
	case *routev3.HeaderMatcher_ExactMatch:
		out.String = &router.StringMatcher{Kind: router.StringExact, Value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		out.String = &router.StringMatcher{Kind: router.StringPrefix, Value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		out.String = &router.StringMatcher{Kind: router.StringSuffix, Value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		out.String = &router.StringMatcher{Kind: router.StringContains, Value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		out.String = &router.StringMatcher{Kind: router.StringRegex,
			Regex: c.Regex(resource.Join(p, "safe_regex_match.regex"), s.SafeRegexMatch.GetRegex())}
	case *routev3.HeaderMatcher_PresentMatch:
		present := s.PresentMatch
		out.Present = &present
	case *routev3.HeaderMatcher_RangeMatch:
		out.Range = &router.Int64Range{Start: s.RangeMatch.GetStart(), End: s.RangeMatch.GetEnd()}
	default:
		// Envoy: a header matcher with no specifier asks for presence.
		present := true
		out.Present = &present
	}
	return out
}

// StringMatcher converts m found at p. A custom matcher is left to the
// caller's field checks, which refuse it.
func (c Conv) StringMatcher(p string, m *matcherv3.StringMatcher) *router.StringMatcher {
	out := &router.StringMatcher{IgnoreCase: m.GetIgnoreCase()}
	switch s := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.Kind, out.Value = router.StringExact, s.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.Kind, out.Value = router.StringPrefix, s.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.Kind, out.Value = router.StringSuffix, s.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.Kind, out.Value = router.StringContains, s.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		out.Kind = router.StringRegex
		out.Regex = c.Regex(resource.Join(p, "safe_regex.regex"), s.SafeRegex.GetRegex())
	case *matcherv3.StringMatcher_Custom:
	default:
		c.Fail(p, "exact, prefix, suffix, contains or safe_regex is required")
	}
	return out
}

// Regex compiles an Envoy safe_regex (RE2 syntax, Go's regexp), which must
// match the whole input; an error is reported on the expression as written.
func (c Conv) Regex(p, expr string) *regexp.Regexp {
	re, err := regexp.Compile(expr)
	if err != nil {
		c.Fail(p, "invalid regex %q: %v", expr, err)
		return nil
	}
	if c.Anchor {
		re = regexp.MustCompile(`^(?:` + expr + `)$`)
	}
	return re
}
