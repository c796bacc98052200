package router

import (
	"net/http"
	"net/textproto"
	"regexp"
	"strings"
)

// routeMatcher is a Route's Match precomputed for the hot path.
type routeMatcher struct {
	route   *Route
	path    pathMatcher
	headers []headerMatcher
	query   []queryMatcher
	grpc    bool
}

func (m *routeMatcher) matches(r *http.Request, path string) bool {
	if !m.path.match(path) {
		return false
	}
	if m.grpc && !isGRPC(r) {
		return false
	}
	for i := range m.headers {
		if !m.headers[i].match(r) {
			return false
		}
	}
	if len(m.query) > 0 {
		raw := ""
		if r.URL != nil {
			raw = r.URL.RawQuery
		}
		for i := range m.query {
			if !m.query[i].match(raw) {
				return false
			}
		}
	}
	return true
}

type pathKind uint8

const (
	pathPrefix pathKind = iota
	pathExact
	pathRegex
	pathSeparatedPrefix
)

type pathMatcher struct {
	kind  pathKind
	value string
	fold  bool
	re    *regexp.Regexp // anchored: the whole path must match
}

func (m *pathMatcher) match(path string) bool {
	switch m.kind {
	case pathPrefix:
		return hasPrefix(path, m.value, m.fold)
	case pathExact:
		return len(path) == len(m.value) && hasPrefix(path, m.value, m.fold)
	case pathRegex:
		return m.re.MatchString(path)
	case pathSeparatedPrefix:
		// Query and fragment are already cut off, so the prefix must be
		// followed by the end of the path or by '/'.
		return hasPrefix(path, m.value, m.fold) &&
			(len(path) == len(m.value) || path[len(m.value)] == '/')
	}
	return false
}

// isGRPC is Envoy's test: content-type exactly application/grpc or
// application/grpc+<codec>; application/grpc-web is not gRPC.
func isGRPC(r *http.Request) bool {
	const grpc = "application/grpc"
	vs := r.Header["Content-Type"]
	if len(vs) == 0 {
		return false
	}
	ct := vs[0]
	return strings.HasPrefix(ct, grpc) && (len(ct) == len(grpc) || ct[len(grpc)] == '+')
}

// RequestPath is the path routes are matched against and rewritten from: the
// path as sent on the wire (escaped), without query or fragment. It does not
// allocate unless the request's path carries escapes net/http would spell
// differently.
func RequestPath(r *http.Request) string {
	if r.URL == nil {
		return ""
	}
	return r.URL.EscapedPath()
}

func compileRoute(field string, rt *Route, out *routeMatcher) error {
	m := &rt.Match
	mf := join(field, "match")
	out.route = rt
	out.grpc = m.GRPC
	switch {
	case m.Regex != nil:
		re, err := anchored(m.Regex)
		if err != nil {
			return &ConfigError{Field: join(mf, "safe_regex"), Msg: "invalid regex", Err: err}
		}
		// case_sensitive has no effect on safe_regex in Envoy either.
		out.path = pathMatcher{kind: pathRegex, re: re}
	case m.Path != "":
		out.path = pathMatcher{kind: pathExact, value: m.Path, fold: m.CaseInsensitive}
	case m.PathSeparatedPrefix != "":
		out.path = pathMatcher{kind: pathSeparatedPrefix, value: m.PathSeparatedPrefix, fold: m.CaseInsensitive}
	default:
		out.path = pathMatcher{kind: pathPrefix, value: m.Prefix, fold: m.CaseInsensitive}
	}
	out.headers = make([]headerMatcher, len(m.Headers))
	for i := range m.Headers {
		if err := compileHeaderMatcher(idx(mf, "headers", i), &m.Headers[i], &out.headers[i]); err != nil {
			return err
		}
	}
	out.query = make([]queryMatcher, len(m.QueryParams))
	for i := range m.QueryParams {
		if err := compileQueryMatcher(idx(mf, "query_parameters", i), &m.QueryParams[i], &out.query[i]); err != nil {
			return err
		}
	}
	return nil
}

// anchored recompiles re so that MatchString demands a full match, which is
// what Envoy's safe_regex means.
func anchored(re *regexp.Regexp) (*regexp.Regexp, error) {
	return regexp.Compile(`\A(?:` + re.String() + `)\z`)
}

// pseudo identifies request attributes Go keeps outside http.Header.
type pseudo uint8

const (
	pseudoNone pseudo = iota
	pseudoAuthority
	pseudoMethod
	pseudoPath
	pseudoScheme
	pseudoStatus // responses only (retriable_headers); a request has none
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
	rng            Int64Range
	invert         bool
	missingAsEmpty bool
}

func compileHeaderMatcher(field string, hm *HeaderMatcher, out *headerMatcher) error {
	return compileHeaderMatcherFor(field, hm, out, false)
}

// compileHeaderMatcherFor compiles a matcher of requests, or of responses
// (forResponse: the pseudo-header :status instead of the request ones).
func compileHeaderMatcherFor(field string, hm *HeaderMatcher, out *headerMatcher, forResponse bool) error {
	name := lowerASCII(hm.Name)
	if name == "" {
		return cfgErr(join(field, "name"), "header name is required")
	}
	if forResponse && name == ":status" {
		out.pseudo = pseudoStatus
	} else if ps, ok := pseudoHeaders[name]; ok && !forResponse {
		out.pseudo = ps
	} else if forResponse && name[0] == ':' {
		return cfgErr(join(field, "name"), "pseudo-header %q is not supported in response header matchers (supported: :status)", hm.Name)
	} else if name[0] == ':' {
		return cfgErr(join(field, "name"), "pseudo-header %q is not supported in header matchers (supported: :authority, :method, :path, :scheme)", hm.Name)
	} else if !validHeaderName(name) {
		return cfgErr(join(field, "name"), "invalid header name %q", hm.Name)
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
		return compileStringMatcher(join(field, "string_match"), hm.String, &out.str)
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
	return m.matchValue(v, ok)
}

// matchValue judges the header's value (ok false: the header is missing).
func (m *headerMatcher) matchValue(v string, ok bool) bool {
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
		a := authority(r)
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
	case pseudoStatus:
		return "", false // a request has no status
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

// parseInt64 parses like absl::SimpleAtoi (surrounding ASCII blanks and a
// sign allowed, any number of leading zeros) without the allocation
// strconv makes for its error.
func parseInt64(s string) (int64, bool) {
	s = trimASCIISpace(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63)/10 {
			return 0, false // past any int64, whatever follows
		}
		n = n*10 + uint64(c-'0')
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

// trimASCIISpace trims what absl's ascii_isspace calls blank; unlike
// strings.TrimSpace it leaves Unicode spaces (U+00A0, U+0085, ...) alone,
// as Envoy does.
func trimASCIISpace(s string) string {
	isSpace := func(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }
	for s != "" && isSpace(s[0]) {
		s = s[1:]
	}
	for s != "" && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}

type queryMatcher struct {
	name   string
	hasStr bool
	str    stringMatcher
}

func compileQueryMatcher(field string, qm *QueryParamMatcher, out *queryMatcher) error {
	if qm.Name == "" {
		return cfgErr(join(field, "name"), "query parameter name is required")
	}
	if qm.String != nil && qm.Present {
		return cfgErr(field, "only one of string_match and present_match may be set")
	}
	out.name = qm.Name
	if qm.String != nil {
		out.hasStr = true
		return compileStringMatcher(join(field, "string_match"), qm.String, &out.str)
	}
	return nil // presence
}

// match looks at the first value of the parameter in the raw (undecoded)
// query, as Envoy's route matching does.
func (m *queryMatcher) match(rawQuery string) bool {
	for q := rawQuery; q != ""; {
		var seg string
		seg, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(seg, "=")
		if k == m.name {
			return !m.hasStr || m.str.match(v)
		}
	}
	return false
}

// CompiledString is a compiled StringMatcher for other packages' matchers
// (RBAC's principal names and paths): Envoy's semantics as the router
// applies them, ignore_case folding ASCII only, no allocation per match.
type CompiledString struct{ m stringMatcher }

// CompileString compiles sm; an error is a *ConfigError under field.
func CompileString(field string, sm *StringMatcher) (*CompiledString, error) {
	c := &CompiledString{}
	if err := compileStringMatcher(field, sm, &c.m); err != nil {
		return nil, err
	}
	return c, nil
}

// Match reports whether s matches.
func (c *CompiledString) Match(s string) bool { return c.m.match(s) }

// IsRegex says the matcher is a safe_regex.
func (c *CompiledString) IsRegex() bool { return c.m.kind == StringRegex }

type stringMatcher struct {
	kind  StringMatchKind
	value string
	fold  bool
	re    *regexp.Regexp // anchored
}

func compileStringMatcher(field string, sm *StringMatcher, out *stringMatcher) error {
	if sm.Regex != nil || sm.Kind == StringRegex {
		if sm.Regex == nil {
			return cfgErr(join(field, "safe_regex"), "regex is missing")
		}
		if sm.Kind != StringRegex && sm.Kind != StringExact {
			return cfgErr(field, "a regex matcher cannot also be a %s matcher", sm.Kind)
		}
		if sm.Value != "" {
			return cfgErr(field, "a regex matcher cannot also carry the value %q", sm.Value)
		}
		re, err := anchored(sm.Regex)
		if err != nil {
			return &ConfigError{Field: join(field, "safe_regex"), Msg: "invalid regex", Err: err}
		}
		// ignore_case has no effect on safe_regex in Envoy either.
		*out = stringMatcher{kind: StringRegex, re: re}
		return nil
	}
	switch sm.Kind {
	case StringExact:
	case StringPrefix, StringSuffix, StringContains:
		if sm.Value == "" {
			return cfgErr(join(field, sm.Kind.String()), "value must not be empty")
		}
	default:
		return cfgErr(field, "unknown string match kind %d", sm.Kind)
	}
	*out = stringMatcher{kind: sm.Kind, value: sm.Value, fold: sm.IgnoreCase}
	return nil
}

func (m *stringMatcher) match(s string) bool {
	switch m.kind {
	case StringExact:
		return len(s) == len(m.value) && hasPrefix(s, m.value, m.fold)
	case StringPrefix:
		return hasPrefix(s, m.value, m.fold)
	case StringSuffix:
		return len(s) >= len(m.value) && hasPrefix(s[len(s)-len(m.value):], m.value, m.fold)
	case StringContains:
		if !m.fold {
			return strings.Contains(s, m.value)
		}
		for i := 0; i+len(m.value) <= len(s); i++ {
			if hasPrefix(s[i:], m.value, true) {
				return true
			}
		}
		return false
	case StringRegex:
		return m.re.MatchString(s)
	}
	return false
}

// String is the Envoy field name of the form.
func (k StringMatchKind) String() string {
	switch k {
	case StringExact:
		return "exact"
	case StringPrefix:
		return "prefix"
	case StringSuffix:
		return "suffix"
	case StringContains:
		return "contains"
	case StringRegex:
		return "safe_regex"
	}
	return "unknown"
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
