package jwtauthn

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

func allKeysFilter(t *testing.T) (*Filter, map[string]*testKey) {
	ks := testKeys(t)
	jwks := jwksOf(t, ks["rs"], ks["es256"], ks["es384"], ks["ed"])
	return newFilter(t, oneRule(testProvider(t, jwks))), ks
}

func TestValidTokensEveryAlgorithm(t *testing.T) {
	f, ks := allKeysFilter(t)
	for _, name := range []string{"rs", "rs384", "rs512", "ps", "es256", "es384", "ed"} {
		t.Run(name, func(t *testing.T) {
			res := do(f, "/a", sign(t, ks[name], claims()), nil)
			if !res.passed() {
				t.Fatalf("valid %s token refused: %d %q", name, res.w.Code, res.w.Body.String())
			}
			if res.r.Header.Get("Authorization") != "" {
				t.Fatal("token forwarded although forward is false")
			}
		})
	}
	st := f.Stats()
	if st["jwt_authn.allowed"] != 7 || st["jwt_authn.denied"] != 0 {
		t.Fatalf("stats %v", st)
	}
}

func TestFailures(t *testing.T) {
	f, ks := allKeysFilter(t)
	now := time.Now()
	rs := ks["rs"]
	valid := sign(t, rs, claims())
	parts := strings.Split(valid, ".")
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	tampered := parts[0] + "." + enc(claims("sub", "mallory")) + "." + parts[2]
	cases := []struct {
		name   string
		tok    string
		status int
		body   string
	}{
		{"missing", "", 401, "Jwt is missing"},
		{"expired beyond skew", sign(t, rs, claims("exp", now.Add(-2*time.Minute).Unix())), 401, "Jwt is expired"},
		{"not yet valid", sign(t, rs, claims("nbf", now.Add(2*time.Minute).Unix())), 401, "Jwt not yet valid"},
		{"wrong audience", sign(t, rs, claims("aud", []string{"other", "more"})), 403, "Audiences in Jwt are not allowed"},
		{"no audience", sign(t, rs, claims("aud", nil)), 403, "Audiences in Jwt are not allowed"},
		{"wrong issuer", sign(t, rs, claims("iss", "https://evil.example")), 401, "Jwt issuer is not configured"},
		{"no issuer", sign(t, rs, claims("iss", nil)), 401, "Jwt issuer is not configured"},
		{"wrong signature", sign(t, &testKey{kid: "rs", alg: rs.alg, priv: ks["other"].priv}, claims()), 401, "Jwt verification fails"},
		{"tampered payload", tampered, 401, "Jwt verification fails"},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(sign(t, rs, claims("sub", "bob")), ".")[2], 401, "Jwt verification fails"},
		{"unknown kid", sign(t, ks["other"], claims()), 401, "Jwks doesn't have key to match kid or alg from Jwt"},
		{"alg of another key type", sign(t, &testKey{kid: "es256", alg: rs.alg, priv: rs.priv}, claims()), 401, "Jwks doesn't have key to match kid or alg from Jwt"},
		{"malformed", "abc", 401, "Jwt is not in the form of Header.Payload.Signature"},
		{"four parts", "a.b.c.d", 401, "Jwt is not in the form of Header.Payload.Signature"},
		{"header not base64", "!!!.b.c", 401, "Jwt is missing"}, // '!' ends the token at the prefix: nothing is extracted
		{"header not json", base64.RawURLEncoding.EncodeToString([]byte("nope")) + "." + parts[1] + "." + parts[2], 401, "Jwt header is an invalid Base64url input or an invalid JSON"},
		{"alg none", enc(map[string]any{"alg": "none"}) + "." + parts[1] + ".", 401, "Jwt header [alg] field value is invalid"},
		{"alg none with signature", enc(map[string]any{"alg": "none"}) + "." + parts[1] + "." + parts[2], 401, "Jwt header [alg] field value is invalid"},
		{"alg HS256", enc(map[string]any{"alg": "HS256"}) + "." + parts[1] + "." + parts[2], 401, "Jwt header [alg] field value is invalid"},
		{"alg not a string", enc(map[string]any{"alg": 7}) + "." + parts[1] + "." + parts[2], 401, "Jwt header [alg] field is not a string"},
		{"kid not a string", enc(map[string]any{"alg": "RS256", "kid": 7}) + "." + parts[1] + "." + parts[2], 401, "Jwt header [kid] field is not a string"},
		{"payload not json", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte("[1]")) + "." + parts[2], 401, "Jwt payload is an invalid Base64 or an invalid JSON"},
		{"exp not a number", parts[0] + "." + enc(claims("exp", "soon")) + "." + parts[2], 401, "Jwt payload is an invalid Base64 or an invalid JSON"},
		{"iss not a string", parts[0] + "." + enc(claims("iss", 1)) + "." + parts[2], 401, "Jwt payload is an invalid Base64 or an invalid JSON"},
		{"aud not strings", parts[0] + "." + enc(claims("aud", []any{1})) + "." + parts[2], 401, "Jwt payload is an invalid Base64 or an invalid JSON"},
		{"non-canonical base64 header", nonCanonical(parts[0]) + "." + parts[1] + "." + parts[2], 401, "Jwt header is an invalid Base64url input or an invalid JSON"},
		{"empty signature", parts[0] + "." + parts[1] + ".", 401, "Jwt signature is an invalid Base64"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := do(f, "/some/path?q=1", tc.tok, nil)
			wantDenied(t, res, tc.status, tc.body)
			want := `Bearer realm="http://example.com/some/path?q=1"`
			if tc.body != "Jwt is missing" {
				want += `, error="invalid_token"`
			}
			if got := res.w.Header().Get("WWW-Authenticate"); got != want {
				t.Fatalf("WWW-Authenticate %q, want %q", got, want)
			}
		})
	}
	if st := f.Stats(); st["jwt_authn.denied"] != uint64(len(cases)) {
		t.Fatalf("denied = %d, want %d", st["jwt_authn.denied"], len(cases))
	}
}

func TestClockSkew(t *testing.T) {
	ks := testKeys(t)
	p := testProvider(t, jwksOf(t, ks["rs"]))
	f := newFilter(t, oneRule(p))
	now := time.Now()
	// Within the default 60 s skew.
	for name, c := range map[string]map[string]any{
		"expired 30s ago":    claims("exp", now.Add(-30*time.Second).Unix()),
		"valid in 30s":       claims("nbf", now.Add(30*time.Second).Unix()),
		"no exp nor nbf":     claims("exp", nil),
		"fractional exp":     claims("exp", float64(now.Add(time.Hour).Unix())+0.5),
		"audience as a list": claims("aud", []string{"x", "https://api/"}),
	} {
		if res := do(f, "/", sign(t, ks["rs"], c), nil); !res.passed() {
			t.Errorf("%s: refused %q", name, res.w.Body.String())
		}
	}
	// A 10 s skew refuses what 60 s allows.
	p.ClockSkew = 10 * time.Second
	f = newFilter(t, oneRule(p))
	wantDenied(t, do(f, "/", sign(t, ks["rs"], claims("exp", now.Add(-30*time.Second).Unix())), nil), 401, "Jwt is expired")
	wantDenied(t, do(f, "/", sign(t, ks["rs"], claims("nbf", now.Add(30*time.Second).Unix())), nil), 401, "Jwt not yet valid")
}

func TestFixedClock(t *testing.T) {
	ks := testKeys(t)
	at := time.Unix(2_000_000_000, 0)
	f, err := New("jwt", oneRule(testProvider(t, jwksOf(t, ks["rs"]))), Options{Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, ks["rs"], claims("exp", at.Unix()+5))
	if !do(f, "/", tok, nil).passed() {
		t.Fatal("valid at the fixed time")
	}
	at = at.Add(66 * time.Second)
	wantDenied(t, do(f, "/", tok, nil), 401, "Jwt is expired")
}

func TestForwardAndPayload(t *testing.T) {
	ks := testKeys(t)
	p := testProvider(t, jwksOf(t, ks["rs"]))
	p.Forward = true
	p.ForwardPayloadHeader = "x-jwt-payload"
	p.ClaimToHeaders = []ClaimToHeader{
		{Header: "x-sub", Claim: "sub"},
		{Header: "x-n", Claim: "n"},
		{Header: "x-big", Claim: "big"},
		{Header: "x-f", Claim: "f"},
		{Header: "x-admin", Claim: "admin"},
		{Header: "x-team", Claim: "org.team"},
		{Header: "x-obj", Claim: "org"},
		{Header: "x-missing", Claim: "nope"},
		{Header: "x-crlf", Claim: "crlf"},
	}
	f := newFilter(t, oneRule(p))
	c := claims("n", 42, "big", 1e3, "f", 1.5, "admin", true, "org", map[string]any{"team": "core"}, "crlf", "a\r\nb")
	tok := sign(t, ks["rs"], c)
	res := do(f, "/", tok, nil, "x-sub", "spoofed", "x-jwt-payload", "spoofed")
	if !res.passed() {
		t.Fatalf("refused: %q", res.w.Body.String())
	}
	h := res.r.Header
	if h.Get("Authorization") != "Bearer "+tok {
		t.Fatal("forward: true removed the token")
	}
	want := map[string]string{"X-Sub": "alice", "X-N": "42", "X-Big": "1000", "X-F": "1.5", "X-Admin": "true", "X-Team": "core", "X-Obj": "", "X-Missing": "", "X-Crlf": ""}
	for k, v := range want {
		if got := strings.Join(h.Values(k), ","); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	payload := strings.Split(tok, ".")[1]
	if got := h.Values("X-Jwt-Payload"); len(got) != 1 || got[0] != payload {
		t.Fatalf("payload header %q, want [%q]", got, payload)
	}
	// Padded.
	p.PadForwardPayloadHeader = true
	f = newFilter(t, oneRule(p))
	res = do(f, "/", tok, nil)
	got := res.r.Header.Get("X-Jwt-Payload")
	if len(got)%4 != 0 || strings.TrimRight(got, "=") != payload {
		t.Fatalf("padded payload %q", got)
	}
	// A failed request keeps no spoofed header either way: it is answered.
	wantDenied(t, do(f, "/", "", nil, "x-sub", "spoofed"), 401, "Jwt is missing")
}

func TestTokenLocations(t *testing.T) {
	ks := testKeys(t)
	tok := sign(t, ks["rs"], claims())
	p := testProvider(t, jwksOf(t, ks["rs"]))
	p.FromHeaders = []HeaderLocation{{Name: "x-token", ValuePrefix: "JWT "}}
	p.FromParams = []string{"tok"}
	p.FromCookies = []string{"session"}
	f := newFilter(t, oneRule(p))

	res := do(f, "/", "", nil, "x-token", "JWT "+tok+", extra")
	if !res.passed() || res.r.Header.Get("X-Token") != "" {
		t.Fatalf("header location: passed=%v, header left %q", res.passed(), res.r.Header.Get("X-Token"))
	}
	if res := do(f, "/?tok="+tok, "", nil); !res.passed() {
		t.Fatalf("param: %q", res.w.Body.String())
	}
	if res := do(f, "/", "", nil, "cookie", "a=b; session="+tok); !res.passed() {
		t.Fatalf("cookie: %q", res.w.Body.String())
	}
	// Configured locations replace the default Authorization header.
	wantDenied(t, do(f, "/", tok, nil), 401, "Jwt is missing")
	// A good token beside a bad one fails: every token must verify.
	wantDenied(t, do(f, "/?tok=bad.bad.bad", "", nil, "x-token", "JWT "+tok), 401, "Jwt header is an invalid Base64url input or an invalid JSON")

	// The default locations: Authorization Bearer and access_token.
	f = newFilter(t, oneRule(testProvider(t, jwksOf(t, ks["rs"]))))
	if res := do(f, "/?access_token="+tok, "", nil); !res.passed() {
		t.Fatalf("access_token: %q", res.w.Body.String())
	}
}

func TestRules(t *testing.T) {
	ks := testKeys(t)
	jwks := jwksOf(t, ks["rs"])
	req := &Requirement{Kind: RequireProvider, Provider: "p"}
	cfg := &Config{
		Providers: map[string]*Provider{"p": testProvider(t, jwks)},
		Rules: []Rule{
			{Match: router.Match{Path: "/public"}},
			{Match: router.Match{Prefix: "/api/", Headers: []router.HeaderMatcher{{Name: "x-mode", String: &router.StringMatcher{Kind: router.StringExact, Value: "open"}}}}},
			{Match: router.Match{Prefix: "/api/"}, Requires: req},
			{Match: router.Match{Regex: regexp.MustCompile(`/v[0-9]+/secure`)}, Requires: req},
		},
	}
	f := newFilter(t, cfg)
	tok := sign(t, ks["rs"], claims())
	cases := []struct {
		target  string
		hdrs    []string
		tok     string
		pass    bool
		comment string
	}{
		{"/public", nil, "", true, "path rule without requires"},
		{"/public/x", nil, "", true, "no rule matches"},
		{"/api/x", []string{"x-mode", "open"}, "", true, "header rule without requires"},
		{"/api/x", nil, "", false, "prefix rule"},
		{"/api/x", nil, tok, true, "prefix rule with a token"},
		{"/v2/secure", nil, "", false, "regex rule"},
		{"/v2/secure/more", nil, "", true, "regex must match the whole path"},
	}
	for _, tc := range cases {
		if got := do(f, tc.target, tc.tok, nil, tc.hdrs...).passed(); got != tc.pass {
			t.Errorf("%s (%s): passed=%v, want %v", tc.target, tc.comment, got, tc.pass)
		}
	}
}

func TestRequirements(t *testing.T) {
	ks := testKeys(t)
	pa := testProvider(t, jwksOf(t, ks["rs"]))
	pa.FromHeaders = []HeaderLocation{{Name: "x-a"}}
	pa.ForwardPayloadHeader = "x-a-payload"
	pb := &Provider{Issuer: "https://b.example", LocalJWKS: jwksOf(t, ks["es256"]), FromHeaders: []HeaderLocation{{Name: "x-b"}}}
	a := &Requirement{Kind: RequireProvider, Provider: "a"}
	b := &Requirement{Kind: RequireProvider, Provider: "b"}
	cfg := &Config{
		Providers: map[string]*Provider{"a": pa, "b": pb},
		Rules: []Rule{
			{Match: router.Match{Prefix: "/any"}, Requires: &Requirement{Kind: RequireAny, Children: []*Requirement{a, b}}},
			{Match: router.Match{Prefix: "/all"}, Requires: &Requirement{Kind: RequireAll, Children: []*Requirement{a, b}}},
			{Match: router.Match{Prefix: "/missing"}, Requires: &Requirement{Kind: AllowMissing}},
			{Match: router.Match{Prefix: "/failed"}, Requires: &Requirement{Kind: AllowMissingOrFailed}},
			{Match: router.Match{Prefix: "/a-or-missing"}, Requires: &Requirement{Kind: RequireAny, Children: []*Requirement{a, {Kind: AllowMissing}}}},
			{Match: router.Match{Prefix: "/aud"}, Requires: &Requirement{Kind: RequireProvider, Provider: "a", Audiences: []string{"special"}}},
		},
	}
	f := newFilter(t, cfg)
	ta := sign(t, ks["rs"], claims())
	tb := sign(t, ks["es256"], claims("iss", "https://b.example"))
	bad := sign(t, ks["other"], claims())
	special := sign(t, ks["rs"], claims("aud", "special"))
	cases := []struct {
		target string
		hdrs   []string
		pass   bool
		body   string
	}{
		{"/any", []string{"x-a", ta}, true, ""},
		{"/any", []string{"x-b", tb}, true, ""},
		{"/any", nil, false, "Jwt is missing"},
		{"/any", []string{"x-b", ta}, false, "Jwt issuer is not configured"},
		{"/all", []string{"x-a", ta}, false, "Jwt is missing"},
		{"/all", []string{"x-a", ta, "x-b", tb}, true, ""},
		{"/missing", nil, true, ""},
		{"/missing", []string{"x-b", tb}, true, ""},
		{"/missing", []string{"x-a", bad}, false, "Jwks doesn't have key to match kid or alg from Jwt"},
		{"/missing", []string{"x-a", "garbage"}, false, "Jwt is not in the form of Header.Payload.Signature"},
		{"/failed", []string{"x-a", bad}, true, ""},
		{"/failed", nil, true, ""},
		{"/a-or-missing", nil, true, ""},
		{"/a-or-missing", []string{"x-a", ta}, true, ""},
		{"/a-or-missing", []string{"x-a", bad}, false, "Jwks doesn't have key to match kid or alg from Jwt"},
		{"/aud", []string{"x-a", ta}, false, "Audiences in Jwt are not allowed"},
		{"/aud", []string{"x-a", special}, true, ""},
	}
	for _, tc := range cases {
		res := do(f, tc.target, "", nil, tc.hdrs...)
		if res.passed() != tc.pass || (!tc.pass && res.w.Body.String() != tc.body) {
			t.Errorf("%s %v: passed=%v %q, want %v %q", tc.target, tc.hdrs, res.passed(), res.w.Body.String(), tc.pass, tc.body)
		}
	}
	// allow_missing_or_failed still forwards a valid token's payload, and
	// drops a client's own payload header.
	res := do(f, "/failed", "", nil, "x-a", ta, "x-a-payload", "spoofed")
	if got := res.r.Header.Values("X-A-Payload"); len(got) != 1 || got[0] != strings.Split(ta, ".")[1] {
		t.Fatalf("payload under allow_missing_or_failed: %q", got)
	}
	res = do(f, "/failed", "", nil, "x-a", bad, "x-a-payload", "spoofed")
	if got := res.r.Header.Values("X-A-Payload"); len(got) != 0 {
		t.Fatalf("spoofed payload kept: %q", got)
	}
}

func TestPerRoute(t *testing.T) {
	ks := testKeys(t)
	cfg := oneRule(testProvider(t, jwksOf(t, ks["rs"])))
	cfg.RequirementMap = map[string]*Requirement{
		"open": {Kind: AllowMissing},
		"p":    {Kind: RequireProvider, Provider: "p"},
	}
	f := newFilter(t, cfg)
	in := func(pr *PerRoute) *hcm.FilterInput {
		return &hcm.FilterInput{Route: &router.Route{PerFilter: map[string]any{"jwt": pr}}}
	}
	if !do(f, "/", "", in(&PerRoute{Disabled: true})).passed() {
		t.Fatal("disabled route checked")
	}
	if !do(f, "/", "", in(&PerRoute{RequirementName: "open"})).passed() {
		t.Fatal("requirement_name open refused a request without a token")
	}
	wantDenied(t, do(f, "/", "", in(&PerRoute{RequirementName: "p"})), 401, "Jwt is missing")
	wantDenied(t, do(f, "/", "", in(&PerRoute{RequirementName: "nope"})), 403,
		"Failed JWT authentication: Wrong requirement_name: nope. It should be one of [open,p]")
	// The virtual host's entry applies when the route has none.
	vh := &hcm.FilterInput{Route: &router.Route{}, VHost: &router.VirtualHost{PerFilter: map[string]any{"jwt": &PerRoute{Disabled: true}}}}
	if !do(f, "/", "", vh).passed() {
		t.Fatal("virtual host's disabled ignored")
	}
}

func TestGRPCReplies(t *testing.T) {
	f, ks := allKeysFilter(t)
	grpc := func(tok string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/pkg.Svc/Method", nil)
		r.Header.Set("Content-Type", "application/grpc")
		if tok != "" {
			r.Header.Set("Authorization", "Bearer "+tok)
		}
		w := httptest.NewRecorder()
		f.Decode(w, r, &hcm.FilterInput{})
		return w
	}
	if w := grpc(""); w.Code != 200 || w.Header().Get("Grpc-Status") != "16" || w.Header().Get("Grpc-Message") != "Jwt is missing" {
		t.Fatalf("missing token over gRPC: %d %v", w.Code, w.Header())
	}
	if w := grpc(sign(t, ks["rs"], claims("aud", "x"))); w.Header().Get("Grpc-Status") != "7" {
		t.Fatalf("wrong audience over gRPC: %v", w.Header())
	}
}

func TestStripFailureAndCORS(t *testing.T) {
	ks := testKeys(t)
	cfg := oneRule(testProvider(t, jwksOf(t, ks["rs"])))
	cfg.StripFailureResponse = true
	cfg.BypassCORSPreflight = true
	f := newFilter(t, cfg)
	res := do(f, "/", "", nil)
	wantDenied(t, res, 401, "")
	if res.w.Header().Get("WWW-Authenticate") != "" {
		t.Fatal("WWW-Authenticate with strip_failure_response")
	}
	r := httptest.NewRequest("OPTIONS", "/", nil)
	r.Header.Set("Origin", "https://a.example")
	r.Header.Set("Access-Control-Request-Method", "GET")
	if v := f.Decode(httptest.NewRecorder(), r, &hcm.FilterInput{}); v.Stopped() {
		t.Fatal("preflight checked")
	}
	if f.Stats()["jwt_authn.cors_preflight_bypassed"] != 1 {
		t.Fatal("preflight not counted")
	}
}

func TestRealm(t *testing.T) {
	r := httptest.NewRequest("GET", "/"+strings.Repeat("a", 300), nil)
	r.Host = `h"x`
	r.Header.Set("X-Forwarded-Proto", "https")
	got := originalURI(r)
	if !strings.HasPrefix(got, "https://hx/") || len(got) != len("https://hx")+maxRealmPath {
		t.Fatalf("realm %q", got)
	}
}

func TestConfigErrors(t *testing.T) {
	ks := testKeys(t)
	jwks := jwksOf(t, ks["rs"])
	good := func() *Provider { return testProvider(t, jwks) }
	cases := []struct {
		name string
		cfg  *Config
		want string
	}{
		{"unknown provider", &Config{Providers: map[string]*Provider{"p": good()},
			Rules: []Rule{{Requires: &Requirement{Kind: RequireProvider, Provider: "q"}}}}, `rules[0].requires: required provider "q" is not configured`},
		{"unknown provider in map", &Config{Providers: map[string]*Provider{"p": good()},
			RequirementMap: map[string]*Requirement{"r": {Kind: RequireAny, Children: []*Requirement{{Kind: RequireProvider, Provider: "p"}, {Kind: RequireProvider, Provider: "z"}}}}},
			`requirement_map["r"].requirements[1]: required provider "z"`},
		{"any with one child", &Config{Providers: map[string]*Provider{"p": good()},
			RequirementMap: map[string]*Requirement{"r": {Kind: RequireAll, Children: []*Requirement{{Kind: AllowMissing}}}}}, "need at least 2"},
		{"nil requirement", &Config{RequirementMap: map[string]*Requirement{"r": nil}}, "no requirement"},
		{"bad kind", &Config{RequirementMap: map[string]*Requirement{"r": {Kind: 99}}}, "unknown requirement kind"},
		{"no keys", &Config{Providers: map[string]*Provider{"p": {}}}, `providers["p"]: local_jwks or remote_jwks is required`},
		{"nil provider", &Config{Providers: map[string]*Provider{"p": nil}}, "no provider"},
		{"both", &Config{Providers: map[string]*Provider{"p": {LocalJWKS: jwks, Remote: &RemoteJWKS{URI: "http://a/", Cluster: "c"}}}}, "only one of"},
		{"bad jwks", &Config{Providers: map[string]*Provider{"p": {LocalJWKS: []byte("{")}}}, "local_jwks: not a JSON Web Key Set"},
		{"jwks without keys field", &Config{Providers: map[string]*Provider{"p": {LocalJWKS: []byte("{}")}}}, "no keys field"},
		{"jwks with symmetric key only", &Config{Providers: map[string]*Provider{"p": {LocalJWKS: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)}}}, "no valid public key"},
		{"remote without cluster", &Config{Providers: map[string]*Provider{"p": {Remote: &RemoteJWKS{URI: "http://a/"}}}}, "uri and cluster are required"},
		{"remote not http", &Config{Providers: map[string]*Provider{"p": {Remote: &RemoteJWKS{URI: "ftp://a/", Cluster: "c"}}}}, "is not an http"},
		{"empty header", &Config{Providers: map[string]*Provider{"p": {LocalJWKS: jwks, FromHeaders: []HeaderLocation{{}}}}}, "from_headers[0].name"},
		{"empty param", &Config{Providers: map[string]*Provider{"p": {LocalJWKS: jwks, FromParams: []string{""}}}}, "from_params"},
		{"empty cookie", &Config{Providers: map[string]*Provider{"p": {LocalJWKS: jwks, FromCookies: []string{""}}}}, "from_cookies"},
		{"empty claim", &Config{Providers: map[string]*Provider{"p": {LocalJWKS: jwks, ClaimToHeaders: []ClaimToHeader{{Header: "x"}}}}}, "claim_to_headers[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New("jwt", tc.cfg, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A URI that passes the scheme check but has no host.
	_, err := New("jwt", &Config{Providers: map[string]*Provider{"p": {Remote: &RemoteJWKS{URI: "http://", Cluster: "c"}}}}, Options{})
	if err == nil || !strings.Contains(err.Error(), "not a URL with a host") {
		t.Fatalf("hostless URI: %v", err)
	}
}

func TestStatusText(t *testing.T) {
	if Status(200).String() != "unknown status" || JwtAudienceNotAllowed.HTTPStatus() != http.StatusForbidden || JwtExpired.HTTPStatus() != 401 {
		t.Fatal("status helpers")
	}
}

// nonCanonical respells a base64url string whose length leaves unused bits
// in its last character with those bits set: the same bytes, another text.
func nonCanonical(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	spare := map[int]int{2: 15, 3: 3}[len(s)%4] // unused low bits of the last char
	if spare == 0 {
		return s + "A" // wrong length instead
	}
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last|spare])
}
