package router

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fuzzDomains are the virtual hosts of the fuzzed table: every kind of
// domain Envoy knows, with and without ports.
var fuzzDomains = [][]string{
	{"example.com", "WWW.Example.com"},
	{"example.com:8443"},
	{"*.example.com"},
	{"*.api.example.com", "api.example.com"},
	{"*-bar.foo.com"},
	{"foo.*"},
	{"foo.bar.*"},
	{"*:9000"},
	{"*.example.com:7000"},
	{"[::1]", "[::1]:8080"},
	{"*"},
}

func strM(kind StringMatchKind, v string, fold bool) *StringMatcher {
	return &StringMatcher{Kind: kind, Value: v, IgnoreCase: fold}
}

func reM(re string) *StringMatcher {
	return &StringMatcher{Kind: StringRegex, Regex: regexp.MustCompile(re)}
}

func boolp(b bool) *bool { return &b }

// fuzzRoutes is one rich route list (every virtual host gets its own copy,
// names prefixed): each path specifier, case folding, header matchers of
// every kind (pseudo-headers, invert, treat_missing_as_empty), query
// parameters and gRPC.
func fuzzRoutes() []Route {
	ms := []Match{
		{Path: "/exact"},
		{Path: "/Exact/CI", CaseInsensitive: true},
		{Prefix: "/CI/", CaseInsensitive: true},
		{PathSeparatedPrefix: "/sep"},
		{PathSeparatedPrefix: "/Sep/CI", CaseInsensitive: true},
		{Regex: regexp.MustCompile(`/re/[a-z]+/\d{1,3}`)},
		{Regex: regexp.MustCompile(`/alt|/other.*`)},
		{Prefix: "/h", Headers: []HeaderMatcher{
			{Name: "x-version", String: strM(StringExact, "v2", false)},
			{Name: "x-user", String: strM(StringPrefix, "adm", true)},
		}},
		{Prefix: "/h", Headers: []HeaderMatcher{{Name: "x-num", Range: &Int64Range{Start: -5, End: 100}}}},
		{Prefix: "/h", Headers: []HeaderMatcher{{Name: "x-user", Present: boolp(false)}}},
		{Prefix: "/h", Headers: []HeaderMatcher{{Name: "x-version", String: strM(StringSuffix, "Beta", true), Invert: true}}},
		{Prefix: "/h", Headers: []HeaderMatcher{{Name: "x-num", Range: &Int64Range{Start: 0, End: 10}, Invert: true}}},
		{Prefix: "/h", Headers: []HeaderMatcher{{Name: "x-user", String: strM(StringExact, "", false), TreatMissingAsEmpty: true}}},
		{Prefix: "/h", Headers: []HeaderMatcher{{Name: "x-user", String: strM(StringContains, "ro", true)}, {Name: "x-version", Present: boolp(true), Invert: true}}},
		{Prefix: "/q", QueryParams: []QueryParamMatcher{{Name: "debug", Present: true}, {Name: "mode", String: strM(StringExact, "fast", false)}}},
		{Prefix: "/q", QueryParams: []QueryParamMatcher{{Name: "mode", String: reM(`s.*`)}}},
		{Prefix: "/q", QueryParams: []QueryParamMatcher{{Name: "Mode", String: strM(StringSuffix, "X", true)}}},
		{Prefix: "/g", GRPC: true},
		{Prefix: "/m", Headers: []HeaderMatcher{{Name: ":method", String: strM(StringExact, "POST", false)}}},
		{Prefix: "/m", Headers: []HeaderMatcher{{Name: ":authority", String: strM(StringContains, "API", true)}}},
		{Prefix: "/m", Headers: []HeaderMatcher{{Name: ":path", String: reM(`/m.*\?.*`)}}},
		{Prefix: "/m", Headers: []HeaderMatcher{{Name: ":scheme", String: strM(StringExact, "https", false)}}},
		{Prefix: "/m", Headers: []HeaderMatcher{{Name: "host", String: strM(StringPrefix, "foo", false)}}},
		{Prefix: "/", Headers: []HeaderMatcher{{Name: "x-version", String: reM(`v[0-9]+`)}}},
		{Prefix: "/", Headers: []HeaderMatcher{{Name: "content-type", String: strM(StringPrefix, "text/", false)}}},
		{},
	}
	out := make([]Route, len(ms))
	for i, m := range ms {
		out[i] = Route{Name: strconv.Itoa(i), Match: m, Direct: &DirectResponse{Status: 200}}
	}
	return out
}

// FuzzRouteMatch matches arbitrary requests against a fixed, rich table
// and checks Table.Match against a naive reading of Envoy's rules written
// here: the virtual host is the most specific domain that accepts the
// authority, and the route the first, in order, whose every predicate
// holds for the request. Nothing may panic.
func FuzzRouteMatch(f *testing.F) {
	type seed struct{ method, host, path, query, version, user, num, ctype, extra string }
	for _, s := range []seed{
		{"GET", "example.com", "/exact", "", "", "", "", "", ""},
		{"GET", "WWW.EXAMPLE.COM:80", "/ci/x", "", "", "", "", "", ""},
		{"GET", "a.api.example.com", "/sep/x", "", "", "", "", "", ""},
		{"GET", "a.example.com:7000", "/sepx", "", "", "", "", "", ""},
		{"GET", "foo.bar.baz", "/re/abc/123", "", "", "", "", "", ""},
		{"GET", "x:9000", "/h", "", "v2", "ADMIN", "", "", ""},
		{"GET", "[::1]:8080", "/h", "", "", "", " +42 ", "", ""},
		{"GET", "[::1]", "/h", "", "1.0-BETA", "", "-9223372036854775808", "", ""},
		{"POST", "api.example.com", "/m/x", "a=b", "", "", "", "", ""},
		{"GET", "foo.com", "/q", "debug&mode=fast&mode=slow", "", "", "", "", ""},
		{"GET", "anything", "/q", "mode=slow", "", "", "", "", ""},
		{"POST", "x-bar.foo.com", "/g", "", "", "", "", "application/grpc+proto", ""},
		{"GET", "", "/a%2Fb", "Mode=ax", "v10", "root", "00000000000000000000042", "text/html", "x"},
		{"", "example.com:8443", "//", "", "", "", "", "", ""},
		{"GET", "K.example.com", "/\u212aCI/", "", "", "", "", "", ""},
	} {
		f.Add(s.method, s.host, s.path, s.query, s.version, s.user, s.num, s.ctype, s.extra)
	}
	cfg := &Config{Name: "fuzz"}
	for i, ds := range fuzzDomains {
		routes := fuzzRoutes()
		for j := range routes {
			routes[j].Name = strconv.Itoa(i) + "/" + routes[j].Name
		}
		cfg.VirtualHosts = append(cfg.VirtualHosts, VirtualHost{Name: strconv.Itoa(i), Domains: ds, Routes: routes})
	}
	tbl, err := New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, host, path, query, version, user, num, ctype, extra string) {
		defer watchdog(fmt.Sprintf("%q %q %q %q %q %q %q %q %q", method, host, path, query, version, user, num, ctype, extra))()
		target := path
		if query != "" {
			target += "?" + query
		}
		u, err := url.ParseRequestURI(target)
		if err != nil {
			// Not a request line net/http would accept: still match a
			// URL made of the pieces.
			u = &url.URL{Path: path, RawQuery: query}
		}
		r := &http.Request{Method: method, Host: host, URL: u, Header: http.Header{}}
		for k, v := range map[string]string{"X-Version": version, "X-User": user, "X-Num": num, "Content-Type": ctype} {
			if v != "" {
				r.Header[k] = []string{v}
			}
		}
		if extra != "" {
			// A second value: matchers see the values joined with ",".
			r.Header["X-User"] = append(r.Header["X-User"], extra)
		}

		rt, vh := tbl.Match(r)
		wantVH := naiveVirtualHost(cfg, host)
		if got := tbl.VirtualHost(host); got != vh {
			t.Fatalf("host %q: Match and VirtualHost disagree: %v, %v", host, vh, got)
		}
		switch {
		case wantVH < 0 && vh != nil:
			t.Fatalf("host %q: virtual host %q, want none", host, vh.Name)
		case wantVH >= 0 && (vh == nil || vh.Name != strconv.Itoa(wantVH)):
			got := "none"
			if vh != nil {
				got = vh.Name
			}
			t.Fatalf("host %q: virtual host %s, want %d", host, got, wantVH)
		}
		if vh == nil {
			if rt != nil {
				t.Fatalf("a route %q without a virtual host", rt.Name)
			}
			return
		}
		want := ""
		for i := range vh.Routes {
			if naiveMatch(&vh.Routes[i].Match, r) {
				want = vh.Routes[i].Name
				break
			}
		}
		got := ""
		if rt != nil {
			got = rt.Name
		}
		if got != want {
			t.Fatalf("%s %q host %q headers %v: route %q, want %q", method, u.RequestURI(), host, r.Header, got, want)
		}
	})
}

// naiveVirtualHost is the index of the virtual host Envoy picks for an
// authority, or -1: an exact domain (the full authority, or without its
// port), then the longest "*suffix", then the longest "prefix*", then "*".
// At equal lengths a domain naming a port beats one without.
func naiveVirtualHost(cfg *Config, authority string) int {
	host := asciiLower(authority)
	bare := host
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") && strings.Trim(host[i+1:], "0123456789") == "" {
		bare = host[:i]
	}
	exactFull, exactBare, suffix, prefix, star := -1, -1, -1, -1, -1
	suffixLen, prefixLen := -1, -1
	suffixPort, prefixPort := false, false
	for i, vh := range cfg.VirtualHosts {
		for _, d := range vh.Domains {
			d = asciiLower(d)
			hasPort := func(s string) bool {
				j := strings.LastIndexByte(s, ':')
				return j >= 0 && !strings.Contains(s[j:], "]") && j+1 < len(s) && strings.Trim(s[j+1:], "0123456789") == ""
			}
			switch {
			case d == "*":
				star = i
			case strings.HasPrefix(d, "*"):
				fixed := d[1:]
				withPort := hasPort(fixed)
				h := bare
				if withPort {
					h = host
				}
				if len(h) > len(fixed) && strings.HasSuffix(h, fixed) &&
					(len(fixed) > suffixLen || len(fixed) == suffixLen && withPort && !suffixPort) {
					suffix, suffixLen, suffixPort = i, len(fixed), withPort
				}
			case strings.HasSuffix(d, "*"):
				fixed := d[:len(d)-1]
				withPort := strings.Contains(fixed[strings.LastIndexByte(fixed, ']')+1:], ":")
				h := bare
				if withPort {
					h = host
				}
				if len(h) > len(fixed) && strings.HasPrefix(h, fixed) &&
					(len(fixed) > prefixLen || len(fixed) == prefixLen && withPort && !prefixPort) {
					prefix, prefixLen, prefixPort = i, len(fixed), withPort
				}
			case d == host:
				exactFull = i
			case d == bare:
				exactBare = i
			}
		}
	}
	for _, c := range []int{exactFull, exactBare, suffix, prefix, star} {
		if c >= 0 {
			return c
		}
	}
	return -1
}

// naiveMatch is Envoy's route match read literally.
func naiveMatch(m *Match, r *http.Request) bool {
	path := r.URL.EscapedPath()
	fold := func(s string) string {
		if m.CaseInsensitive {
			return asciiLower(s)
		}
		return s
	}
	switch {
	case m.Regex != nil:
		if !regexp.MustCompile(`^(?:` + m.Regex.String() + `)$`).MatchString(path) {
			return false
		}
	case m.Path != "":
		if fold(path) != fold(m.Path) {
			return false
		}
	case m.PathSeparatedPrefix != "":
		p := fold(m.PathSeparatedPrefix)
		if fold(path) != p && !strings.HasPrefix(fold(path), p+"/") {
			return false
		}
	default:
		if !strings.HasPrefix(fold(path), fold(m.Prefix)) {
			return false
		}
	}
	if m.GRPC {
		ct := r.Header.Get("Content-Type")
		if ct != "application/grpc" && !strings.HasPrefix(ct, "application/grpc+") {
			return false
		}
	}
	for i := range m.Headers {
		if !naiveHeader(&m.Headers[i], r) {
			return false
		}
	}
	for _, q := range m.QueryParams {
		found, value := false, ""
		for _, kv := range strings.Split(r.URL.RawQuery, "&") {
			if k, v, _ := strings.Cut(kv, "="); k == q.Name && r.URL.RawQuery != "" {
				found, value = true, v
				break
			}
		}
		if !found || q.String != nil && !naiveString(q.String, value) {
			return false
		}
	}
	return true
}

func naiveHeader(hm *HeaderMatcher, r *http.Request) bool {
	var value string
	var present bool
	switch strings.ToLower(hm.Name) {
	case ":authority", "host":
		value, present = r.Host, r.Host != ""
	case ":method":
		value, present = r.Method, true
		if value == "" {
			value = "GET"
		}
	case ":path":
		value, present = r.URL.RequestURI(), true
	case ":scheme":
		value, present = "http", true
	default:
		vs := r.Header.Values(hm.Name)
		value, present = strings.Join(vs, ","), len(vs) > 0
	}
	if !present && hm.TreatMissingAsEmpty {
		value, present = "", true
	}
	if !present {
		// Envoy: a missing header fails every matcher but present_match
		// false, and invert_match turns that around only for
		// present_match.
		isPresent := hm.String == nil && hm.Range == nil
		wantPresent := hm.Present == nil || *hm.Present
		if hm.Invert {
			return isPresent && wantPresent
		}
		return isPresent && !wantPresent
	}
	var match bool
	switch {
	case hm.String != nil:
		match = naiveString(hm.String, value)
	case hm.Range != nil:
		n, err := strconv.ParseInt(strings.Trim(value, " \t\n\v\f\r"), 10, 64)
		match = err == nil && n >= hm.Range.Start && n < hm.Range.End
	default:
		match = hm.Present == nil || *hm.Present
	}
	return match != hm.Invert
}

func naiveString(sm *StringMatcher, s string) bool {
	if sm.Regex != nil {
		return regexp.MustCompile(`^(?:` + sm.Regex.String() + `)$`).MatchString(s)
	}
	v := sm.Value
	if sm.IgnoreCase {
		s, v = asciiLower(s), asciiLower(v)
	}
	switch sm.Kind {
	case StringExact:
		return s == v
	case StringPrefix:
		return strings.HasPrefix(s, v)
	case StringSuffix:
		return strings.HasSuffix(s, v)
	case StringContains:
		return strings.Contains(s, v)
	}
	return false
}

// asciiLower lowers ASCII letters only: Envoy's case folding (Unicode
// folding would equate "K" with the Kelvin sign).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// FuzzHeaderInt checks parseInt64, the range_match parser, against a
// plain reading of absl::SimpleAtoi, which Envoy uses: ASCII whitespace
// around, an optional sign, then decimal digits (any number of them,
// leading zeros included) whose value fits an int64.
func FuzzHeaderInt(f *testing.F) {
	for _, s := range []string{"0", "-0", "+5", " 42\t", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
		"-9223372036854775809", "00000000000000000000042", "\u00a05", "\v7\f", "1_000", "0x10", "", "-", " + 1", "１"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseInt64(s)
		want, wantOK := simpleAtoi(s)
		if ok != wantOK || got != want {
			t.Fatalf("parseInt64(%q) = %d, %v; SimpleAtoi gives %d, %v", s, got, ok, want, wantOK)
		}
	})
}

// simpleAtoi is absl::SimpleAtoi for int64, through big-number-free
// strconv: trim ASCII whitespace, keep one sign, parse the digits.
func simpleAtoi(s string) (int64, bool) {
	s = strings.Trim(s, " \t\n\v\f\r")
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if len(digits) == len(s) && s != "" && (s[0] == '-' || s[0] == '+') {
		return 0, false
	}
	if digits == "" || strings.Trim(digits, "0123456789") != "" || len(s)-len(digits) > 1 {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// watchdog panics, naming the input, when the returned stop is not called
// within 10 s: the fuzzing engine does not notice a hang by itself.
func watchdog(input string) (stop func()) {
	done := make(chan struct{})
	timer := time.AfterFunc(10*time.Second, func() {
		select {
		case <-done:
		default:
			panic("no result after 10s for input " + input)
		}
	})
	return func() { close(done); timer.Stop() }
}

// FuzzHashPolicy evaluates a route's hash policies (header, a generated
// cookie, query parameter, source address) on arbitrary requests: the
// hash is a function of the request, and a client that sends back the
// cookie the proxy generated gets the same hash without a new cookie
// (the stickiness the cookie exists for).
func FuzzHashPolicy(f *testing.F) {
	f.Add("alice", "", "id=7", "10.0.0.1")
	f.Add("", "session=abc; other=1", "", "")
	f.Add("a\x00b", "session=\"q\"; session=2", "id&id=1", "::1")
	f.Add("", "=;;session", "%zz=1&id=%zz", "")
	a := &ForwardAction{HashPolicies: []HashPolicy{
		{Kind: HashHeader, Name: "x-user"},
		{Kind: HashCookie, Name: "session", CookieGenerate: true, CookieTTL: time.Hour, CookiePath: "/"},
		{Kind: HashQueryParam, Name: "id"},
		{Kind: HashSourceIP, Terminal: true},
	}}
	f.Fuzz(func(t *testing.T, user, cookie, query, clientIP string) {
		req := func(cookie string) *http.Request {
			r := &http.Request{Method: "GET", URL: &url.URL{Path: "/", RawQuery: query}, Header: http.Header{}}
			if user != "" {
				r.Header["X-User"] = []string{user}
			}
			if cookie != "" {
				r.Header["Cookie"] = []string{cookie}
			}
			return r
		}
		h1, ok1, set1 := a.Hash(req(cookie), clientIP)
		if set1 == "" {
			h2, ok2, set2 := a.Hash(req(cookie), clientIP)
			if h1 != h2 || ok1 != ok2 || set2 != "" {
				t.Fatalf("same request, two hashes: %x/%v, %x/%v (set-cookie %q)", h1, ok1, h2, ok2, set2)
			}
			return
		}
		c, err := http.ParseSetCookie(set1)
		if err != nil || c.Name != "session" || c.Value == "" || c.Path != "/" || c.MaxAge != 3600 || !c.HttpOnly {
			t.Fatalf("generated set-cookie %q: %+v, %v", set1, c, err)
		}
		if !ok1 {
			t.Fatalf("a cookie was generated but no hash came of it")
		}
		// The client comes back with it (its other cookies kept).
		back := "session=" + c.Value
		if cookie != "" {
			back = cookie + "; " + back
		}
		h2, ok2, set2 := a.Hash(req(back), clientIP)
		if set2 != "" || !ok2 || h2 != h1 {
			t.Fatalf("cookie %q sent back: hash %x (ok %v, set-cookie %q), first %x", back, h2, ok2, set2, h1)
		}
	})
}

// FuzzRouteDomains builds tables from arbitrary domains (three virtual
// hosts, two domains each) and looks up an arbitrary authority: New
// refuses with a *ConfigError naming the domain, or the table picks the
// virtual host the naive reading of Envoy's rules picks.
func FuzzRouteDomains(f *testing.F) {
	f.Add("example.com", "*.example.com", "foo.*", "*:9000", "[::1]:80", "*", "a.example.com:9000")
	f.Add("*", "*", "", "a", "b", "c", "a")
	f.Add("a*b", "**", "*.", ".*", "*:", ":*", "x:")
	f.Add("EXAMPLE.com:8443", "*]:80", "[::1]*", "*.*", "foo:*", "*-bar", "[::1]:80")
	f.Add("*.example.com:7000", "*:7000", "*.com", "example.*", "e*", "*m", "a.example.com:7000")
	f.Fuzz(func(t *testing.T, d1, d2, d3, d4, d5, d6, host string) {
		cfg := &Config{Name: "domains"}
		for i, ds := range [][]string{{d1, d2}, {d3, d4}, {d5, d6}} {
			cfg.VirtualHosts = append(cfg.VirtualHosts, VirtualHost{Name: strconv.Itoa(i), Domains: ds,
				Routes: []Route{{Name: strconv.Itoa(i), Direct: &DirectResponse{Status: 200}}}})
		}
		tbl, err := New(cfg)
		if err != nil {
			var ce *ConfigError
			if !errors.As(err, &ce) || !strings.Contains(ce.Field, "domains[") {
				t.Fatalf("domains %q: error %v does not name a domain", []string{d1, d2, d3, d4, d5, d6}, err)
			}
			return
		}
		want := naiveVirtualHost(cfg, host)
		r := &http.Request{Method: "GET", Host: host, URL: &url.URL{Path: "/"}, Header: http.Header{}}
		rt, vh := tbl.Match(r)
		got := -1
		if vh != nil {
			got, _ = strconv.Atoi(vh.Name)
			if rt == nil || rt.Name != vh.Name {
				t.Fatalf("virtual host %s, route %v", vh.Name, rt)
			}
		}
		if got != want {
			t.Fatalf("domains %q, host %q: virtual host %d, want %d", []string{d1, d2, d3, d4, d5, d6}, host, got, want)
		}
	})
}
