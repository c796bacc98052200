// Package tailbench is the bench figure for one slow backend (the
// resilience issue's test e): three HTTP/1.1 backends on loopback, one of
// which answers a fraction of its requests late, reached directly by a
// round-robin client (the floor) and through outrigger with no retry
// policy, with a per-try timeout and retries on another host, and with
// hedging on the per-try timeout. Every setup gets the same open-loop load
// back to back in one run, so their tails compare within the run. It
// measures; it asserts nothing about the figures.
package tailbench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/bench/loadgen"
	"github.com/outrigger-mesh/outrigger/bench/report"
)

// Setup is one row of the figure.
type Setup string

// The setups, in the order they run.
const (
	SetupDirect  Setup = "direct (client round robin, no proxy)"
	SetupNoRetry Setup = "outrigger, no retry policy"
	SetupRetry   Setup = "outrigger, per-try timeout + retries"
	SetupHedge   Setup = "outrigger, per-try timeout + retries + hedging"
)

// Setups is every row, in run order.
var Setups = []Setup{SetupDirect, SetupNoRetry, SetupRetry, SetupHedge}

// proxyName names a setup's proxy process, bootstrap and log.
func proxyName(s Setup) string {
	switch s {
	case SetupNoRetry:
		return "outrigger-noretry"
	case SetupRetry:
		return "outrigger-retry"
	default:
		return "outrigger-hedge"
	}
}

// Config is one run's settings.
type Config struct {
	// OutriggerBin is the proxy binary; WorkDir receives the bootstraps
	// and the proxies' logs.
	OutriggerBin string
	WorkDir      string

	// Rate (requests per second) for Duration per setup, after Warmup at
	// the same rate (not measured); Workers bounds the requests in flight
	// and the client connections.
	Rate     float64
	Duration time.Duration
	Warmup   time.Duration
	Workers  int

	// The slow backend answers SlowFraction of its requests after
	// SlowDelay; every other answer takes ServiceTime.
	SlowFraction float64
	SlowDelay    time.Duration
	ServiceTime  time.Duration

	// The retry policy of the retry and hedge setups. BackoffBase zero
	// keeps Envoy's default (25 ms).
	PerTryTimeout time.Duration
	NumRetries    int
	BackoffBase   time.Duration

	// Log is where progress goes; nil discards it.
	Log hclog.Logger
}

// DefaultConfig is the full run: 500 req/s for 10 s per setup, one backend
// of three answering 10 % of its requests after 200 ms.
func DefaultConfig() Config {
	return Config{
		Rate:          500,
		Duration:      10 * time.Second,
		Warmup:        time.Second,
		Workers:       32,
		SlowFraction:  0.1,
		SlowDelay:     200 * time.Millisecond,
		ServiceTime:   time.Millisecond,
		PerTryTimeout: 25 * time.Millisecond,
		NumRetries:    2,
	}
}

// maxSlowDelay keeps the slow answers inside the load generator's grace
// after the last scheduled request (2 s), so none is cut by the run's end.
const maxSlowDelay = time.Second

// Validate checks the settings.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("tailbench: "+format, args...)) }
	if c.OutriggerBin == "" {
		bad("no outrigger binary")
	}
	if c.WorkDir == "" {
		bad("no work directory")
	}
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		bad("rate must be a positive number, got %v", c.Rate)
	}
	if c.Duration <= 0 {
		bad("duration must be positive, got %v", c.Duration)
	}
	if c.Warmup < 0 {
		bad("warm-up must not be negative, got %v", c.Warmup)
	}
	if c.Workers < 1 {
		bad("workers must be at least 1, got %d", c.Workers)
	}
	if !(c.SlowFraction >= 0 && c.SlowFraction <= 1) {
		bad("slow fraction must be in [0, 1], got %v", c.SlowFraction)
	}
	if c.SlowDelay < 0 || c.SlowDelay > maxSlowDelay {
		bad("slow delay must be in [0, %v], got %v", maxSlowDelay, c.SlowDelay)
	}
	if c.ServiceTime < 0 || c.ServiceTime > maxSlowDelay {
		bad("service time must be in [0, %v], got %v", maxSlowDelay, c.ServiceTime)
	}
	if c.PerTryTimeout <= 0 {
		bad("per-try timeout must be positive, got %v", c.PerTryTimeout)
	}
	if c.NumRetries < 1 || c.NumRetries > 10 {
		bad("retries must be in [1, 10], got %d", c.NumRetries)
	}
	if c.BackoffBase < 0 {
		bad("backoff base must not be negative, got %v", c.BackoffBase)
	}
	return errors.Join(errs...)
}

// Budget is an upper bound on the wall time of a run with these settings:
// per setup, the warm-up and the measured load, each with the slow
// answers' tail and a second to start and stop a proxy; plus the backends.
func (c Config) Budget() time.Duration {
	perSetup := c.Warmup + c.Duration + 2*(c.SlowDelay+time.Second)
	return time.Duration(len(Setups))*perSetup + 5*time.Second
}

// Row is what one setup measured.
type Row struct {
	Setup Setup
	// Policy is the YAML under the route action (empty: none).
	Policy string
	// Sent is requests the generator started; OK and Failed (errors and
	// requests never sent) add up to the scheduled count.
	Sent, OK, Failed int64
	ErrorSummary     string
	// Latency of the successful requests, from each one's scheduled send
	// time (open loop, so a stall is not hidden).
	P50, P90, P99, P999, Max time.Duration
	// GenLagP99 is how late the generator itself sent: large on the
	// direct row too means the machine was busy.
	GenLagP99 time.Duration
	// Backends are the backends' own counters over the measured load, in
	// the order of Report.Backends.
	Backends []BackendCounts
	// Proxy holds the proxy's counters over the measured load; nil for
	// the direct row.
	Proxy *UpstreamStats
}

// BackendTotal sums the backends' counters.
func (r Row) BackendTotal() BackendCounts {
	var t BackendCounts
	for _, b := range r.Backends {
		t.Requests += b.Requests
		t.SlowServed += b.SlowServed
		t.SlowCut += b.SlowCut
	}
	return t
}

// TriesPerRequest is upstream tries per client request: the proxy's
// upstream_rq_total, or the backends' count for the direct row.
func (r Row) TriesPerRequest() float64 {
	if r.Sent == 0 {
		return 0
	}
	if r.Proxy != nil {
		return r.Proxy.Attempts / float64(r.Sent)
	}
	return float64(r.BackendTotal().Requests) / float64(r.Sent)
}

// Report is one run.
type Report struct {
	Command   string
	Started   time.Time
	Took      time.Duration
	Machine   report.Machine
	Outrigger string // the binary's --version
	Config    Config
	// Backends names the backends in cluster order.
	Backends []string
	Rows     []Row
}

// Row returns the row of a setup.
func (r *Report) Row(s Setup) (Row, bool) {
	for _, row := range r.Rows {
		if row.Setup == s {
			return row, true
		}
	}
	return Row{}, false
}

// Run starts the backends and measures every setup in turn. An error is a
// setup failure (a backend or proxy that would not start or exited, a
// metric that could not be read, the context ending); the report then holds
// the rows measured so far. Slow figures and failed requests are results,
// not errors.
func Run(ctx context.Context, c Config) (rep *Report, err error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	log := c.Log
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if st, err := os.Stat(c.OutriggerBin); err != nil {
		return nil, fmt.Errorf("tailbench: outrigger binary: %w", err)
	} else if st.IsDir() || st.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("tailbench: outrigger binary %s is not an executable file", c.OutriggerBin)
	}
	rep = &Report{
		Started:   time.Now(),
		Machine:   report.DescribeMachine(),
		Outrigger: binaryVersion(ctx, c.OutriggerBin),
		Config:    c,
	}
	rep.Config.Log = nil // the report keeps settings, not the logger

	var backends []*Backend
	defer func() {
		for _, b := range backends {
			if cerr := b.Close(); cerr != nil && err == nil {
				err = cerr
			}
		}
		rep.Took = time.Since(rep.Started)
	}()
	for i := range 3 {
		name, frac := fmt.Sprintf("fast-%d", i), 0.0
		if i == 0 {
			name, frac = "slow", c.SlowFraction
		}
		b, err := StartBackend(name, c.ServiceTime, frac, c.SlowDelay)
		if err != nil {
			return rep, err
		}
		backends = append(backends, b)
		rep.Backends = append(rep.Backends, name)
	}
	for _, s := range Setups {
		log.Info("measuring", "setup", string(s), "rate", c.Rate, "duration", c.Duration)
		row, err := runSetup(ctx, c, s, backends)
		if err != nil {
			return rep, fmt.Errorf("tailbench: %s: %w", s, err)
		}
		log.Info("measured", "setup", string(s), "p50", row.P50, "p99", row.P99, "max", row.Max,
			"failed", row.Failed, "tries_per_request", fmt.Sprintf("%.3f", row.TriesPerRequest()))
		rep.Rows = append(rep.Rows, row)
	}
	return rep, nil
}

// runSetup warms up, then measures one setup.
func runSetup(ctx context.Context, c Config, s Setup, backends []*Backend) (row Row, err error) {
	addrs := make([]string, len(backends))
	for i, b := range backends {
		addrs[i] = b.Addr()
	}
	row = Row{Setup: s, Policy: policyYAML(s, c)}

	var client loadgen.Client
	var px *proxy
	if s == SetupDirect {
		if client, err = newRoundRobin(addrs); err != nil {
			return row, err
		}
	} else {
		if px, err = startProxy(ctx, c.OutriggerBin, c.WorkDir, proxyName(s), addrs, row.Policy); err != nil {
			return row, err
		}
		defer func() {
			if serr := px.stop(); serr != nil && err == nil {
				err = serr
			}
		}()
		if client, err = loadgen.NewClient(loadgen.Target{Protocol: loadgen.HTTP1, Addr: px.listen}); err != nil {
			return row, err
		}
	}
	defer client.Close()

	opts := loadgen.Options{Mode: loadgen.OpenLoop, Rate: c.Rate, Duration: c.Warmup, Workers: c.Workers}
	if c.Warmup > 0 {
		if _, err := loadgen.Run(ctx, client, opts); err != nil {
			return row, fmt.Errorf("warm-up: %w", err)
		}
	}
	settle := c.SlowDelay + time.Second
	if err := waitIdle(ctx, backends, settle); err != nil {
		return row, err
	}
	before := counts(backends)
	var pBefore UpstreamStats
	if px != nil {
		if pBefore, err = px.upstreamStats(ctx); err != nil {
			return row, err
		}
	}

	opts.Duration = c.Duration
	res, err := loadgen.Run(ctx, client, opts)
	if err != nil {
		return row, err
	}
	// Tries the proxy cut or abandoned may still be ending at a backend.
	if err := waitIdle(ctx, backends, settle); err != nil {
		return row, err
	}
	after := counts(backends)
	for i := range after {
		row.Backends = append(row.Backends, after[i].Sub(before[i]))
	}
	if px != nil {
		if err := px.alive(); err != nil {
			return row, err
		}
		pAfter, err := px.upstreamStats(ctx)
		if err != nil {
			return row, err
		}
		d := pAfter.Sub(pBefore)
		row.Proxy = &d
	}
	fillLatency(&row, res)
	return row, nil
}

func counts(bs []*Backend) []BackendCounts {
	out := make([]BackendCounts, len(bs))
	for i, b := range bs {
		out[i] = b.Counts()
	}
	return out
}

// waitIdle waits until no backend has a request in its handler.
func waitIdle(ctx context.Context, bs []*Backend, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		busy := ""
		for _, b := range bs {
			if n := b.InFlight(); n > 0 {
				busy = fmt.Sprintf("%s has %d request(s) in flight", b.Name(), n)
				break
			}
		}
		if busy == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tailbench: backends not idle after %v: %s: %w", timeout, busy, ctx.Err())
		case <-tick.C:
		}
	}
}

func fillLatency(row *Row, res *loadgen.Result) {
	row.Sent = res.Scheduled - res.Unsent
	row.OK = res.OK
	row.Failed = res.Failed()
	row.ErrorSummary = res.ErrorSummary()
	if h := res.Latency; h != nil && h.TotalCount() > 0 {
		row.P50 = time.Duration(h.ValueAtQuantile(50))
		row.P90 = time.Duration(h.ValueAtQuantile(90))
		row.P99 = time.Duration(h.ValueAtQuantile(99))
		row.P999 = time.Duration(h.ValueAtQuantile(99.9))
		row.Max = time.Duration(h.Max())
	}
	if h := res.SendLag; h != nil && h.TotalCount() > 0 {
		row.GenLagP99 = time.Duration(h.ValueAtQuantile(99))
	}
}
