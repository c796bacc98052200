package router

import (
	"crypto/tls"
	"net/http"
	"regexp"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// oneRoute is a table whose only virtual host ("*") has one route.
func oneRoute(t *testing.T, m Match) *Table {
	t.Helper()
	return newTable(t, &Config{VirtualHosts: []VirtualHost{{
		Domains: []string{"*"},
		Routes:  []Route{{Name: "r", Match: m, Forward: fwd("c")}},
	}}})
}

type matchCase struct {
	name string
	r    *http.Request
	want bool
}

func runMatchCases(t *testing.T, m Match, cases []matchCase) {
	t.Helper()
	tbl := oneRoute(t, m)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rt, _ := tbl.Match(tc.r)
			if got := rt != nil; got != tc.want {
				t.Errorf("%s %s: matched=%v, want %v", tc.r.Method, tc.r.URL, got, tc.want)
			}
		})
	}
}

func TestPathMatch(t *testing.T) {
	get := func(target string) *http.Request { return req(t, "GET", target) }
	tests := []struct {
		name  string
		match Match
		cases []matchCase
	}{
		{"prefix", Match{Prefix: "/api"}, []matchCase{
			{"sub path", get("/api/x"), true},
			{"same", get("/api"), true},
			{"longer segment", get("/apix"), true},
			{"shorter", get("/ap"), false},
			{"case differs", get("/API/x"), false},
			{"with query", get("/api?x=1"), true},
			{"only in query", get("/b?x=/api"), false},
		}},
		{"prefix case-insensitive", Match{Prefix: "/Api", CaseInsensitive: true}, []matchCase{
			{"upper", get("/API/x"), true},
			{"lower", get("/api"), true},
			{"other", get("/apo"), false},
		}},
		{"empty prefix matches all", Match{}, []matchCase{
			{"root", get("/"), true},
			{"deep", get("/a/b/c?d"), true},
		}},
		{"exact path", Match{Path: "/exact"}, []matchCase{
			{"same", get("/exact"), true},
			{"query ignored", get("/exact?q=1"), true},
			{"trailing slash", get("/exact/"), false},
			{"case differs", get("/EXACT"), false},
			{"shorter", get("/exac"), false},
		}},
		{"exact path case-insensitive", Match{Path: "/exact", CaseInsensitive: true}, []matchCase{
			{"upper", get("/EXACT"), true},
			{"longer", get("/EXACTX"), false},
		}},
		{"exact path is matched escaped", Match{Path: "/a/b"}, []matchCase{
			{"plain", get("/a/b"), true},
			{"encoded slash", get("/a%2Fb"), false},
		}},
		{"escaped path matches escaped config", Match{Path: "/a%2Fb"}, []matchCase{
			{"encoded slash", get("/a%2Fb"), true},
			{"plain", get("/a/b"), false},
		}},
		{"safe_regex full match", Match{Regex: regexp.MustCompile(`/v[0-9]+/items`)}, []matchCase{
			{"match", get("/v1/items"), true},
			{"query ignored", get("/v12/items?x=1"), true},
			{"suffix extra", get("/v1/items/x"), false},
			{"prefix extra", get("/xv1/items"), false},
		}},
		{"safe_regex alternation is anchored as a whole", Match{Regex: regexp.MustCompile(`/a|/b`)}, []matchCase{
			{"a", get("/a"), true},
			{"b", get("/b"), true},
			{"a then more", get("/ab"), false},
		}},
		{"safe_regex ignores case_sensitive", Match{Regex: regexp.MustCompile(`/abc`), CaseInsensitive: true}, []matchCase{
			{"upper", get("/ABC"), false},
		}},
		{"path_separated_prefix", Match{PathSeparatedPrefix: "/api"}, []matchCase{
			{"same", get("/api"), true},
			{"slash", get("/api/"), true},
			{"sub path", get("/api/x"), true},
			{"query", get("/api?x=1"), true},
			{"longer segment", get("/apix"), false},
			{"case differs", get("/API/x"), false},
		}},
		{"path_separated_prefix case-insensitive", Match{PathSeparatedPrefix: "/api", CaseInsensitive: true}, []matchCase{
			{"upper", get("/API/x"), true},
			{"longer segment", get("/APIX"), false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runMatchCases(t, tt.match, tt.cases) })
	}
}

func TestHeaderMatch(t *testing.T) {
	withH := func(kv ...string) *http.Request { return req(t, "GET", "/", kv...) }
	str := func(kind StringMatchKind, v string) *StringMatcher { return &StringMatcher{Kind: kind, Value: v} }
	tests := []struct {
		name  string
		hm    HeaderMatcher
		cases []matchCase
	}{
		{"exact", HeaderMatcher{Name: "x-env", String: str(StringExact, "prod")}, []matchCase{
			{"equal", withH("X-Env", "prod"), true},
			{"other", withH("X-Env", "staging"), false},
			{"case differs", withH("X-Env", "PROD"), false},
			{"missing", withH(), false},
		}},
		{"exact ignore case", HeaderMatcher{Name: "x-env", String: &StringMatcher{Kind: StringExact, Value: "prod", IgnoreCase: true}}, []matchCase{
			{"upper", withH("X-Env", "PROD"), true},
		}},
		{"mixed-case matcher name", HeaderMatcher{Name: "X-Env", String: str(StringExact, "prod")}, []matchCase{
			{"equal", withH("x-env", "prod"), true},
		}},
		{"multiple values joined with comma", HeaderMatcher{Name: "x-multi", String: str(StringExact, "a,b")}, []matchCase{
			{"two headers", withH("X-Multi", "a", "X-Multi", "b"), true},
			{"one header", withH("X-Multi", "a"), false},
		}},
		{"prefix", HeaderMatcher{Name: "x-v", String: str(StringPrefix, "ab")}, []matchCase{
			{"yes", withH("X-V", "abc"), true}, {"no", withH("X-V", "xab"), false},
		}},
		{"suffix", HeaderMatcher{Name: "x-v", String: str(StringSuffix, "bc")}, []matchCase{
			{"yes", withH("X-V", "abc"), true}, {"no", withH("X-V", "bcd"), false}, {"shorter", withH("X-V", "c"), false},
		}},
		{"suffix ignore case", HeaderMatcher{Name: "x-v", String: &StringMatcher{Kind: StringSuffix, Value: "BC", IgnoreCase: true}}, []matchCase{
			{"yes", withH("X-V", "abc"), true},
		}},
		{"contains", HeaderMatcher{Name: "x-v", String: str(StringContains, "mid")}, []matchCase{
			{"yes", withH("X-V", "amidb"), true}, {"no", withH("X-V", "mi-d"), false},
		}},
		{"contains ignore case", HeaderMatcher{Name: "x-v", String: &StringMatcher{Kind: StringContains, Value: "MiD", IgnoreCase: true}}, []matchCase{
			{"yes", withH("X-V", "aMIDb"), true}, {"no", withH("X-V", "mi"), false},
		}},
		{"regex full match", HeaderMatcher{Name: "x-v", String: &StringMatcher{Regex: regexp.MustCompile(`pro.`)}}, []matchCase{
			{"yes", withH("X-V", "prod"), true}, {"longer", withH("X-V", "production"), false},
		}},
		{"regex kind explicit", HeaderMatcher{Name: "x-v", String: &StringMatcher{Kind: StringRegex, Regex: regexp.MustCompile(`[0-9]+`)}}, []matchCase{
			{"yes", withH("X-V", "123"), true}, {"no", withH("X-V", "12a"), false},
		}},
		{"invert", HeaderMatcher{Name: "x-env", String: str(StringExact, "prod"), Invert: true}, []matchCase{
			{"other", withH("X-Env", "staging"), true},
			{"equal", withH("X-Env", "prod"), false},
			// Envoy: an inverted value matcher does not match a missing header.
			{"missing", withH(), false},
		}},
		{"present", HeaderMatcher{Name: "x-p", Present: ptr(true)}, []matchCase{
			{"present", withH("X-P", ""), true}, {"missing", withH(), false},
		}},
		{"present false", HeaderMatcher{Name: "x-p", Present: ptr(false)}, []matchCase{
			{"present", withH("X-P", "1"), false}, {"missing", withH(), true},
		}},
		{"present inverted", HeaderMatcher{Name: "x-p", Present: ptr(true), Invert: true}, []matchCase{
			{"present", withH("X-P", "1"), false}, {"missing", withH(), true},
		}},
		{"no specifier means present", HeaderMatcher{Name: "x-p"}, []matchCase{
			{"present", withH("X-P", "1"), true}, {"missing", withH(), false},
		}},
		{"range", HeaderMatcher{Name: "x-n", Range: &Int64Range{Start: 10, End: 20}}, []matchCase{
			{"inside", withH("X-N", "15"), true},
			{"start inclusive", withH("X-N", "10"), true},
			{"end exclusive", withH("X-N", "20"), false},
			{"below", withH("X-N", "9"), false},
			{"not a number", withH("X-N", "abc"), false},
			{"blanks and sign", withH("X-N", " +12 "), true},
			{"overflow", withH("X-N", "99999999999999999999"), false},
			{"missing", withH(), false},
		}},
		{"range negative", HeaderMatcher{Name: "x-n", Range: &Int64Range{Start: -10, End: 0}}, []matchCase{
			{"inside", withH("X-N", "-5"), true}, {"zero", withH("X-N", "0"), false},
			{"min int64", withH("X-N", "-9223372036854775808"), false},
		}},
		{"range inverted", HeaderMatcher{Name: "x-n", Range: &Int64Range{Start: 10, End: 20}, Invert: true}, []matchCase{
			{"inside", withH("X-N", "15"), false}, {"outside", withH("X-N", "25"), true}, {"missing", withH(), false},
		}},
		{"treat missing as empty", HeaderMatcher{Name: "x-e", String: str(StringExact, ""), TreatMissingAsEmpty: true}, []matchCase{
			{"missing", withH(), true}, {"empty", withH("X-E", ""), true}, {"set", withH("X-E", "v"), false},
		}},
		{"treat missing as empty inverted", HeaderMatcher{Name: "x-e", String: str(StringExact, "v"), TreatMissingAsEmpty: true, Invert: true}, []matchCase{
			{"missing", withH(), true}, {"v", withH("X-E", "v"), false},
		}},
		{"treat missing as empty regex", HeaderMatcher{Name: "x-e", String: &StringMatcher{Regex: regexp.MustCompile(`a*`)}, TreatMissingAsEmpty: true}, []matchCase{
			{"missing", withH(), true}, {"b", withH("X-E", "b"), false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runMatchCases(t, Match{Headers: []HeaderMatcher{tt.hm}}, tt.cases)
		})
	}
}

func TestPseudoHeaderMatch(t *testing.T) {
	exact := func(v string) *StringMatcher { return &StringMatcher{Kind: StringExact, Value: v} }
	tlsReq := req(t, "GET", "https://secure.example.com/")
	tlsReq.TLS = &tls.ConnectionState{}
	serverTLS := req(t, "GET", "/")
	serverTLS.URL.Scheme = ""
	serverTLS.TLS = &tls.ConnectionState{}
	plain := req(t, "GET", "/")
	plain.URL.Scheme = ""
	tests := []struct {
		name  string
		hm    HeaderMatcher
		cases []matchCase
	}{
		{":method", HeaderMatcher{Name: ":method", String: exact("POST")}, []matchCase{
			{"post", req(t, "POST", "/"), true}, {"get", req(t, "GET", "/"), false},
		}},
		{":authority", HeaderMatcher{Name: ":authority", String: &StringMatcher{Kind: StringPrefix, Value: "api."}}, []matchCase{
			{"api", req(t, "GET", "http://api.example.com/"), true}, {"www", req(t, "GET", "http://www.example.com/"), false},
		}},
		{"host means authority", HeaderMatcher{Name: "host", String: exact("a.com:8080")}, []matchCase{
			{"same", req(t, "GET", "http://a.com:8080/"), true},
		}},
		{":path includes query", HeaderMatcher{Name: ":path", String: exact("/p?q=1")}, []matchCase{
			{"same", req(t, "GET", "/p?q=1"), true}, {"no query", req(t, "GET", "/p"), false},
		}},
		{":scheme", HeaderMatcher{Name: ":scheme", String: exact("https")}, []matchCase{
			{"absolute https", tlsReq, true}, {"server tls", serverTLS, true}, {"plain", plain, false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runMatchCases(t, Match{Headers: []HeaderMatcher{tt.hm}}, tt.cases)
		})
	}
}

func TestQueryParamMatch(t *testing.T) {
	get := func(target string) *http.Request { return req(t, "GET", target) }
	tests := []struct {
		name  string
		qm    QueryParamMatcher
		cases []matchCase
	}{
		{"present", QueryParamMatcher{Name: "debug", Present: true}, []matchCase{
			{"bare", get("/?debug"), true},
			{"valued", get("/?a=1&debug=1"), true},
			{"empty value", get("/?debug="), true},
			{"other", get("/?x=1"), false},
			{"longer name", get("/?debugx=1"), false},
			{"no query", get("/"), false},
		}},
		{"no specifier means present", QueryParamMatcher{Name: "debug"}, []matchCase{
			{"bare", get("/?debug"), true}, {"missing", get("/"), false},
		}},
		{"exact first value", QueryParamMatcher{Name: "v", String: &StringMatcher{Value: "2"}}, []matchCase{
			{"only", get("/?v=2"), true},
			{"first", get("/?v=2&v=3"), true},
			{"second", get("/?v=3&v=2"), false},
			{"empty segments", get("/?&&v=2"), true},
		}},
		{"raw undecoded value", QueryParamMatcher{Name: "q", String: &StringMatcher{Value: "a%20b"}}, []matchCase{
			{"encoded", get("/?q=a%20b"), true}, {"plus", get("/?q=a+b"), false},
		}},
		{"regex", QueryParamMatcher{Name: "id", String: &StringMatcher{Regex: regexp.MustCompile(`[0-9]+`)}}, []matchCase{
			{"digits", get("/?id=42"), true}, {"mixed", get("/?id=42a"), false},
		}},
		{"prefix ignore case", QueryParamMatcher{Name: "l", String: &StringMatcher{Kind: StringPrefix, Value: "EN", IgnoreCase: true}}, []matchCase{
			{"lower", get("/?l=en-us"), true}, {"other", get("/?l=fr"), false},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runMatchCases(t, Match{QueryParams: []QueryParamMatcher{tt.qm}}, tt.cases)
		})
	}
}

func TestGRPCMatch(t *testing.T) {
	ct := func(v string) *http.Request { return req(t, "POST", "/pkg.Svc/Method", "Content-Type", v) }
	runMatchCases(t, Match{Prefix: "/", GRPC: true}, []matchCase{
		{"grpc", ct("application/grpc"), true},
		{"grpc+proto", ct("application/grpc+proto"), true},
		{"grpc-web is not grpc", ct("application/grpc-web"), false},
		{"json", ct("application/json"), false},
		{"missing", req(t, "POST", "/pkg.Svc/Method"), false},
	})
}

func TestAllMatchersMustAccept(t *testing.T) {
	m := Match{
		Prefix:      "/api",
		Headers:     []HeaderMatcher{{Name: "x-a", Present: ptr(true)}, {Name: "x-b", String: &StringMatcher{Value: "1"}}},
		QueryParams: []QueryParamMatcher{{Name: "q", Present: true}},
		GRPC:        true,
	}
	full := []string{"X-A", "", "X-B", "1", "Content-Type", "application/grpc"}
	runMatchCases(t, m, []matchCase{
		{"all", req(t, "POST", "/api?q", full...), true},
		{"wrong path", req(t, "POST", "/other?q", full...), false},
		{"no query", req(t, "POST", "/api", full...), false},
		{"no grpc", req(t, "POST", "/api?q", full[:4]...), false},
		{"header b wrong", req(t, "POST", "/api?q", "X-A", "", "X-B", "2", "Content-Type", "application/grpc"), false},
		{"header a missing", req(t, "POST", "/api?q", full[2:]...), false},
	})
}

func TestParseInt64(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"42", 42, true}, {"-42", -42, true}, {"+7", 7, true}, {"  8\t", 8, true},
		{"9223372036854775807", 1<<63 - 1, true}, {"9223372036854775808", 0, false},
		{"-9223372036854775808", -1 << 63, true}, {"-9223372036854775809", 0, false},
		{"", 0, false}, {"-", 0, false}, {"1.5", 0, false}, {"0x10", 0, false}, {"1 2", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseInt64(tt.in)
			if ok != tt.ok || (ok && got != tt.want) {
				t.Errorf("parseInt64(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}
