package fault

import (
	"net/http"
	"net/textproto"
	"regexp"
	"strings"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// Header matching has the semantics of proxy/router's route matchers
// (Envoy's HeaderUtility::matchHeaders). The router keeps its compiled
// matchers unexported, so this is a copy of them; if the router ever
// exports them, this file goes.

// pseudo identifies request attributes Go keeps outside http.Header.
type pseudo uint8

const (
	pseudoNone pseudo = iota
	pseudoAuthority
	pseudoMethod
	pseudoPath
	pseudoScheme
)

var pseudoHeaders = map[string]pseudo{
	":authority": pseudoAuthority,
	// net/http moves Host out of the header map into r.Host.
	"host":    pseudoAuthority,
	":method": pseudoMethod,
	":path":   pseudoPath,
	":scheme": pseudoScheme,
}

type headerKind uint8

const (
	headerPresent headerKind = iota
	headerString
	headerRange
)

type headerMatcher struct {
	key            string // canonical http.Header key
	pseudo         pseudo
	kind           headerKind
	present        bool
	str            stringMatcher
	rng            router.Int64Range
	invert         bool
	missingAsEmpty bool
}

func compileHeaderMatcher(field string, hm *router.HeaderMatcher, out *headerMatcher) error {
	*out = headerMatcher{}
	name := strings.ToLower(hm.Name)
	if name == "" {
		return cfgErr(field+".name", "header name is required")
	}
	if ps, ok := pseudoHeaders[name]; ok {
		out.pseudo = ps
	} else if name[0] == ':' {
		return cfgErr(field+".name", "pseudo-header %q is not supported in header matchers (supported: :authority, :method, :path, :scheme)", hm.Name)
	} else if !validHeaderName(name) {
		return cfgErr(field+".name", "invalid header name %q", hm.Name)
	}
	out.key = textproto.CanonicalMIMEHeaderKey(name)
	out.invert = hm.Invert
	out.missingAsEmpty = hm.TreatMissingAsEmpty
	n := 0
	if hm.String != nil {
		n++
	}
	if hm.Present != nil {
		n++
	}
	if hm.Range != nil {
		n++
	}
	if n > 1 {
		return cfgErr(field, "at most one of string_match, present_match and range_match may be set")
	}
	switch {
	case hm.String != nil:
		out.kind = headerString
		return compileStringMatcher(field+".string_match", hm.String, &out.str)
	case hm.Range != nil:
		out.kind = headerRange
		out.rng = *hm.Range
	case hm.Present != nil:
		out.kind = headerPresent
		out.present = *hm.Present
	default:
		// No specifier: Envoy matches on presence.
		out.kind = headerPresent
		out.present = true
	}
	return nil
}

// match follows Envoy's HeaderUtility::matchHeaders, including its handling
// of a missing header under invert_match.
func (m *headerMatcher) match(r *http.Request) bool {
	v, ok := m.value(r)
	if !ok && !m.missingAsEmpty {
		if m.invert {
			return m.kind == headerPresent && m.present
		}
		return m.kind == headerPresent && !m.present
	}
	var match bool
	switch m.kind {
	case headerPresent:
		match = m.present
	case headerString:
		match = m.str.match(v)
	case headerRange:
		n, ok := parseInt64(v)
		match = ok && n >= m.rng.Start && n < m.rng.End
	}
	return match != m.invert
}

// value returns the header's values joined with "," as Envoy does; only a
// multi-valued header costs an allocation.
func (m *headerMatcher) value(r *http.Request) (string, bool) {
	switch m.pseudo {
	case pseudoAuthority:
		a := r.Host
		if a == "" && r.URL != nil {
			a = r.URL.Host
		}
		return a, a != ""
	case pseudoMethod:
		if r.Method == "" {
			return http.MethodGet, true // net/http's meaning of ""
		}
		return r.Method, true
	case pseudoPath:
		if r.URL == nil {
			return "", false
		}
		return r.URL.RequestURI(), true
	case pseudoScheme:
		if r.URL != nil && r.URL.Scheme != "" {
			return r.URL.Scheme, true
		}
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vs := r.Header[m.key]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	return strings.Join(vs, ","), true
}

type stringMatcher struct {
	kind  router.StringMatchKind
	value string
	fold  bool
	re    *regexp.Regexp // anchored
}

func compileStringMatcher(field string, sm *router.StringMatcher, out *stringMatcher) error {
	if sm.Regex != nil || sm.Kind == router.StringRegex {
		if sm.Regex == nil {
			return cfgErr(field+".safe_regex", "regex is missing")
		}
		if sm.Kind != router.StringRegex && sm.Kind != router.StringExact {
			return cfgErr(field, "a regex matcher cannot also be a %s matcher", sm.Kind)
		}
		if sm.Value != "" {
			return cfgErr(field, "a regex matcher cannot also carry the value %q", sm.Value)
		}
		// Envoy's safe_regex must match the whole input.
		re, err := regexp.Compile(`\A(?:` + sm.Regex.String() + `)\z`)
		if err != nil {
			return &ConfigError{Field: field + ".safe_regex", Msg: "invalid regex", Err: err}
		}
		*out = stringMatcher{kind: router.StringRegex, re: re}
		return nil
	}
	switch sm.Kind {
	case router.StringExact:
	case router.StringPrefix, router.StringSuffix, router.StringContains:
		if sm.Value == "" {
			return cfgErr(field+"."+sm.Kind.String(), "value must not be empty")
		}
	default:
		return cfgErr(field, "unknown string match kind %d", sm.Kind)
	}
	*out = stringMatcher{kind: sm.Kind, value: sm.Value, fold: sm.IgnoreCase}
	return nil
}

func (m *stringMatcher) match(s string) bool {
	switch m.kind {
	case router.StringExact:
		return len(s) == len(m.value) && hasPrefix(s, m.value, m.fold)
	case router.StringPrefix:
		return hasPrefix(s, m.value, m.fold)
	case router.StringSuffix:
		return len(s) >= len(m.value) && hasPrefix(s[len(s)-len(m.value):], m.value, m.fold)
	case router.StringContains:
		if !m.fold {
			return strings.Contains(s, m.value)
		}
		for i := 0; i+len(m.value) <= len(s); i++ {
			if hasPrefix(s[i:], m.value, true) {
				return true
			}
		}
		return false
	case router.StringRegex:
		return m.re.MatchString(s)
	}
	return false
}

// hasPrefix reports whether s starts with prefix, optionally ignoring ASCII
// case (Envoy's case folding is ASCII-only too).
func hasPrefix(s, prefix string, fold bool) bool {
	if len(s) < len(prefix) {
		return false
	}
	if !fold {
		return s[:len(prefix)] == prefix
	}
	for i := 0; i < len(prefix); i++ {
		a, b := s[i], prefix[i]
		if a == b {
			continue
		}
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
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

// parseInt64 parses like absl::SimpleAtoi (surrounding blanks and a sign
// allowed) without the allocation strconv makes for its error.
func parseInt64(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	n, ok := parseDigits(s)
	if !ok {
		return 0, false
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// parseUint64 parses an unsigned header value like absl::SimpleAtoi into a
// uint64: surrounding blanks and a '+' allowed, no '-'.
func parseUint64(s string) (uint64, bool) {
	s = strings.TrimSpace(s)
	if s != "" && s[0] == '+' {
		s = s[1:]
	}
	return parseDigits(s)
}

// parseDigits parses a non-empty run of decimal digits that fits a uint64.
func parseDigits(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
