package ratelimit

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

func limiter(t *testing.T, cfg Config) *Limiter {
	t.Helper()
	l, err := NewLimiter("cfg", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func enforcing(max uint32) Config {
	return Config{
		StatPrefix: "rl",
		Bucket:     &TokenBucket{MaxTokens: max, TokensPerFill: max, FillInterval: time.Minute},
		Enabled:    &Always,
		Enforced:   &Always,
	}
}

func TestFilterLimitsAndAnswers429(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := enforcing(2)
		cfg.XRateLimitHeaders = true
		cfg.ResponseHeaders = []router.HeaderValue{{Name: "x-limited", Value: "yes", Append: true}}
		f := NewFilter("lrl", limiter(t, cfg))
		r := httptest.NewRequest("GET", "/", nil)
		for i, want := range []string{"1", "0"} {
			w := httptest.NewRecorder()
			if v := f.Decode(w, r, &hcm.FilterInput{}); v.Stopped() {
				t.Fatalf("request %d stopped: %+v", i, v)
			}
			if got := w.Header().Get(HeaderRemaining); got != want {
				t.Fatalf("request %d: remaining %q, want %q", i, got, want)
			}
			if w.Header().Get(HeaderLimit) != "2" || w.Header().Get(HeaderReset) != "60" {
				t.Fatalf("request %d: headers %v", i, w.Header())
			}
			if w.Header().Get("x-limited") != "" {
				t.Fatal("response_headers_to_add on a passed request")
			}
		}
		w := httptest.NewRecorder()
		v := f.Decode(w, r, &hcm.FilterInput{})
		if v.Status != 429 || v.Flag != "RL" || w.Code != 429 || w.Body.String() != Body {
			t.Fatalf("third request: verdict %+v, reply %d %q", v, w.Code, w.Body.String())
		}
		if w.Header().Get("x-limited") != "yes" || w.Header().Get(HeaderRemaining) != "0" {
			t.Fatalf("limited reply headers: %v", w.Header())
		}
		want := map[string]uint64{
			"rl.http_local_rate_limit.enabled":      3,
			"rl.http_local_rate_limit.ok":           2,
			"rl.http_local_rate_limit.rate_limited": 1,
			"rl.http_local_rate_limit.enforced":     1,
		}
		assertStats(t, f.Stats(), want)
		// The bucket fills again after the interval.
		time.Sleep(time.Minute)
		if v := f.Decode(httptest.NewRecorder(), r, &hcm.FilterInput{}); v.Stopped() {
			t.Fatal("still limited after a fill")
		}
	})
}

func TestFilterGRPCGetsUnavailable(t *testing.T) {
	f := NewFilter("lrl", limiter(t, enforcing(1)))
	r := httptest.NewRequest("POST", "/svc/M", nil)
	r.Header.Set("Content-Type", "application/grpc")
	f.Decode(httptest.NewRecorder(), r, &hcm.FilterInput{})
	w := httptest.NewRecorder()
	v := f.Decode(w, r, &hcm.FilterInput{})
	if v.GRPCStatus != "14" || w.Code != 200 || w.Header().Get("Grpc-Status") != "14" {
		t.Fatalf("gRPC reply: verdict %+v, %d %v", v, w.Code, w.Header())
	}
}

func TestFilterNotEnabledOrNotEnforced(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	off := enforcing(1)
	off.Enabled = nil
	f := NewFilter("lrl", limiter(t, off))
	for range 3 {
		if f.Decode(httptest.NewRecorder(), r, nil).Stopped() {
			t.Fatal("a filter without filter_enabled limited a request")
		}
	}
	assertStats(t, f.Stats(), map[string]uint64{"rl.http_local_rate_limit.enabled": 0})

	shadow := enforcing(1)
	shadow.Enforced = nil
	f = NewFilter("lrl", limiter(t, shadow))
	for range 3 {
		if f.Decode(httptest.NewRecorder(), r, nil).Stopped() {
			t.Fatal("a filter without filter_enforced limited a request")
		}
	}
	assertStats(t, f.Stats(), map[string]uint64{"rl.http_local_rate_limit.rate_limited": 2, "rl.http_local_rate_limit.enforced": 0})

	noBucket := enforcing(1)
	noBucket.Bucket = nil
	f = NewFilter("lrl", limiter(t, noBucket))
	if f.Decode(httptest.NewRecorder(), r, nil).Stopped() {
		t.Fatal("no bucket limited")
	}
}

func TestFilterPerRouteBuckets(t *testing.T) {
	base := limiter(t, enforcing(100))
	routeCfg := enforcing(1)
	routeCfg.StatPrefix = "route_a"
	routeCfg.Status = 503
	a := limiter(t, routeCfg)
	f := NewFilter("lrl", base)
	ra := &router.Route{PerFilter: map[string]any{"lrl": a}}
	rb := &router.Route{}
	r := httptest.NewRequest("GET", "/", nil)
	if f.Decode(httptest.NewRecorder(), r, &hcm.FilterInput{Route: ra}).Stopped() {
		t.Fatal("first request on route a limited")
	}
	w := httptest.NewRecorder()
	if v := f.Decode(w, r, &hcm.FilterInput{Route: ra}); v.Status != 503 || w.Code != 503 {
		t.Fatalf("route a over its own budget: %+v %d", v, w.Code)
	}
	// Route b uses the filter's bucket, untouched by route a.
	if f.Decode(httptest.NewRecorder(), r, &hcm.FilterInput{Route: rb}).Stopped() {
		t.Fatal("route b limited by route a's bucket")
	}
	assertStats(t, f.Stats(), map[string]uint64{
		"route_a.http_local_rate_limit.rate_limited": 1,
		"route_a.http_local_rate_limit.ok":           1,
		"rl.http_local_rate_limit.ok":                1,
	})
}

// Route tables are rebuilt on every xDS update: a rebuilt route's limiter
// with the same place and settings keeps the bucket of the one before.
func TestFilterPerRouteBucketSurvivesRebuild(t *testing.T) {
	f := NewFilter("lrl", limiter(t, enforcing(100)))
	r := httptest.NewRequest("GET", "/", nil)
	build := func(where string, max uint32) *hcm.FilterInput {
		cfg := enforcing(max)
		cfg.Where = where
		return &hcm.FilterInput{Route: &router.Route{PerFilter: map[string]any{"lrl": limiter(t, cfg)}}}
	}
	first := build("routes[0].virtual_hosts[0].routes[1]", 1)
	if f.Decode(httptest.NewRecorder(), r, first).Stopped() {
		t.Fatal("first request limited")
	}
	again := build("routes[0].virtual_hosts[0].routes[1]", 1)
	if v := f.Decode(httptest.NewRecorder(), r, again); v.Status != 429 {
		t.Fatalf("a rebuilt, unchanged route got a fresh bucket: %+v", v)
	}
	if v := f.Decode(httptest.NewRecorder(), r, build("routes[0].virtual_hosts[0].routes[2]", 1)); v.Stopped() {
		t.Fatal("another route shared the bucket")
	}
	if v := f.Decode(httptest.NewRecorder(), r, build("routes[0].virtual_hosts[0].routes[1]", 2)); v.Stopped() {
		t.Fatal("a changed setting kept the old bucket")
	}
	assertStats(t, f.Stats(), map[string]uint64{"rl.http_local_rate_limit.enabled": 4, "rl.http_local_rate_limit.rate_limited": 1})
}

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no prefix", Config{}, "cfg.stat_prefix: is required"},
		{"no tokens", Config{StatPrefix: "p", Bucket: &TokenBucket{FillInterval: time.Second}}, "cfg.token_bucket.max_tokens"},
		{"fast fill", Config{StatPrefix: "p", Bucket: &TokenBucket{MaxTokens: 1, FillInterval: time.Millisecond}}, "cfg.token_bucket.fill_interval: 1ms is shorter"},
		{"status", Config{StatPrefix: "p", Status: 200}, "cfg.status: 200"},
		{"fraction", Config{StatPrefix: "p", Enabled: &Fraction{Numerator: 1}}, "denominator"},
		{"header", Config{StatPrefix: "p", ResponseHeaders: []router.HeaderValue{{}}}, "response_headers_to_add"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewLimiter("cfg", tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := NewConnLimiter("", ConnConfig{}); err == nil || !strings.Contains(err.Error(), "stat_prefix") {
		t.Fatalf("conn limiter without prefix: %v", err)
	}
	if _, err := NewConnLimiter("", ConnConfig{StatPrefix: "p"}); err == nil || !strings.Contains(err.Error(), "token_bucket.max_tokens") {
		t.Fatalf("conn limiter without bucket: %v", err)
	}
}

func TestConnLimiter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, err := NewConnLimiter("", ConnConfig{StatPrefix: "tcp", Bucket: TokenBucket{MaxTokens: 2, FillInterval: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		got := []bool{c.Admit(nil), c.Admit(nil), c.Admit(nil)}
		if !got[0] || !got[1] || got[2] {
			t.Fatalf("admits %v, want true true false", got)
		}
		time.Sleep(time.Second)
		if !c.Admit(nil) {
			t.Fatal("no token after a fill")
		}
		assertStats(t, c.Stats(), map[string]uint64{"local_rate_limit.tcp.rate_limited": 1})

		off, _ := NewConnLimiter("", ConnConfig{StatPrefix: "off", Disabled: true, Bucket: TokenBucket{MaxTokens: 1, FillInterval: time.Second}})
		for range 3 {
			if !off.Admit(nil) {
				t.Fatal("disabled limiter refused a connection")
			}
		}
	})
}

func assertStats(t *testing.T, got, want map[string]uint64) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
}

// nopWriter is a ResponseWriter that keeps only its header map, reused
// across iterations so the benchmark measures the filter alone.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

func benchFilter(b *testing.B, headers bool) { benchFilterIn(b, headers, false) }

func benchFilterIn(b *testing.B, headers, perRoute bool) {
	cfg := Config{
		StatPrefix:        "bench",
		Bucket:            &TokenBucket{MaxTokens: 1 << 30, TokensPerFill: 1 << 30, FillInterval: time.Second},
		Enabled:           &Always,
		Enforced:          &Always,
		XRateLimitHeaders: headers,
	}
	l, err := NewLimiter("", cfg)
	if err != nil {
		b.Fatal(err)
	}
	f := NewFilter("lrl", l)
	r := httptest.NewRequest("GET", "/", nil)
	w := &nopWriter{h: http.Header{}}
	in := &hcm.FilterInput{Route: &router.Route{}}
	if perRoute {
		rl, err := NewLimiter("", cfg)
		if err != nil {
			b.Fatal(err)
		}
		in.Route.PerFilter = map[string]any{"lrl": rl}
	}
	b.ReportAllocs()
	for b.Loop() {
		if f.Decode(w, r, in).Stopped() {
			b.Fatal("limited")
		}
	}
}

// BenchmarkPass is the pass path: a token taken, no reply.
func BenchmarkPass(b *testing.B) { benchFilter(b, false) }

// BenchmarkPassPerRoute is the pass path on a route with its own bucket.
func BenchmarkPassPerRoute(b *testing.B) { benchFilterIn(b, false, true) }

// BenchmarkPassXRateLimitHeaders adds the three x-ratelimit headers (the
// remaining count is beyond the prebuilt values here, so it allocates).
func BenchmarkPassXRateLimitHeaders(b *testing.B) { benchFilter(b, true) }

// BenchmarkBucketTakeParallel is the bucket under contention.
func BenchmarkBucketTakeParallel(b *testing.B) {
	bk := NewBucket(1<<31, 1<<31, time.Second)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bk.Take()
		}
	})
}

// BenchmarkGrantedRate drives the filter as fast as it goes against a
// bucket of 1000 tokens per 100 ms and reports the rate it let through
// (granted/s, near 10 000 plus the initial 1000 spread over the run) and
// the share it limited: the configured rate as a figure, not an assertion.
func BenchmarkGrantedRate(b *testing.B) {
	l, err := NewLimiter("", Config{
		StatPrefix: "bench",
		Bucket:     &TokenBucket{MaxTokens: 1000, TokensPerFill: 1000, FillInterval: 100 * time.Millisecond},
		Enabled:    &Always,
		Enforced:   &Always,
	})
	if err != nil {
		b.Fatal(err)
	}
	f := NewFilter("lrl", l)
	r := httptest.NewRequest("GET", "/", nil)
	w := &nopWriter{h: http.Header{}}
	in := &hcm.FilterInput{}
	start := time.Now()
	for b.Loop() {
		f.Decode(w, r, in)
	}
	secs := time.Since(start).Seconds()
	st := f.Stats()
	b.ReportMetric(float64(st["bench.http_local_rate_limit.ok"])/secs, "granted/s")
	b.ReportMetric(float64(st["bench.http_local_rate_limit.rate_limited"])/float64(b.N)*100, "%limited")
}
