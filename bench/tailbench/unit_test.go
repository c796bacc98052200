package tailbench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/loadgen"
	"github.com/outrigger-mesh/outrigger/bench/targets"
	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.OutriggerBin, ok.WorkDir = "/bin/true", "/tmp"
	if err := ok.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, tc := range []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"no binary", func(c *Config) { c.OutriggerBin = "" }, "no outrigger binary"},
		{"no work dir", func(c *Config) { c.WorkDir = "" }, "no work directory"},
		{"zero rate", func(c *Config) { c.Rate = 0 }, "rate must be a positive number"},
		{"zero duration", func(c *Config) { c.Duration = 0 }, "duration must be positive"},
		{"negative warm-up", func(c *Config) { c.Warmup = -time.Second }, "warm-up must not be negative"},
		{"no worker", func(c *Config) { c.Workers = 0 }, "workers must be at least 1"},
		{"fraction above 1", func(c *Config) { c.SlowFraction = 1.5 }, "slow fraction must be in [0, 1]"},
		{"slow delay too long", func(c *Config) { c.SlowDelay = 3 * time.Second }, "slow delay must be in"},
		{"negative service time", func(c *Config) { c.ServiceTime = -1 }, "service time must be in"},
		{"no per-try timeout", func(c *Config) { c.PerTryTimeout = 0 }, "per-try timeout must be positive"},
		{"no retry", func(c *Config) { c.NumRetries = 0 }, "retries must be in [1, 10]"},
		{"negative backoff", func(c *Config) { c.BackoffBase = -1 }, "backoff base must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestIsSlow(t *testing.T) {
	for _, tc := range []struct {
		f    float64
		want int
	}{{0, 0}, {0.1, 100}, {0.25, 250}, {1.0 / 3, 333}, {1, 1000}} {
		n := 0
		for k := int64(1); k <= 1000; k++ {
			if isSlow(k, tc.f) {
				n++
			}
		}
		if n != tc.want {
			t.Errorf("fraction %v: %d slow of 1000, want %d", tc.f, n, tc.want)
		}
	}
	if isSlow(9, 0.1) || !isSlow(10, 0.1) {
		t.Error("fraction 0.1: the 10th request, not the 9th, is the slow one")
	}
}

func TestStartBackendRejects(t *testing.T) {
	for _, tc := range []struct {
		name       string
		service    time.Duration
		frac       float64
		slow       time.Duration
		wantSubstr string
	}{
		{"negative service", -1, 0, 0, "negative delay"},
		{"negative slow", 0, 0.1, -1, "negative delay"},
		{"fraction", 0, 2, 0, "outside [0, 1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := StartBackend("x", tc.service, tc.frac, tc.slow)
			if err == nil {
				b.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.wantSubstr) || !strings.Contains(err.Error(), "backend x") {
				t.Fatalf("error %q lacks %q or the backend's name", err, tc.wantSubstr)
			}
		})
	}
}

// TestBackendCountsCut: a client that leaves during a slow answer is
// counted as cut, a patient one as served.
func TestBackendCountsCut(t *testing.T) {
	b, err := StartBackend("slow", 0, 1, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	})
	get := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.Addr()+"/", nil)
		resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && string(body) != "ok\n" {
			err = errors.New("body " + string(body))
		}
		return err
	}
	if err := get(20 * time.Millisecond); err == nil {
		t.Fatal("a 300 ms answer arrived within 20 ms")
	}
	if err := get(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := waitIdle(context.Background(), []*Backend{b}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, want := b.Counts(), (BackendCounts{Requests: 2, SlowServed: 1, SlowCut: 1}); got != want {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
	if d := b.Counts().Sub(BackendCounts{Requests: 1, SlowCut: 1}); d != (BackendCounts{Requests: 1, SlowServed: 1}) {
		t.Fatalf("Sub: %+v", d)
	}
}

func TestWaitIdleTimesOut(t *testing.T) {
	b, err := StartBackend("stuck", 0, 1, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	go func() {
		resp, err := http.Get("http://" + b.Addr() + "/")
		if err == nil {
			resp.Body.Close()
		}
	}()
	deadline := time.Now().Add(5 * time.Second)
	for b.InFlight() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	err = waitIdle(context.Background(), []*Backend{b}, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "stuck has 1 request(s) in flight") {
		t.Fatalf("waitIdle = %v, want the busy backend named", err)
	}
}

func TestRoundRobin(t *testing.T) {
	if _, err := newRoundRobin(nil); err == nil {
		t.Fatal("round robin over nothing accepted")
	}
	var bs []*Backend
	var addrs []string
	for _, n := range []string{"a", "b", "c"} {
		b, err := StartBackend(n, 0, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		bs = append(bs, b)
		addrs = append(addrs, b.Addr())
	}
	rr, err := newRoundRobin(addrs)
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Close()
	res, err := loadgen.Run(context.Background(), rr, loadgen.Options{Mode: loadgen.ClosedLoop, Duration: 5 * time.Second, MaxRequests: 30, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 30 {
		t.Fatalf("ok %d (%s), want 30", res.OK, res.ErrorSummary())
	}
	for _, b := range bs {
		if n := b.Counts().Requests; n != 10 {
			t.Errorf("backend %s got %d of 30, want 10", b.Name(), n)
		}
	}
}

// TestBootstrapLoads checks every proxy setup's bootstrap with the proxy's
// own loader, so a field it refuses shows here, not as a proxy that exits.
func TestBootstrapLoads(t *testing.T) {
	c := DefaultConfig()
	backends := []string{"127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003"}
	for _, s := range Setups[1:] {
		for _, backoff := range []time.Duration{0, 5 * time.Millisecond} {
			c.BackoffBase = backoff
			y, err := renderBootstrap(9901, 10000, backends, policyYAML(s, c))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bootstrap.Load("", y); err != nil {
				t.Fatalf("%s (backoff %v): %v\n%s", s, backoff, err, y)
			}
			for _, want := range append([]string{"lb_policy: ROUND_ROBIN"}, backends...) {
				want = strings.Replace(want, "127.0.0.1:", "port_value: ", 1)
				if !strings.Contains(y, want) {
					t.Errorf("%s: bootstrap lacks %q:\n%s", s, want, y)
				}
			}
			if got := strings.Contains(y, "hedge_on_per_try_timeout: true"); got != (s == SetupHedge) {
				t.Errorf("%s: hedging %v", s, got)
			}
			if got := strings.Contains(y, "per_try_timeout: 0.025s"); got != (s != SetupNoRetry) {
				t.Errorf("%s: per-try timeout %v", s, got)
			}
		}
	}
	if _, err := renderBootstrap(1, 2, []string{"nohost"}, ""); err == nil || !strings.Contains(err.Error(), `"nohost"`) {
		t.Fatalf("bad backend address: %v", err)
	}
}

const metricsText = `# HELP outrigger_upstream_rq_total Upstream requests sent.
# TYPE outrigger_upstream_rq_total counter
outrigger_upstream_rq_total{cluster="other"} 99
outrigger_upstream_rq_total{cluster="tail"} 1034
outrigger_upstream_rq_retry_total{cluster="tail"} 34
outrigger_upstream_rq_retry_overflow_total{cluster="tail"} 1
outrigger_upstream_rq_error_total{cluster="tail",kind="timeout"} 3.4e+01
outrigger_upstream_rq_error_total{cluster="tail",kind="canceled"} 2
outrigger_upstream_rq_error_total{cluster="tail",kind="reset"} 7
go_goroutines 12
`

func TestParseUpstreamStats(t *testing.T) {
	s, err := parseUpstreamStats(metricsText, "tail")
	if err != nil {
		t.Fatal(err)
	}
	want := UpstreamStats{Attempts: 1034, Retries: 34, RetryOverflow: 1, Timeouts: 34, Canceled: 2}
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	if d := s.Sub(UpstreamStats{Attempts: 34, Retries: 4}); d.Attempts != 1000 || d.Retries != 30 || d.Timeouts != 34 {
		t.Fatalf("Sub: %+v", d)
	}
	for _, tc := range []struct {
		name, text, wantErr string
	}{
		{"missing retries", strings.Replace(metricsText, "outrigger_upstream_rq_retry_total", "renamed", 1),
			`metrics lack outrigger_upstream_rq_retry_total{cluster="tail"}`},
		{"missing kind", strings.Replace(metricsText, `kind="canceled"`, `kind="gone"`, 1),
			`outrigger_upstream_rq_error_total{cluster="tail",kind="canceled"}`},
		{"other cluster only", strings.ReplaceAll(metricsText, `"tail"`, `"x"`), "metrics lack"},
		{"bad value", metricsText + "outrigger_upstream_rq_total{cluster=\"y\"} many\n", "value in"},
		{"no value", metricsText + "outrigger_upstream_rq_total{cluster=\"y\"}\n", "no value"},
		{"bad label", metricsText + "outrigger_upstream_rq_total{cluster=y} 1\n", "label"},
		{"unclosed labels", metricsText + "outrigger_upstream_rq_total}{ 1\n", "malformed"},
		{"bare name", metricsText + "lonely\n", "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseUpstreamStats(tc.text, "tail")
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

// TestScrapeFailures: an admin that answers an error, and one that is
// gone, are setup failures naming the address (the real admin is read in
// TestSmoke).
func TestScrapeFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c := &http.Client{Timeout: 2 * time.Second}
	if _, err := scrapeUpstreamStats(context.Background(), c, srv.URL+"/stats/prometheus"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503 admin: %v", err)
	}
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, metricsText) }))
	if s, err := scrapeUpstreamStats(context.Background(), c, ok.URL); err != nil || s.Attempts != 1034 {
		t.Fatalf("scrape: %+v, %v", s, err)
	}
	url := ok.URL
	ok.Close()
	if _, err := scrapeUpstreamStats(context.Background(), c, url); err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("closed admin: %v", err)
	}
	if _, err := scrapeUpstreamStats(context.Background(), c, "http://\x00"); err == nil {
		t.Fatal("bad URL accepted")
	}
}

// TestRunSetupFailures: a binary that is missing, not executable, or exits
// at once is a setup failure naming it; the rows measured before stay in
// the report.
func TestRunSetupFailures(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	exits := filepath.Join(dir, "exits")
	if err := os.WriteFile(exits, []byte("#!/bin/sh\necho 'boom: refusing to start' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.WorkDir = t.TempDir()
	c.Rate, c.Duration, c.Warmup, c.Workers = 50, 200*time.Millisecond, 0, 2

	c.OutriggerBin = filepath.Join(dir, "missing")
	if _, err := Run(context.Background(), c); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing binary: %v", err)
	}
	c.OutriggerBin = notExec
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "not an executable file") {
		t.Errorf("plain file: %v", err)
	}
	c.OutriggerBin = dir
	if _, err := Run(context.Background(), c); err == nil || !strings.Contains(err.Error(), "not an executable file") {
		t.Errorf("directory: %v", err)
	}
	c.OutriggerBin = ""
	if rep, err := Run(context.Background(), c); err == nil || rep != nil {
		t.Errorf("invalid config: %v, %v", rep, err)
	}

	c.OutriggerBin = exits
	rep, err := Run(context.Background(), c)
	if err == nil || !errors.Is(err, targets.ErrExited) || !strings.Contains(err.Error(), "boom: refusing to start") ||
		!strings.Contains(err.Error(), string(SetupNoRetry)) {
		t.Fatalf("exiting proxy: %v", err)
	}
	if rep == nil || len(rep.Rows) != 1 || rep.Rows[0].Setup != SetupDirect || rep.Rows[0].OK == 0 {
		t.Fatalf("partial report: %+v", rep)
	}
	var b bytes.Buffer
	if err := WriteMarkdown(&b, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Incomplete run") {
		t.Errorf("partial report does not say so:\n%s", b.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.OutriggerBin = exits
	if _, err := Run(ctx, c); err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run: %v", err)
	}
}

func TestMarkdown(t *testing.T) {
	c := DefaultConfig()
	row := func(s Setup, p99 time.Duration, failed int64) Row {
		r := Row{Setup: s, Policy: policyYAML(s, c), Sent: 5000, OK: 5000 - failed, Failed: failed,
			P50: 1200 * time.Microsecond, P90: 2 * time.Millisecond, P99: p99, P999: p99 + time.Millisecond, Max: p99 + 2*time.Millisecond,
			Backends: []BackendCounts{{Requests: 1700, SlowServed: 0, SlowCut: 167}, {Requests: 1700}, {Requests: 1700}}}
		if s != SetupDirect {
			r.Proxy = &UpstreamStats{Attempts: 5100, Retries: 100, RetryOverflow: 2, Timeouts: 100}
		}
		if failed > 0 {
			r.ErrorSummary = "3× http1: status 503"
		}
		return r
	}
	rep := &Report{Command: "outrigger-tailbench", Started: time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC), Config: c,
		Backends: []string{"slow", "fast-1", "fast-2"},
		Rows: []Row{row(SetupDirect, 201*time.Millisecond, 0), row(SetupNoRetry, 200*time.Millisecond, 0),
			row(SetupRetry, 45*time.Millisecond, 3), row(SetupHedge, 50*time.Millisecond, 0)}}
	var b bytes.Buffer
	if err := WriteMarkdown(&b, rep); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"outrigger-tailbench\n", "every 10th request", "| outrigger, per-try timeout + retries | 5000 | 1.20 ms | 2.00 ms | 45.0 ms | 46.0 ms | 47.0 ms | 3 | 1.020 | 100 (+2 refused) | 0 / 167 | 1700 / 1700 / 1700 |",
		"**0.23× the baseline's**", "**0.25× the baseline's** and 1.11× the retries'", "hedge_on_per_try_timeout: true",
		"Failures, outrigger, per-try timeout + retries: 3× http1: status 503", "Failed requests: outrigger, per-try timeout + retries: 3",
		"so the slow try a hedge keeps running never wins", "about 3.33 % of the first tries",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	rep.Rows[2].P99 = 0
	if r := Reading(rep); !strings.Contains(r, "brings the p99 to —: **— the baseline's**") {
		t.Errorf("a row with no success should read as dashes: %s", r)
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{ms(0), "—"}, {ms(1500 * time.Microsecond), "1.50 ms"}, {ms(45 * time.Millisecond), "45.0 ms"}, {ms(201 * time.Millisecond), "201 ms"},
		{ratio(1, 0), "—"}, {ratio(1, 4), "0.25×"},
		{every(0), "never"}, {every(1), "request"}, {every(0.5), "2nd request"}, {every(1.0 / 3), "3rd request"}, {every(0.3), "3.33 requests"}, {every(0.01), "100th request"},
		{ordinal(1), "1st"}, {ordinal(12), "12th"}, {ordinal(23), "23rd"}, {ordinal(111), "111th"},
		{trimFloat(500), "500"}, {trimFloat(2.5), "2.5"}, {yamlDuration(25 * time.Millisecond), "0.025s"},
		{indent("a\n\nb\n", 2), "  a\n\n  b\n"}, {indent("", 4), ""},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestBuildOutriggerFailure(t *testing.T) {
	root := t.TempDir()
	_, err := BuildOutrigger(context.Background(), root, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "go build outrigger in "+root) {
		t.Fatalf("build outside the repository: %v", err)
	}
}
