package tailbench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/internal/consulagent"
)

// buildOutrigger builds the proxy from this repository once per test.
func buildOutrigger(t *testing.T) string {
	t.Helper()
	root, err := consulagent.RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := BuildOutrigger(ctx, root, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// smallConfig is a whole run in a few seconds: 100 req/s for 1 s a setup.
func smallConfig(t *testing.T, bin string) Config {
	c := DefaultConfig()
	c.OutriggerBin, c.WorkDir = bin, t.TempDir()
	c.Rate, c.Duration, c.Warmup, c.Workers = 100, time.Second, 200*time.Millisecond, 8
	c.Log = hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: testWriter{t}})
	return c
}

// TestSmoke runs every setup with tiny settings against a freshly built
// outrigger: every row is measured and no setup fails. It asserts counts,
// never latencies.
func TestSmoke(t *testing.T) {
	c := smallConfig(t, buildOutrigger(t))
	ctx, cancel := context.WithTimeout(context.Background(), c.Budget())
	defer cancel()
	rep, err := Run(ctx, c)
	if err != nil {
		t.Fatalf("setup failure: %v", err)
	}
	if len(rep.Rows) != len(Setups) {
		t.Fatalf("%d rows, want %d", len(rep.Rows), len(Setups))
	}
	for i, s := range Setups {
		row := rep.Rows[i]
		if row.Setup != s {
			t.Errorf("row %d is %q, want %q", i, row.Setup, s)
		}
		if row.Sent == 0 || row.OK == 0 {
			t.Errorf("%s: sent %d, ok %d: no load went through", s, row.Sent, row.OK)
		}
		if row.Failed > 0 {
			t.Logf("%s: %d failed: %s", s, row.Failed, row.ErrorSummary)
		}
		if got := row.BackendTotal().Requests; got < row.Sent {
			t.Errorf("%s: backends saw %d requests of %d sent", s, got, row.Sent)
		}
		if (s == SetupDirect) != (row.Proxy == nil) {
			t.Errorf("%s: proxy counters %+v", s, row.Proxy)
		}
		// The slow backend answers every 10th request late; the per-try
		// timeout must have sent some of those elsewhere (a count, not a
		// latency).
		if (s == SetupRetry || s == SetupHedge) && row.Proxy != nil && row.Proxy.Retries < 1 {
			t.Errorf("%s: no retry in %+v: is the policy in force?", s, *row.Proxy)
		}
		t.Logf("%s: p50 %v p99 %v max %v, %.3f tries/request", s, row.P50, row.P99, row.Max, row.TriesPerRequest())
	}
	rep.Command = "go test ./bench/tailbench"
	var b bytes.Buffer
	if err := WriteMarkdown(&b, rep); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, s := range Setups {
		if !strings.Contains(md, "| "+string(s)+" |") {
			t.Errorf("report has no row for %q:\n%s", s, md)
		}
	}
	if !strings.Contains(md, "the baseline's") || strings.Contains(md, "Incomplete run") {
		t.Errorf("report has no reading:\n%s", md)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
