package rbac

import (
	"regexp"
	"strings"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// stringMatcher is a compiled Envoy StringMatcher (router.StringMatcher
// is its config form; the router keeps its compiled form to itself).
// ignore_case folds ASCII only, as Envoy does, and has no effect on a
// regex.
type stringMatcher struct {
	kind  router.StringMatchKind
	value string
	fold  bool
	re    *regexp.Regexp // anchored: the whole input must match
	// cache, when set, remembers re's answers (principal names).
	cache *regexCache
}

func compileString(field string, sm *router.StringMatcher) (*stringMatcher, error) {
	if sm.Kind == router.StringRegex || sm.Regex != nil {
		if sm.Regex == nil {
			return nil, cfgErr(join(field, "safe_regex"), "regex is missing")
		}
		re, err := regexp.Compile(`^(?:` + sm.Regex.String() + `)$`)
		if err != nil {
			return nil, &ConfigError{Field: join(field, "safe_regex"), Msg: "invalid regex", Err: err}
		}
		return &stringMatcher{kind: router.StringRegex, re: re}, nil
	}
	switch sm.Kind {
	case router.StringExact:
	case router.StringPrefix, router.StringSuffix, router.StringContains:
		if sm.Value == "" {
			return nil, cfgErr(join(field, sm.Kind.String()), "value must not be empty")
		}
	default:
		return nil, cfgErr(field, "unknown string match kind %d", sm.Kind)
	}
	v := sm.Value
	if sm.IgnoreCase {
		v = lowerASCII(v)
	}
	return &stringMatcher{kind: sm.Kind, value: v, fold: sm.IgnoreCase}, nil
}

func (m *stringMatcher) match(s string) bool {
	if m.kind == router.StringRegex {
		if m.cache != nil {
			return m.cache.match(s, m.re.MatchString)
		}
		return m.re.MatchString(s)
	}
	if m.fold {
		s = lowerASCII(s)
	}
	switch m.kind {
	case router.StringExact:
		return s == m.value
	case router.StringPrefix:
		return strings.HasPrefix(s, m.value)
	case router.StringSuffix:
		return strings.HasSuffix(s, m.value)
	case router.StringContains:
		return strings.Contains(s, m.value)
	}
	return false
}

// lowerASCII lowers ASCII letters only (Envoy's absl::AsciiStrToLower);
// it allocates only when s has an upper-case letter.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
