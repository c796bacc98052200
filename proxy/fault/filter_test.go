package fault

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// rig is a real HTTP server whose handler runs the filter in front of a
// tiny backend, like the connection manager will: the route's cluster is
// taken from the X-Test-Cluster request header.
type rig struct {
	f        *Filter
	srv      *httptest.Server
	client   *http.Client
	outcomes chan Outcome
	backend  atomic.Int64 // requests that reached the backend
}

func newRig(t *testing.T, cfg *Config) *rig {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	rg := &rig{f: New(cfg), outcomes: make(chan Outcome, 1024)}
	rg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := rg.f.Apply(w, r, r.Header.Get("X-Test-Cluster"))
		select {
		case rg.outcomes <- out:
		default:
		}
		if out.Done() {
			return
		}
		rg.backend.Add(1)
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "backend")
	}))
	t.Cleanup(rg.srv.Close)
	rg.client = rg.srv.Client()
	rg.client.Timeout = 30 * time.Second
	return rg
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (rg *rig) do(t *testing.T, method string, hdr map[string]string) reply {
	t.Helper()
	req, err := http.NewRequest(method, rg.srv.URL+"/x", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := rg.client.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, string(b)}
}

// outcome is the Outcome of the request the handler finished last.
func (rg *rig) outcome(t *testing.T) Outcome {
	t.Helper()
	select {
	case o := <-rg.outcomes:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("the handler reported no outcome")
		return Outcome{}
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantStats(t *testing.T, f *Filter, want Stats) {
	t.Helper()
	if got := f.Stats(); got != want {
		t.Errorf("stats = %+v, want %+v", got, want)
	}
}

func TestFixedDelayAlways(t *testing.T) {
	const d = 100 * time.Millisecond
	rg := newRig(t, &Config{Delay: &Delay{Fixed: d, Percent: Percent(100)}})
	start := time.Now()
	rp := rg.do(t, http.MethodGet, nil)
	if el := time.Since(start); el < d {
		t.Errorf("request took %v, want at least the %v delay", el, d)
	}
	if rp.status != http.StatusOK || rp.body != "backend" {
		t.Errorf("got %d %q, want the backend's 200 after the delay", rp.status, rp.body)
	}
	out := rg.outcome(t)
	if out != (Outcome{Delayed: d, Flag: "DI"}) {
		t.Errorf("outcome = %+v", out)
	}
	wantStats(t, rg.f, Stats{DelaysInjected: 1})
}

func TestZeroPercentNeverInjects(t *testing.T) {
	rg := newRig(t, &Config{
		Delay: &Delay{Fixed: time.Hour, Percent: Percent(0)},
		Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Fraction{0, 1000000}},
	})
	for i := 0; i < 50; i++ {
		if rp := rg.do(t, http.MethodGet, nil); rp.status != http.StatusOK {
			t.Fatalf("request %d: %d", i, rp.status)
		}
		if out := rg.outcome(t); out != (Outcome{}) {
			t.Fatalf("request %d: outcome %+v", i, out)
		}
	}
	wantStats(t, rg.f, Stats{})
}

func TestAbortAlways(t *testing.T) {
	rg := newRig(t, &Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Percent(100)}})
	rp := rg.do(t, http.MethodGet, nil)
	if rp.status != http.StatusServiceUnavailable || rp.body != DefaultAbortBody {
		t.Errorf("got %d %q, want 503 %q", rp.status, rp.body, DefaultAbortBody)
	}
	if ct := rp.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("content-type %q", ct)
	}
	if out := rg.outcome(t); out != (Outcome{Aborted: true, Status: 503, Flag: "FI"}) {
		t.Errorf("outcome = %+v", out)
	}
	// HEAD: the same status and length, no body.
	rp = rg.do(t, http.MethodHead, nil)
	if rp.status != 503 || rp.body != "" || rp.header.Get("Content-Length") != strconv.Itoa(len(DefaultAbortBody)) {
		t.Errorf("HEAD: %d %q content-length %q", rp.status, rp.body, rp.header.Get("Content-Length"))
	}
	rg.outcome(t)
	if n := rg.backend.Load(); n != 0 {
		t.Errorf("%d aborted requests reached the backend", n)
	}
	wantStats(t, rg.f, Stats{AbortsInjected: 2})
}

func TestAbortBodyAndBodylessStatus(t *testing.T) {
	rg := newRig(t, &Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 418, Percent: Percent(100), Body: "short and stout"}})
	if rp := rg.do(t, http.MethodGet, nil); rp.status != 418 || rp.body != "short and stout" {
		t.Errorf("got %d %q", rp.status, rp.body)
	}
	rg = newRig(t, &Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 204, Percent: Percent(100)}})
	if rp := rg.do(t, http.MethodGet, nil); rp.status != 204 || rp.body != "" {
		t.Errorf("got %d %q, want an empty 204", rp.status, rp.body)
	}
}

// A gRPC abort answers a plain HTTP request with 200 and the body, as
// Envoy's local reply does.
func TestGRPCAbortOfPlainHTTPRequest(t *testing.T) {
	rg := newRig(t, &Config{Abort: &Abort{Kind: AbortGRPC, GRPCStatus: 14, Percent: Percent(100)}})
	rp := rg.do(t, http.MethodGet, nil)
	if rp.status != 200 || rp.body != DefaultAbortBody || rp.header.Get("Grpc-Status") != "" {
		t.Errorf("got %d %q grpc-status %q", rp.status, rp.body, rp.header.Get("Grpc-Status"))
	}
	if out := rg.outcome(t); out != (Outcome{Aborted: true, Status: 200, Flag: "FI"}) {
		t.Errorf("outcome = %+v", out)
	}
}

func TestDelayThenAbort(t *testing.T) {
	const d = 50 * time.Millisecond
	rg := newRig(t, &Config{
		Delay: &Delay{Fixed: d, Percent: Percent(100)},
		Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 500, Percent: Percent(100)},
	})
	start := time.Now()
	rp := rg.do(t, http.MethodGet, nil)
	if el := time.Since(start); el < d {
		t.Errorf("request took %v, want at least %v", el, d)
	}
	if rp.status != 500 {
		t.Errorf("status %d, want 500", rp.status)
	}
	if out := rg.outcome(t); out != (Outcome{Delayed: d, Aborted: true, Status: 500, Flag: "DI,FI"}) {
		t.Errorf("outcome = %+v", out)
	}
	wantStats(t, rg.f, Stats{DelaysInjected: 1, AbortsInjected: 1})
}

func TestHeaderDelay(t *testing.T) {
	rg := newRig(t, &Config{Delay: &Delay{FromHeader: true, Percent: Percent(100)}})
	start := time.Now()
	rp := rg.do(t, http.MethodGet, map[string]string{"x-envoy-fault-delay-request": "80"})
	if el := time.Since(start); el < 80*time.Millisecond {
		t.Errorf("request took %v, want at least 80ms", el)
	}
	if rp.status != 200 {
		t.Errorf("status %d", rp.status)
	}
	if out := rg.outcome(t); out.Delayed != 80*time.Millisecond || out.Flag != "DI" {
		t.Errorf("outcome = %+v", out)
	}
	for _, hdr := range []map[string]string{
		nil,
		{"x-envoy-fault-delay-request": "soon"},
		{"x-envoy-fault-delay-request": "-5"},
		{"x-envoy-fault-delay-request": "0"},
		{"x-envoy-fault-delay-request": "60000", "x-envoy-fault-delay-request-percentage": "0"},
	} {
		rg.do(t, http.MethodGet, hdr)
		if out := rg.outcome(t); out != (Outcome{}) {
			t.Errorf("%v: outcome %+v, want no delay", hdr, out)
		}
	}
	wantStats(t, rg.f, Stats{DelaysInjected: 1})
}

func TestHeaderAbort(t *testing.T) {
	rg := newRig(t, &Config{Abort: &Abort{Kind: AbortHeader, Percent: Percent(100)}})
	for _, tc := range []struct {
		hdr    map[string]string
		status int
		out    Outcome
	}{
		{map[string]string{"x-envoy-fault-abort-request": "429"}, 429, Outcome{Aborted: true, Status: 429, Flag: "FI"}},
		{map[string]string{"x-envoy-fault-abort-request": " 200 "}, 200, Outcome{Aborted: true, Status: 200, Flag: "FI"}},
		// The HTTP status wins over the gRPC one.
		{map[string]string{"x-envoy-fault-abort-request": "502", "x-envoy-fault-abort-grpc-request": "5"}, 502, Outcome{Aborted: true, Status: 502, Flag: "FI"}},
		// A gRPC status alone aborts a plain request with 200.
		{map[string]string{"x-envoy-fault-abort-grpc-request": "5"}, 200, Outcome{Aborted: true, Status: 200, Flag: "FI"}},
		// An invalid HTTP status falls back to the gRPC header.
		{map[string]string{"x-envoy-fault-abort-request": "600", "x-envoy-fault-abort-grpc-request": "5"}, 200, Outcome{Aborted: true, Status: 200, Flag: "FI"}},
		{nil, 200, Outcome{}},
		{map[string]string{"x-envoy-fault-abort-request": "600"}, 200, Outcome{}},
		{map[string]string{"x-envoy-fault-abort-request": "199"}, 200, Outcome{}},
		{map[string]string{"x-envoy-fault-abort-request": "oops"}, 200, Outcome{}},
		{map[string]string{"x-envoy-fault-abort-grpc-request": "17"}, 200, Outcome{}},
		{map[string]string{"x-envoy-fault-abort-request": "503", "x-envoy-fault-abort-request-percentage": "0"}, 200, Outcome{}},
	} {
		rp := rg.do(t, http.MethodGet, tc.hdr)
		out := rg.outcome(t)
		if rp.status != tc.status || out != tc.out {
			t.Errorf("%v: got %d %+v, want %d %+v", tc.hdr, rp.status, out, tc.status, tc.out)
		}
		if wantBody := map[bool]string{true: DefaultAbortBody, false: "backend"}[tc.out.Aborted]; rp.body != wantBody {
			t.Errorf("%v: body %q, want %q", tc.hdr, rp.body, wantBody)
		}
	}
	wantStats(t, rg.f, Stats{AbortsInjected: 5})
}

func TestHeaderMatchersGateTheFault(t *testing.T) {
	rg := newRig(t, &Config{
		Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Percent(100)},
		Headers: []router.HeaderMatcher{
			{Name: "x-chaos", String: &router.StringMatcher{Kind: router.StringExact, Value: "on"}},
			{Name: ":method", String: &router.StringMatcher{Kind: router.StringExact, Value: "GET"}},
			{Name: "x-exempt", Present: ptr(false)},
		},
	})
	for _, tc := range []struct {
		method string
		hdr    map[string]string
		want   int
	}{
		{http.MethodGet, map[string]string{"x-chaos": "on"}, 503},
		{http.MethodGet, map[string]string{"x-chaos": "off"}, 200},
		{http.MethodGet, nil, 200},
		{http.MethodPost, map[string]string{"x-chaos": "on"}, 200},
		{http.MethodGet, map[string]string{"x-chaos": "on", "x-exempt": "1"}, 200},
	} {
		if rp := rg.do(t, tc.method, tc.hdr); rp.status != tc.want {
			t.Errorf("%s %v: status %d, want %d", tc.method, tc.hdr, rp.status, tc.want)
		}
	}
}

func TestUpstreamClusterGate(t *testing.T) {
	rg := newRig(t, &Config{
		UpstreamCluster: "payments",
		Abort:           &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Percent(100)},
	})
	for cluster, want := range map[string]int{"payments": 503, "orders": 200, "": 200} {
		if rp := rg.do(t, http.MethodGet, map[string]string{"X-Test-Cluster": cluster}); rp.status != want {
			t.Errorf("cluster %q: status %d, want %d", cluster, rp.status, want)
		}
	}
}

func TestDownstreamNodesGate(t *testing.T) {
	rg := newRig(t, &Config{
		DownstreamNodes: []string{"web-1", "web-2"},
		Abort:           &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Percent(100)},
	})
	for _, tc := range []struct {
		hdr  map[string]string
		want int
	}{
		{map[string]string{"x-envoy-downstream-service-node": "web-2"}, 503},
		{map[string]string{"x-envoy-downstream-service-node": "web-3"}, 200},
		{nil, 200},
	} {
		if rp := rg.do(t, http.MethodGet, tc.hdr); rp.status != tc.want {
			t.Errorf("%v: status %d, want %d", tc.hdr, rp.status, tc.want)
		}
	}
}

// With max_active_faults 1, a second request while the first is being
// delayed goes through untouched and counts an overflow; the first one's
// client then leaves, which ends its delay at once.
func TestMaxActiveFaultsAndClientCancel(t *testing.T) {
	rg := newRig(t, &Config{
		Delay:           &Delay{Fixed: time.Hour, Percent: Percent(100)},
		MaxActiveFaults: ptr(uint32(1)),
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, rg.srv.URL, nil)
		resp, err := rg.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, "the first request to be delayed", func() bool { return rg.f.Stats().ActiveFaults == 1 })

	if rp := rg.do(t, http.MethodGet, nil); rp.status != 200 || rp.body != "backend" {
		t.Errorf("second request: %d %q, want the backend", rp.status, rp.body)
	}
	if out := rg.outcome(t); out != (Outcome{}) {
		t.Errorf("second request: outcome %+v, want none", out)
	}
	wantStats(t, rg.f, Stats{DelaysInjected: 1, ActiveFaults: 1, FaultsOverflow: 1})

	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("first request: %v, want context.Canceled", err)
	}
	out := rg.outcome(t)
	if out != (Outcome{Delayed: time.Hour, ClientGone: true, Status: 499, Flag: "DI,DC"}) {
		t.Errorf("first request: outcome %+v", out)
	}
	if !out.Done() {
		t.Error("Done() = false for a client that left")
	}
	waitFor(t, "the active fault to be released", func() bool { return rg.f.Stats().ActiveFaults == 0 })
	if n := rg.backend.Load(); n != 1 {
		t.Errorf("backend saw %d requests, want 1", n)
	}
}

// A Policy with max_active_faults 0 injects nothing; like Envoy it tries,
// and counts an overflow, for each fault that hits.
func TestMaxActiveFaultsZero(t *testing.T) {
	f := New(&Config{
		Delay:           &Delay{Fixed: time.Hour, Percent: Percent(100)},
		Abort:           &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Percent(100)},
		MaxActiveFaults: ptr(uint32(0)),
	})
	rec := httptest.NewRecorder()
	if out := f.Apply(rec, httptest.NewRequest(http.MethodGet, "/", nil), ""); out != (Outcome{}) {
		t.Errorf("outcome %+v, want none", out)
	}
	wantStats(t, f, Stats{FaultsOverflow: 2})
}

// A route's override replaces the filter's policy but shares its
// counters.
func TestApplyPolicyOverride(t *testing.T) {
	f := New(&Config{})
	p, err := Compile(&Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 500, Percent: Percent(100)}})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if out := f.Apply(httptest.NewRecorder(), r, ""); out.Aborted {
		t.Error("the empty filter policy aborted")
	}
	rec := httptest.NewRecorder()
	if out := f.ApplyPolicy(rec, r, "", p); !out.Aborted || rec.Code != 500 {
		t.Errorf("override: outcome %+v, status %d", out, rec.Code)
	}
	wantStats(t, f, Stats{AbortsInjected: 1})
}

// seeded returns a deterministic, goroutine-safe uniform source.
func seeded(seed uint64) func() uint64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func() uint64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Uint64()
	}
}

// Percentages over 10,000 decisions land within a few standard deviations
// of the configured share, header overrides included.
func TestPercentages(t *testing.T) {
	const n = 10000
	for _, tc := range []struct {
		name string
		cfg  *Config
		hdr  map[string]string
		want float64 // expected share of requests with a fault
	}{
		{"abort 25/100", &Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Percent(25)}}, nil, 0.25},
		{"abort 1234/10000", &Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Fraction{1234, 10000}}}, nil, 0.1234},
		{"abort 50000/1000000", &Config{Abort: &Abort{Kind: AbortGRPC, GRPCStatus: 4, Percent: Fraction{50000, 1000000}}}, nil, 0.05},
		{"delay 70/100", &Config{Delay: &Delay{Fixed: time.Nanosecond, Percent: Percent(70)}}, nil, 0.70},
		{"header abort capped by header", &Config{Abort: &Abort{Kind: AbortHeader, Percent: Percent(100)}},
			map[string]string{HeaderAbortRequest: "503", HeaderAbortRequestPercentage: "10"}, 0.10},
		{"header abort header capped by config", &Config{Abort: &Abort{Kind: AbortHeader, Percent: Percent(50)}},
			map[string]string{HeaderAbortRequest: "503", HeaderAbortRequestPercentage: "90"}, 0.50},
		{"header abort bad percentage keeps config", &Config{Abort: &Abort{Kind: AbortHeader, Percent: Percent(30)}},
			map[string]string{HeaderAbortRequest: "503", HeaderAbortRequestPercentage: "4294967296"}, 0.30},
		{"header delay percentage", &Config{Delay: &Delay{FromHeader: true, Percent: Fraction{10000, 10000}}},
			map[string]string{HeaderDelayRequest: "0", HeaderDelayRequestPercentage: "0"}, 0},
		{"header delay 1ns share", &Config{Delay: &Delay{FromHeader: true, Percent: Fraction{8000, 10000}}},
			map[string]string{HeaderDelayRequest: "1", HeaderDelayRequestPercentage: "2000"}, 0.20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := New(tc.cfg)
			f.rand = seeded(42)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for k, v := range tc.hdr {
				r.Header.Set(k, v)
			}
			if tc.name == "header delay 1ns share" {
				// 1 ms per hit would make this test 2 s long; the share
				// is what is measured here, the sleep is tested elsewhere.
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				r = r.WithContext(ctx)
			}
			hits := 0
			for i := 0; i < n; i++ {
				if out := f.Apply(httptest.NewRecorder(), r, ""); out.Flag != "" {
					hits++
				}
			}
			// Binomial standard deviation; 5 of them is a wide, safe band
			// (and the source is seeded, so this is deterministic anyway).
			sd := 1 / float64(n) * math.Sqrt(float64(n)*tc.want*(1-tc.want))
			if got := float64(hits) / n; got < tc.want-5*sd-1e-9 || got > tc.want+5*sd+1e-9 {
				t.Errorf("share %.4f, want %.4f ± %.4f", got, tc.want, 5*sd)
			}
		})
	}
}
