package fault

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/forward"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

func ptr[T any](v T) *T { return &v }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     *Config
		wantErr string // "" = valid; else the error's text must contain it
	}{
		{"empty is a no-op filter", &Config{}, ""},
		{"fixed delay", &Config{Delay: &Delay{Fixed: time.Second, Percent: Percent(10)}}, ""},
		{"header delay", &Config{Delay: &Delay{FromHeader: true, Percent: Fraction{5, 10000}}}, ""},
		{"http abort", &Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Percent(100)}}, ""},
		{"grpc abort OK", &Config{Abort: &Abort{Kind: AbortGRPC, GRPCStatus: 0, Percent: Percent(1)}}, ""},
		{"header abort", &Config{Abort: &Abort{Kind: AbortHeader, Percent: Fraction{1, 1000000}}}, ""},
		{"max active 0", &Config{MaxActiveFaults: ptr(uint32(0))}, ""},
		{"nil", nil, "no fault configuration"},
		{"delay both", &Config{Delay: &Delay{Fixed: time.Second, FromHeader: true, Percent: Percent(1)}}, "delay: only one of fixed_delay and header_delay"},
		{"delay zero", &Config{Delay: &Delay{Percent: Percent(1)}}, "delay.fixed_delay: must be greater than 0"},
		{"delay negative", &Config{Delay: &Delay{Fixed: -time.Second, Percent: Percent(1)}}, "delay.fixed_delay: must be greater than 0"},
		{"delay denominator", &Config{Delay: &Delay{Fixed: time.Second, Percent: Fraction{1, 1000}}}, "delay.percentage.denominator: 1000 is not one of"},
		{"delay denominator zero", &Config{Delay: &Delay{Fixed: time.Second}}, "delay.percentage.denominator: 0 is not one of"},
		{"abort no kind", &Config{Abort: &Abort{Percent: Percent(1)}}, "abort: one of http_status, grpc_status and header_abort is required"},
		{"abort 99", &Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 99, Percent: Percent(1)}}, "abort.http_status: 99 is not a valid HTTP status"},
		{"abort 600", &Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 600, Percent: Percent(1)}}, "abort.http_status: 600 is not a valid HTTP status"},
		{"abort http+grpc", &Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 503, GRPCStatus: 3, Percent: Percent(1)}}, "abort: only one of"},
		{"abort grpc 17", &Config{Abort: &Abort{Kind: AbortGRPC, GRPCStatus: 17, Percent: Percent(1)}}, "abort.grpc_status: 17 is not a gRPC status code"},
		{"abort grpc -1", &Config{Abort: &Abort{Kind: AbortGRPC, GRPCStatus: -1, Percent: Percent(1)}}, "abort.grpc_status: -1"},
		{"abort grpc+http", &Config{Abort: &Abort{Kind: AbortGRPC, GRPCStatus: 3, HTTPStatus: 500, Percent: Percent(1)}}, "abort: only one of"},
		{"abort header+status", &Config{Abort: &Abort{Kind: AbortHeader, HTTPStatus: 500, Percent: Percent(1)}}, "abort: only one of"},
		{"abort denominator", &Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 500, Percent: Fraction{1, 7}}}, "abort.percentage.denominator"},
		{"header no name", &Config{Headers: []router.HeaderMatcher{{}}}, "headers[0].name: header name is required"},
		{"header bad name", &Config{Headers: []router.HeaderMatcher{{Name: "x"}, {Name: "a b"}}}, `headers[1].name: invalid header name "a b"`},
		{"header pseudo", &Config{Headers: []router.HeaderMatcher{{Name: ":status"}}}, `headers[0].name: pseudo-header ":status" is not supported`},
		{"header two specifiers", &Config{Headers: []router.HeaderMatcher{{Name: "x", Present: ptr(true), Range: &router.Int64Range{}}}}, "headers[0]: at most one of"},
		{"header empty prefix", &Config{Headers: []router.HeaderMatcher{{Name: "x", String: &router.StringMatcher{Kind: router.StringPrefix}}}}, "headers[0].string_match.prefix: value must not be empty"},
		{"header regex missing", &Config{Headers: []router.HeaderMatcher{{Name: "x", String: &router.StringMatcher{Kind: router.StringRegex}}}}, "headers[0].string_match.safe_regex: regex is missing"},
		{"header regex with value", &Config{Headers: []router.HeaderMatcher{{Name: "x", String: &router.StringMatcher{Regex: regexp.MustCompile("a"), Value: "b"}}}}, "cannot also carry the value"},
		{"header regex with kind", &Config{Headers: []router.HeaderMatcher{{Name: "x", String: &router.StringMatcher{Kind: router.StringSuffix, Regex: regexp.MustCompile("a")}}}}, "cannot also be a suffix matcher"},
		{"header unknown kind", &Config{Headers: []router.HeaderMatcher{{Name: "x", String: &router.StringMatcher{Kind: 42}}}}, "unknown string match kind 42"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := Compile(tc.cfg); err != nil {
					t.Fatalf("Compile: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tc.wantErr)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("errors.Is(%v, ErrInvalidConfig) = false", err)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("%T is not a *ConfigError", err)
			}
			if _, err := Compile(tc.cfg); err == nil {
				t.Error("Compile accepted what Validate rejects")
			}
		})
	}
}

func TestConfigErrorCause(t *testing.T) {
	cause := errors.New("boom")
	err := &ConfigError{Field: "headers[0]", Msg: "bad", Err: cause}
	if got, want := err.Error(), "headers[0]: bad: boom"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, cause) || !errors.Is(err, ErrInvalidConfig) {
		t.Error("errors.Is does not find both the cause and ErrInvalidConfig")
	}
}

// An invalid Config given to New is not used: the filter injects nothing
// rather than panicking or injecting something half-understood.
func TestNewWithInvalidConfigInjectsNothing(t *testing.T) {
	f := New(&Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 42, Percent: Percent(100)}})
	rec := httptest.NewRecorder()
	out := f.Apply(rec, httptest.NewRequest(http.MethodGet, "/", nil), "")
	if out != (Outcome{}) || rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Errorf("outcome %+v, recorder %d %q: want nothing done", out, rec.Code, rec.Body)
	}
	if New(nil).Apply(rec, httptest.NewRequest(http.MethodGet, "/", nil), "") != (Outcome{}) {
		t.Error("New(nil) injected something")
	}
}

func TestHeaderNamesAreCanonical(t *testing.T) {
	for _, h := range []string{HeaderDelayRequest, HeaderDelayRequestPercentage, HeaderAbortRequest,
		HeaderAbortGRPCRequest, HeaderAbortRequestPercentage, HeaderDownstreamServiceNode} {
		if c := textproto.CanonicalMIMEHeaderKey(strings.ToLower(h)); c != h {
			t.Errorf("%q is not canonical (%q): direct map lookups would miss it", h, c)
		}
	}
}

func TestHeaderMatching(t *testing.T) {
	req := func(mod func(r *http.Request)) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://svc.local/a/b?q=1", nil)
		r.Header.Set("X-Tenant", "Acme")
		r.Header.Set("X-Num", " 42 ")
		r.Header.Add("X-Multi", "a")
		r.Header.Add("X-Multi", "b")
		if mod != nil {
			mod(r)
		}
		return r
	}
	str := func(k router.StringMatchKind, v string) *router.StringMatcher {
		return &router.StringMatcher{Kind: k, Value: v}
	}
	for _, tc := range []struct {
		name string
		hm   router.HeaderMatcher
		r    *http.Request
		want bool
	}{
		{"present by default", router.HeaderMatcher{Name: "x-tenant"}, req(nil), true},
		{"absent", router.HeaderMatcher{Name: "x-none"}, req(nil), false},
		{"present false, absent", router.HeaderMatcher{Name: "x-none", Present: ptr(false)}, req(nil), true},
		{"present false, present", router.HeaderMatcher{Name: "x-tenant", Present: ptr(false)}, req(nil), false},
		{"exact", router.HeaderMatcher{Name: "X-TENANT", String: str(router.StringExact, "Acme")}, req(nil), true},
		{"exact case", router.HeaderMatcher{Name: "x-tenant", String: str(router.StringExact, "acme")}, req(nil), false},
		{"exact ignore case", router.HeaderMatcher{Name: "x-tenant", String: &router.StringMatcher{Value: "acme", IgnoreCase: true}}, req(nil), true},
		{"prefix", router.HeaderMatcher{Name: "x-tenant", String: str(router.StringPrefix, "Ac")}, req(nil), true},
		{"suffix", router.HeaderMatcher{Name: "x-tenant", String: str(router.StringSuffix, "me")}, req(nil), true},
		{"contains", router.HeaderMatcher{Name: "x-tenant", String: str(router.StringContains, "cm")}, req(nil), true},
		{"contains ignore case", router.HeaderMatcher{Name: "x-tenant", String: &router.StringMatcher{Kind: router.StringContains, Value: "CM", IgnoreCase: true}}, req(nil), true},
		{"regex whole value", router.HeaderMatcher{Name: "x-tenant", String: &router.StringMatcher{Regex: regexp.MustCompile("A.m")}}, req(nil), false},
		{"regex", router.HeaderMatcher{Name: "x-tenant", String: &router.StringMatcher{Kind: router.StringRegex, Regex: regexp.MustCompile("A.*e")}}, req(nil), true},
		{"multi-valued joined", router.HeaderMatcher{Name: "x-multi", String: str(router.StringExact, "a,b")}, req(nil), true},
		{"range in", router.HeaderMatcher{Name: "x-num", Range: &router.Int64Range{Start: 40, End: 43}}, req(nil), true},
		{"range end excluded", router.HeaderMatcher{Name: "x-num", Range: &router.Int64Range{Start: 0, End: 42}}, req(nil), false},
		{"range not a number", router.HeaderMatcher{Name: "x-tenant", Range: &router.Int64Range{Start: 0, End: 100}}, req(nil), false},
		{"invert", router.HeaderMatcher{Name: "x-tenant", String: str(router.StringExact, "Acme"), Invert: true}, req(nil), false},
		{"invert absent string", router.HeaderMatcher{Name: "x-none", String: str(router.StringExact, "x"), Invert: true}, req(nil), false},
		{"invert absent present", router.HeaderMatcher{Name: "x-none", Invert: true}, req(nil), true},
		{"missing as empty", router.HeaderMatcher{Name: "x-none", String: str(router.StringExact, ""), TreatMissingAsEmpty: true}, req(nil), true},
		{":method", router.HeaderMatcher{Name: ":method", String: str(router.StringExact, "POST")}, req(func(r *http.Request) { r.Method = http.MethodPost }), true},
		{":authority", router.HeaderMatcher{Name: ":authority", String: str(router.StringExact, "svc.local")}, req(nil), true},
		{"host", router.HeaderMatcher{Name: "host", String: str(router.StringPrefix, "svc")}, req(nil), true},
		{":path", router.HeaderMatcher{Name: ":path", String: str(router.StringExact, "/a/b?q=1")}, req(nil), true},
		{":scheme", router.HeaderMatcher{Name: ":scheme", String: str(router.StringExact, "http")}, req(nil), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := compileHeaders([]router.HeaderMatcher{tc.hm})
			if err != nil {
				t.Fatal(err)
			}
			if got := m.MatchAll(tc.r); got != tc.want {
				t.Errorf("match = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseUint64(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true}, {" 250 ", 250, true}, {"+7", 7, true}, {"18446744073709551615", 1<<64 - 1, true},
		{"18446744073709551616", 0, false}, {"-1", 0, false}, {"", 0, false}, {"1.5", 0, false}, {"abc", 0, false}, {"+", 0, false},
	} {
		got, ok := parseUint64(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseUint64(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"-9223372036854775808", -1 << 63, true}, {"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775808", 0, false}, {"-9223372036854775809", 0, false}, {"-", 0, false},
	} {
		got, ok := parseInt64(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseInt64(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestHTTPToGRPCStatus(t *testing.T) {
	for in, want := range map[int]int{400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14, 500: 2, 200: 2, 418: 2} {
		if got := forward.HTTPToGRPCStatus(in); got != want {
			t.Errorf("httpToGRPCStatus(%d) = %d, want %d", in, got, want)
		}
	}
	if got, want := forward.GRPCPercentEncode("50% naïve\n"), "50%25 na%C3%AFve%0A"; got != want {
		t.Errorf("grpcPercentEncode = %q, want %q", got, want)
	}
}

func TestStatsNamed(t *testing.T) {
	s := Stats{DelaysInjected: 1, AbortsInjected: 2, ActiveFaults: 3, FaultsOverflow: 4}
	want := map[string]uint64{"fault.delays_injected": 1, "fault.aborts_injected": 2, "fault.active_faults": 3, "fault.faults_overflow": 4}
	got := s.Named()
	if len(got) != len(want) {
		t.Fatalf("Named() = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("Named()[%q] = %d, want %d", k, got[k], v)
		}
	}
}
