package cors

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

func ptr[T any](v T) *T { return &v }

func exact(s string) router.StringMatcher {
	return router.StringMatcher{Kind: router.StringExact, Value: s}
}

// input puts route's and vhost's policies (either may be nil) under the
// filter name "cors".
func input(route, vhost *Policy) *hcm.FilterInput {
	in := &hcm.FilterInput{Route: &router.Route{}, VHost: &router.VirtualHost{}}
	if route != nil {
		in.Route.PerFilter = map[string]any{"cors": route}
	}
	if vhost != nil {
		in.VHost.PerFilter = map[string]any{"cors": vhost}
	}
	return in
}

func request(method, origin string, hdr ...string) *http.Request {
	r := httptest.NewRequest(method, "http://api.test/x", nil)
	if origin != "" {
		r.Header.Set("Origin", origin)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

func TestDecode(t *testing.T) {
	full := &Policy{
		AllowOrigins:     []router.StringMatcher{exact("https://app.test")},
		AllowMethods:     "GET, POST",
		AllowHeaders:     "content-type, x-grpc-web",
		ExposeHeaders:    "grpc-status, grpc-message",
		MaxAge:           "600",
		AllowCredentials: ptr(true),
	}
	tests := []struct {
		name           string
		route, vhost   *Policy
		req            *http.Request
		wantStatus     int               // the filter's verdict
		wantHeaders    map[string]string // "" value: must be absent
		valid, invalid uint64
	}{
		{
			name: "preflight allowed", route: full,
			req:        request("OPTIONS", "https://app.test", "Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "x-grpc-web"),
			wantStatus: 200,
			wantHeaders: map[string]string{
				"Access-Control-Allow-Origin": "https://app.test", "Access-Control-Allow-Methods": "GET, POST",
				"Access-Control-Allow-Headers": "content-type, x-grpc-web", "Access-Control-Max-Age": "600",
				"Access-Control-Allow-Credentials": "true", "Access-Control-Expose-Headers": "", "Content-Length": "0",
			},
			valid: 1,
		},
		{
			name: "actual request allowed", route: full,
			req: request("POST", "https://app.test"),
			wantHeaders: map[string]string{
				"Access-Control-Allow-Origin": "https://app.test", "Access-Control-Allow-Credentials": "true",
				"Access-Control-Expose-Headers": "grpc-status, grpc-message", "Access-Control-Allow-Methods": "",
				"Access-Control-Max-Age": "",
			},
			valid: 1,
		},
		{
			name: "OPTIONS without request method is an actual request", route: full,
			req:         request("OPTIONS", "https://app.test"),
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": "https://app.test", "Access-Control-Allow-Methods": ""},
			valid:       1,
		},
		{
			name: "origin not allowed: request passes bare", route: full,
			req:         request("GET", "https://evil.test"),
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Credentials": ""},
			invalid:     1,
		},
		{
			name: "preflight from a bad origin is forwarded by default", route: full,
			req:         request("OPTIONS", "https://evil.test", "Access-Control-Request-Method", "POST"),
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": ""},
			invalid:     1,
		},
		{
			name:        "preflight from a bad origin answered without allow-origin",
			route:       &Policy{AllowOrigins: []router.StringMatcher{exact("https://app.test")}, AllowMethods: "GET", ForwardNotMatchingPreflights: ptr(false)},
			req:         request("OPTIONS", "https://evil.test", "Access-Control-Request-Method", "POST"),
			wantStatus:  200,
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": "GET"},
			invalid:     1,
		},
		{
			name: "no origin: nothing, not counted", route: full,
			req:         request("GET", ""),
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": ""},
		},
		{
			name:        "no policy: nothing",
			req:         request("OPTIONS", "https://app.test", "Access-Control-Request-Method", "POST"),
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": ""},
		},
		{
			name:       "wildcard methods and headers echo the request",
			route:      &Policy{AllowOrigins: []router.StringMatcher{{Kind: router.StringPrefix, Value: "https://"}}, AllowMethods: "*", AllowHeaders: "*"},
			req:        request("OPTIONS", "https://any.test", "Access-Control-Request-Method", "PUT", "Access-Control-Request-Headers", "x-a, x-b"),
			wantStatus: 200,
			wantHeaders: map[string]string{
				"Access-Control-Allow-Origin": "https://any.test", "Access-Control-Allow-Methods": "PUT",
				"Access-Control-Allow-Headers": "x-a, x-b", "Access-Control-Allow-Credentials": "",
			},
			valid: 1,
		},
		{
			name:        "a matcher matching * allows every origin",
			route:       &Policy{AllowOrigins: []router.StringMatcher{exact("*")}},
			req:         request("GET", "https://whoever.test"),
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": "https://whoever.test"},
			valid:       1,
		},
		{
			name:        "regex and ignore_case",
			route:       &Policy{AllowOrigins: []router.StringMatcher{{Kind: router.StringRegex, Regex: regexp.MustCompile(`^(?:https://[a-z]+\.example\.com)$`)}, {Kind: router.StringSuffix, Value: ".ORG", IgnoreCase: true}}},
			req:         request("GET", "https://site.example.org"),
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": "https://site.example.org"},
			valid:       1,
		},
		{
			name:       "route settings first, the virtual host's fill the gaps",
			route:      &Policy{AllowMethods: "PATCH"},
			vhost:      &Policy{AllowOrigins: []router.StringMatcher{exact("https://app.test")}, AllowMethods: "GET", MaxAge: "60", AllowCredentials: ptr(true)},
			req:        request("OPTIONS", "https://app.test", "Access-Control-Request-Method", "PATCH"),
			wantStatus: 200,
			wantHeaders: map[string]string{
				"Access-Control-Allow-Origin": "https://app.test", "Access-Control-Allow-Methods": "PATCH",
				"Access-Control-Max-Age": "60", "Access-Control-Allow-Credentials": "true",
			},
			valid: 1,
		},
		{
			name:        "the route's credentials false overrides the virtual host's true",
			route:       &Policy{AllowCredentials: ptr(false)},
			vhost:       full,
			req:         request("GET", "https://app.test"),
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": "https://app.test", "Access-Control-Allow-Credentials": ""},
			valid:       1,
		},
		{
			name:        "disabled on the route although the virtual host is enabled",
			route:       &Policy{Enabled: &Fraction{0, 100}},
			vhost:       full,
			req:         request("GET", "https://app.test"),
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": ""},
		},
		{
			name:        "shadow mode counts only",
			route:       &Policy{AllowOrigins: []router.StringMatcher{exact("https://app.test")}, Enabled: &Fraction{0, 100}, Shadow: &Fraction{100, 100}},
			req:         request("OPTIONS", "https://app.test", "Access-Control-Request-Method", "POST"),
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": ""},
			valid:       1,
		},
		{
			name:        "enabled wins over shadow",
			route:       &Policy{AllowOrigins: []router.StringMatcher{exact("https://app.test")}, Enabled: &Fraction{1000000, 1000000}, Shadow: &Fraction{100, 100}},
			req:         request("GET", "https://app.test"),
			wantHeaders: map[string]string{"Access-Control-Allow-Origin": "https://app.test"},
			valid:       1,
		},
		{
			name:        "private network access",
			route:       &Policy{AllowOrigins: []router.StringMatcher{exact("https://app.test")}, AllowPrivateNetworkAccess: ptr(true)},
			req:         request("OPTIONS", "https://app.test", "Access-Control-Request-Method", "GET", "Access-Control-Request-Private-Network", "true"),
			wantStatus:  200,
			wantHeaders: map[string]string{"Access-Control-Allow-Private-Network": "true"},
			valid:       1,
		},
		{
			name:        "private network access not asked for",
			route:       &Policy{AllowOrigins: []router.StringMatcher{exact("https://app.test")}, AllowPrivateNetworkAccess: ptr(true)},
			req:         request("OPTIONS", "https://app.test", "Access-Control-Request-Method", "GET"),
			wantStatus:  200,
			wantHeaders: map[string]string{"Access-Control-Allow-Private-Network": ""},
			valid:       1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New("cors")
			w := httptest.NewRecorder()
			v := f.Decode(w, tt.req, input(tt.route, tt.vhost))
			if v.Status != tt.wantStatus {
				t.Fatalf("verdict status %d, want %d", v.Status, tt.wantStatus)
			}
			if tt.wantStatus != 0 && w.Code != tt.wantStatus {
				t.Fatalf("reply status %d, want %d", w.Code, tt.wantStatus)
			}
			if tt.wantStatus == 0 && w.Body.Len() != 0 {
				t.Fatalf("a passed request got a body: %q", w.Body)
			}
			for k, want := range tt.wantHeaders {
				got, ok := w.Header()[http.CanonicalHeaderKey(k)]
				switch {
				case want == "" && ok:
					t.Errorf("%s = %q, want it absent", k, got)
				case want != "" && (len(got) != 1 || got[0] != want):
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			st := f.Stats()
			if st["cors.origin_valid"] != tt.valid || st["cors.origin_invalid"] != tt.invalid {
				t.Errorf("stats %v, want valid %d invalid %d", st, tt.valid, tt.invalid)
			}
		})
	}
}

func TestPolicyOfAnotherFilterNameIgnored(t *testing.T) {
	f := New("other")
	w := httptest.NewRecorder()
	in := input(&Policy{AllowOrigins: []router.StringMatcher{exact("*")}}, nil)
	if v := f.Decode(w, request("GET", "https://a.test"), in); v.Stopped() || len(w.Header()) != 0 {
		t.Fatalf("a policy under another filter's name applied: %v %v", v, w.Header())
	}
}

func TestFractionRolls(t *testing.T) {
	half := &Fraction{Numerator: 5000, Denominator: 10000}
	on := 0
	for range 2000 {
		if half.on() {
			on++
		}
	}
	if on < 800 || on > 1200 {
		t.Fatalf("50%% fraction on %d of 2000", on)
	}
	if (&Fraction{0, 100}).on() || !(&Fraction{200, 100}).on() {
		t.Fatal("0% or >100% fraction rolled wrong")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		p       Policy
		wantErr bool
	}{
		{"empty", Policy{}, false},
		{"regex missing", Policy{AllowOrigins: []router.StringMatcher{{Kind: router.StringRegex}}}, true},
		{"unknown kind", Policy{AllowOrigins: []router.StringMatcher{{Kind: 42}}}, true},
		{"bad enabled denominator", Policy{Enabled: &Fraction{1, 7}}, true},
		{"bad shadow denominator", Policy{Shadow: &Fraction{1, 0}}, true},
		{"good fractions", Policy{Enabled: &Fraction{1, 100}, Shadow: &Fraction{1, 1000000}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("%v is not ErrInvalidPolicy", err)
			}
		})
	}
}

func TestMatchString(t *testing.T) {
	tests := []struct {
		m    router.StringMatcher
		s    string
		want bool
	}{
		{exact("a"), "a", true},
		{exact("a"), "A", false},
		{router.StringMatcher{Kind: router.StringExact, Value: "a", IgnoreCase: true}, "A", true},
		{router.StringMatcher{Kind: router.StringPrefix, Value: "https://"}, "http://x", false},
		{router.StringMatcher{Kind: router.StringPrefix, Value: "HTTPS://", IgnoreCase: true}, "https://x", true},
		{router.StringMatcher{Kind: router.StringSuffix, Value: ".test"}, "https://a.test", true},
		{router.StringMatcher{Kind: router.StringSuffix, Value: ".test"}, "st", false},
		{router.StringMatcher{Kind: router.StringContains, Value: "app"}, "https://app.test", true},
		{router.StringMatcher{Kind: router.StringContains, Value: "APP", IgnoreCase: true}, "https://app.test", true},
		{router.StringMatcher{Kind: router.StringRegex}, "x", false},
		{router.StringMatcher{Kind: 42}, "x", false},
	}
	for _, tt := range tests {
		if got := matchString(&tt.m, tt.s); got != tt.want {
			t.Errorf("%+v on %q = %v, want %v", tt.m, tt.s, got, tt.want)
		}
	}
}
