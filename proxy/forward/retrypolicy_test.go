package forward

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

func TestBackoffBounds(t *testing.T) {
	maxRnd := func(n int64) int64 { return n - 1 }
	zero := func(int64) int64 { return 0 }
	const ms = time.Millisecond
	for _, tt := range []struct {
		n         int
		base, max time.Duration
		want      time.Duration // with the largest pick
	}{
		{1, 25 * ms, 250 * ms, 25 * ms},
		{2, 25 * ms, 250 * ms, 50 * ms},
		{4, 25 * ms, 250 * ms, 200 * ms},
		{5, 25 * ms, 250 * ms, 250 * ms},
		{80, 25 * ms, 250 * ms, 250 * ms}, // no overflow
		{1, 0, 0, 25 * ms},                // Envoy's defaults
		{9, 0, 0, 250 * ms},
		{3, 100 * ms, 0, 400 * ms}, // max defaults to 10 × base
	} {
		if got := backoff(tt.n, tt.base, tt.max, maxRnd); got != tt.want {
			t.Errorf("backoff(%d, %v, %v) at most %v, want %v", tt.n, tt.base, tt.max, got, tt.want)
		}
		if got := backoff(tt.n, tt.base, tt.max, zero); got != 0 {
			t.Errorf("backoff(%d) at least %v, want 0", tt.n, got)
		}
	}
	for i := 0; i < 1000; i++ {
		if d := backoff(3, 25*ms, 250*ms, jitter); d < 0 || d > 100*ms {
			t.Fatalf("backoff(3) = %v, outside [0, 100ms]", d)
		}
	}
}

// scripted is an in-memory Upstream for timing tests under synctest (no
// network there): it answers with the next status of its script and
// records when each attempt came.
type scripted struct {
	mu       sync.Mutex
	codes    []int
	at       []time.Time
	released []bool
	host     lb.Host
}

func (s *scripted) Pick(*lb.Request) (*lb.Host, error) { return &s.host, nil }
func (s *scripted) AdmitRetry() bool                   { return true }
func (s *scripted) ReleaseRetry(ok bool) {
	s.mu.Lock()
	s.released = append(s.released, ok)
	s.mu.Unlock()
}

func (s *scripted) RoundTrip(req *http.Request, h *lb.Host) (*http.Response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = append(s.at, time.Now())
	code := 200
	if len(s.at) <= len(s.codes) {
		code = s.codes[len(s.at)-1]
	}
	return &http.Response{StatusCode: code, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

// The waits between attempts stay within the backoff bounds (checked on
// the fake clock).
func TestBackoffBetweenAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const base, max = time.Second, 3 * time.Second
		caps := []time.Duration{time.Second, 2 * time.Second, 3 * time.Second, 3 * time.Second}
		var waited time.Duration
		for i := 0; i < 30; i++ {
			up := &scripted{codes: []int{503, 503, 503, 503}, host: lb.Host{Address: "a"}}
			p := &Params{Upstream: up, Retry: &router.RetryPolicy{On: router.Retry5xx, NumRetries: 4, BackoffBase: base, BackoffMax: max}}
			w := httptest.NewRecorder()
			res := Forward(w, httptest.NewRequest("GET", "/", nil), p)
			if res.Status != 200 || res.Attempts != 5 {
				t.Fatalf("got %d after %d attempts, want 200 after 5", res.Status, res.Attempts)
			}
			for k := 1; k < len(up.at); k++ {
				gap := up.at[k].Sub(up.at[k-1])
				if gap < 0 || gap > caps[k-1] {
					t.Fatalf("wait before retry %d: %v, want within [0, %v]", k, gap, caps[k-1])
				}
				waited += gap
			}
		}
		if waited == 0 {
			t.Error("no retry ever waited: backoff is not applied")
		}
	})
}

// The client leaving ends a backoff at once: nothing more is sent and the
// waiting retry is released.
func TestBackoffEndsWhenClientLeaves(t *testing.T) {
	defer func(j func(int64) int64) { jitter = j }(jitter)
	jitter = func(n int64) int64 { return n - 1 }
	synctest.Test(t, func(t *testing.T) {
		up := &scripted{codes: []int{503}, host: lb.Host{Address: "a"}}
		p := &Params{Upstream: up, Retry: &router.RetryPolicy{On: router.Retry5xx, NumRetries: 1, BackoffBase: time.Hour}}
		ctx, cancel := context.WithCancel(context.Background())
		r := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
		done := make(chan Result)
		go func() { done <- Forward(httptest.NewRecorder(), r, p) }()
		synctest.Wait() // Forward waits out its backoff
		start := time.Now()
		cancel()
		res := <-done
		if res.Status != StatusClientClosed || res.Flag != FlagDownstreamTerm || res.Attempts != 1 {
			t.Fatalf("result %+v: want 499 DC after 1 attempt", res)
		}
		if time.Since(start) != 0 || len(up.at) != 1 {
			t.Errorf("the backoff went on after the client left")
		}
		if !slices.Equal(up.released, []bool{false}) {
			t.Errorf("released %v, want the waiting retry released", up.released)
		}
	})
}

func TestJoinFlags(t *testing.T) {
	for _, tt := range []struct {
		base      string
		uo, limit bool
		want      string
	}{
		{"", false, false, ""},
		{"UF", false, false, "UF"},
		{"", false, true, "URX"},
		{"", true, false, "UO"},
		{"UF", false, true, "UF,URX"},
		{"UT", true, true, "UT,UO,URX"},
		{"UO", true, false, "UO"},
		{"SI", false, true, "URX,SI"},
		{"DC", false, true, "DC,URX"},
	} {
		if got := joinFlags(tt.base, tt.uo, tt.limit); got != tt.want {
			t.Errorf("joinFlags(%q, %v, %v) = %q, want %q", tt.base, tt.uo, tt.limit, got, tt.want)
		}
	}
}

func TestMatchHeader(t *testing.T) {
	yes, no := true, false
	str := func(k router.StringMatchKind, v string, fold bool) *router.StringMatcher {
		return &router.StringMatcher{Kind: k, Value: v, IgnoreCase: fold}
	}
	h := http.Header{"X-A": {"Hello"}, "X-Multi": {"a", "b"}, "X-N": {" 42 "}}
	resp := &http.Response{StatusCode: 503, Header: h}
	for _, tt := range []struct {
		name string
		m    router.HeaderMatcher
		want bool
	}{
		{"present", router.HeaderMatcher{Name: "x-a", Present: &yes}, true},
		{"no specifier is presence", router.HeaderMatcher{Name: "x-a"}, true},
		{"missing", router.HeaderMatcher{Name: "x-b", Present: &yes}, false},
		{"absent wanted", router.HeaderMatcher{Name: "x-b", Present: &no}, true},
		{"missing inverted", router.HeaderMatcher{Name: "x-b", Present: &yes, Invert: true}, true},
		{"missing string inverted", router.HeaderMatcher{Name: "x-b", String: str(router.StringExact, "", false), Invert: true}, false},
		{"missing as empty", router.HeaderMatcher{Name: "x-b", String: str(router.StringExact, "", false), TreatMissingAsEmpty: true}, true},
		{"exact", router.HeaderMatcher{Name: "X-A", String: str(router.StringExact, "Hello", false)}, true},
		{"exact case", router.HeaderMatcher{Name: "x-a", String: str(router.StringExact, "hello", false)}, false},
		{"exact fold", router.HeaderMatcher{Name: "x-a", String: str(router.StringExact, "hELLO", true)}, true},
		{"prefix", router.HeaderMatcher{Name: "x-a", String: str(router.StringPrefix, "He", false)}, true},
		{"suffix fold", router.HeaderMatcher{Name: "x-a", String: str(router.StringSuffix, "LLO", true)}, true},
		{"contains", router.HeaderMatcher{Name: "x-a", String: str(router.StringContains, "ell", false)}, true},
		{"contains miss", router.HeaderMatcher{Name: "x-a", String: str(router.StringContains, "xyz", false)}, false},
		{"regex", router.HeaderMatcher{Name: "x-a", String: &router.StringMatcher{Kind: router.StringRegex, Regex: regexp.MustCompile(`^(?:H.*o)$`)}}, true},
		{"joined values", router.HeaderMatcher{Name: "x-multi", String: str(router.StringExact, "a,b", false)}, true},
		{"range", router.HeaderMatcher{Name: "x-n", Range: &router.Int64Range{Start: 40, End: 43}}, true},
		{"range end excluded", router.HeaderMatcher{Name: "x-n", Range: &router.Int64Range{Start: 40, End: 42}}, false},
		{"inverted", router.HeaderMatcher{Name: "x-a", String: str(router.StringExact, "Hello", false), Invert: true}, false},
		{":status", router.HeaderMatcher{Name: ":status", Range: &router.Int64Range{Start: 500, End: 600}}, true},
		{"unknown pseudo", router.HeaderMatcher{Name: ":path", Present: &yes}, false},
	} {
		ms, err := router.CompileResponseHeaderMatchers("m", []router.HeaderMatcher{tt.m})
		if err != nil {
			if tt.name == "unknown pseudo" {
				continue // refused at compile time: a response has no :path
			}
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := ms.MatchAnyResponse(h, resp.StatusCode); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	r := httptest.NewRequest("PUT", "http://svc.local/x?y=1", nil)
	for _, tt := range []struct {
		m    router.HeaderMatcher
		want bool
	}{
		{router.HeaderMatcher{Name: ":method", String: str(router.StringExact, "PUT", false)}, true},
		{router.HeaderMatcher{Name: ":path", String: str(router.StringExact, "/x?y=1", false)}, true},
		{router.HeaderMatcher{Name: ":authority", String: str(router.StringExact, "svc.local", false)}, true},
		{router.HeaderMatcher{Name: "host", String: str(router.StringExact, "svc.local", false)}, true},
		{router.HeaderMatcher{Name: ":scheme", String: str(router.StringExact, "http", false)}, true},
	} {
		ms, err := router.CompileHeaderMatchers("m", []router.HeaderMatcher{tt.m})
		if err != nil {
			t.Fatalf("%s: %v", tt.m.Name, err)
		}
		if got := ms.MatchAny(r); got != tt.want {
			t.Errorf("request %s: %v, want %v", tt.m.Name, got, tt.want)
		}
	}
}

func TestRetriableFailure(t *testing.T) {
	refused := fmt.Errorf("upstream reset: %w", errors.New("http2: Transport: cannot retry err [stream error: stream ID 1; REFUSED_STREAM] after Request.Body was written"))
	wrapped := fmt.Errorf("upstream reset: %w", h2StreamError{StreamID: 1, Code: h2RefusedStream})
	other := fmt.Errorf("upstream reset: %w", h2StreamError{StreamID: 1, Code: 0x8})
	for _, tt := range []struct {
		on     router.RetryOn
		reason Reason
		err    error
		want   bool
	}{
		{router.RetryRefusedStream, ReasonUpstreamReset, refused, true},
		{router.RetryRefusedStream, ReasonUpstreamReset, wrapped, true},
		{router.RetryRefusedStream, ReasonUpstreamReset, other, false},
		{router.RetryConnectFailure, ReasonUpstreamReset, refused, false},
		{router.Retry5xx, ReasonOverflow, nil, false},
		{router.RetryReset | router.RetryConnectFailure, ReasonOverflow, nil, false},
		{router.RetryReset, ReasonUpstreamTimeout, nil, true},
		{router.RetryConnectFailure, ReasonUpstreamTimeout, nil, false},
		{router.RetryReset, ReasonClientGone, nil, false},
		{router.Retry5xx, ReasonStreamIdleTimeout, nil, false},
	} {
		if got := retriableFailure(tt.on, tt.reason, tt.err); got != tt.want {
			t.Errorf("retriableFailure(%b, %v, %v) = %v, want %v", tt.on, tt.reason, tt.err, got, tt.want)
		}
	}
}

// overflowing fails its first round trip as a full circuit breaker would.
type overflowing struct {
	*testUpstream
	n int
}

var errBreakerFull = errors.New("upstream overflow")

func (o *overflowing) RoundTrip(req *http.Request, h *lb.Host) (*http.Response, error) {
	if o.n++; o.n == 1 {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errBreakerFull
	}
	return o.testUpstream.RoundTrip(req, h)
}

// Overflow is never retried (Envoy): the breakers are the cluster's.
func TestOverflowNotRetried(t *testing.T) {
	up := &overflowing{testUpstream: newTestUpstream(t, status(t, 200, "a"))}
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Classify = func(err error) (Reason, bool) {
			if errors.Is(err, errBreakerFull) {
				return ReasonOverflow, true
			}
			return testClassify(err)
		}
		p.Retry = retryOn(router.Retry5xx|router.RetryReset|router.RetryConnectFailure, 2)
	})
	code, _ := get(t, url, nil)
	res := result(t, results)
	if code != 503 || res.Flag != FlagUpstreamOverflow || res.Attempts != 1 {
		t.Fatalf("got %d flag %q after %d attempts, want 503 UO after 1", code, res.Flag, res.Attempts)
	}
}

func TestRetryNoHostAtFirst(t *testing.T) {
	up := newTestUpstream(t, status(t, 200, "a"))
	up.noHostAt = 1
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 1)
	})
	code, _ := get(t, url, nil)
	res := result(t, results)
	if code != 503 || res.Flag != FlagNoHealthyUpstream || res.Attempts != 0 {
		t.Fatalf("got %d flag %q after %d attempts, want 503 UH and none", code, res.Flag, res.Attempts)
	}
}

// The per-try timeout starts once the attempt has the whole request: a
// slow upload is not cut by it (Envoy).
func TestPerTryTimeoutStartsAtRequestEnd(t *testing.T) {
	rec := &bodyRecorder{}
	up := newTestUpstream(t, backend(t, rec.serve))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.RetryReset, 1)
		p.Retry.PerTryTimeout = 100 * time.Millisecond
	})
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 4; i++ {
			pw.Write([]byte("chunk"))
			time.Sleep(80 * time.Millisecond) // a slow client, not synchronisation
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", url, pr)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	res := result(t, results)
	if resp.StatusCode != 200 || res.Attempts != 1 {
		t.Fatalf("got %d after %d attempts, want 200 at once", resp.StatusCode, res.Attempts)
	}
}
