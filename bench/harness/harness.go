package harness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/bench/loadgen"
	"github.com/outrigger-mesh/outrigger/bench/procstat"
	"github.com/outrigger-mesh/outrigger/bench/report"
	"github.com/outrigger-mesh/outrigger/bench/targets"
)

// Target names, in the order they are started and listed.
const (
	Direct            = "direct"
	Outrigger         = targets.NameOutrigger
	Outrigger2Hop     = targets.NameOutrigger2Hop
	Outrigger2HopMTLS = targets.NameOutrigger2HopMTLS
	Outrigger2HopAB   = targets.NameOutrigger2HopAB
	Nginx             = "nginx"
	HAProxy           = "haproxy"
	Caddy             = "caddy"
	GoFloor           = targets.NameGoFloor
	GoLean            = targets.NameGoLean
)

// AllTargets lists every target the harness knows.
var AllTargets = []string{Direct, Outrigger, Outrigger2Hop, Outrigger2HopMTLS, Outrigger2HopAB, Nginx, HAProxy, Caddy, GoFloor, GoLean}

// DefaultTargets are the targets of a run that names none: all but the
// mTLS ones, which `make bench-mtls` compares with the plaintext path, and
// the go-floor and go-lean instruments (`make bench-floor`).
var DefaultTargets = slices.DeleteFunc(slices.Clone(AllTargets), func(t string) bool {
	return t == Outrigger2HopMTLS || t == Outrigger2HopAB || t == GoFloor || t == GoLean
})

// Config is one bench run.
type Config struct {
	Scenarios []Scenario
	// Targets to include, by name; missing binaries are skipped with a note.
	Targets []string
	Reps    int
	// ABReps are the repetitions of the A/B target (0: Reps): its verdict
	// needs more than the others' tables.
	ABReps int
	// Upstream is the running backend.
	Upstream targets.Upstream
	// OutriggerBin is the proxy under test; empty skips the outrigger targets.
	OutriggerBin string
	// BenchBin is the outrigger-bench binary, which serves the go-floor
	// and go-lean targets (`outrigger-bench floor`); empty skips them.
	BenchBin string
	// TmpDir holds the peers' configs and logs.
	TmpDir string
	// ProfileDir, when set, is where --profile writes outrigger's pprof files.
	ProfileDir string
	// ProfileOneHop takes the one-hop profile (--profile) into ProfileDir.
	ProfileOneHop bool
	// ProfileTargets are outrigger targets whose proxy nearest the backend
	// is profiled under the first scenario's open-loop load
	// (--profile-target), into ProfileDir.
	ProfileTargets []string
	// ProfileSeconds is the length of a --profile-target CPU profile
	// (default 10).
	ProfileSeconds int
	// CrossCheck runs wrk/h2load/ghz after each scenario's repetitions.
	CrossCheck bool
	Command    string
	Log        hclog.Logger
	// Proc reads /proc; zero means the real one.
	Proc procstat.FS
}

func (c *Config) validate() error {
	if c.Reps < 1 {
		return fmt.Errorf("harness: reps must be at least 1, got %d", c.Reps)
	}
	if len(c.Scenarios) == 0 {
		return errors.New("harness: no scenarios")
	}
	for _, s := range c.Scenarios {
		if err := s.Validate(); err != nil {
			return err
		}
	}
	for _, t := range c.Targets {
		if !slices.Contains(AllTargets, t) {
			return fmt.Errorf("harness: unknown target %q (known: %v)", t, AllTargets)
		}
	}
	for _, t := range c.ProfileTargets {
		if !slices.Contains([]string{Outrigger, Outrigger2Hop, Outrigger2HopMTLS}, t) {
			return fmt.Errorf("harness: cannot profile target %q: only the outrigger ones", t)
		}
	}
	if (c.ProfileOneHop || len(c.ProfileTargets) > 0) && c.ProfileDir == "" {
		return errors.New("harness: profiles need a directory")
	}
	if c.ProfileSeconds < 0 {
		return fmt.Errorf("harness: profile seconds must not be negative, got %d", c.ProfileSeconds)
	}
	if c.ProfileSeconds == 0 {
		c.ProfileSeconds = defaultProfileSeconds
	}
	if c.Upstream.HTTP == "" || c.Upstream.GRPC == "" {
		return errors.New("harness: no backend")
	}
	if c.TmpDir == "" {
		return errors.New("harness: no temporary directory")
	}
	if c.Log == nil {
		c.Log = hclog.NewNullLogger()
	}
	if c.Proc.Root == "" {
		c.Proc = procstat.Default
	}
	return nil
}

// repsOf is the number of repetitions of target t.
func (c *Config) repsOf(t *targets.Target) int {
	if t.Endpoints.GRPCMTLS != "" && c.ABReps > 0 {
		return c.ABReps
	}
	return c.Reps
}

// Run measures every scenario against every target that starts.
func Run(ctx context.Context, cfg Config) (*report.Run, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	out := &report.Run{Started: time.Now(), Command: cfg.Command, Machine: report.DescribeMachine()}
	for _, s := range cfg.Scenarios {
		out.Scenarios = append(out.Scenarios, report.ScenarioInfo{
			Name: s.Name, Description: s.Description, Protocol: string(s.Protocol),
			Workers: s.Workers, Conns: s.Conns, RefRate: s.RefRate(),
			BytesPerOp: s.BytesPerOp, Versus: s.Versus,
		})
	}

	running := startTargets(ctx, &cfg, out)
	defer func() {
		for _, t := range running {
			if err := t.Close(); err != nil {
				cfg.Log.Warn("stopping target", "target", t.Name, "error", err)
			}
		}
	}()
	if len(running) == 0 {
		return out, errors.New("harness: no target started")
	}

	for _, sc := range cfg.Scenarios {
		cfg.Log.Info("scenario", "name", sc.Name, "targets", len(running), "reps", cfg.Reps,
			"estimate", sc.Estimate(len(running), cfg.Reps).Round(time.Second))
		for rep := range max(cfg.Reps, cfg.ABReps) {
			// Rotate the order each repetition so no target always runs
			// first (cold) or last (after the machine warmed up).
			for i := range running {
				t := running[(i+rep)%len(running)]
				if reps := cfg.repsOf(t); rep >= reps {
					continue
				}
				run := runScenario
				switch {
				case t.Endpoints.GRPCMTLS != "" && sc.Protocol != loadgen.GRPC:
					// The A/B target: both paths at once, gRPC unary only.
					if rep == 0 {
						out.Notes = append(out.Notes, fmt.Sprintf("%s: target %s compares gRPC unary only", sc.Name, t.Name))
					}
					continue
				case t.Endpoints.GRPCMTLS != "":
					run = runAB
				case sc.endpoint(t.Endpoints) == "":
					if rep == 0 {
						out.Notes = append(out.Notes, fmt.Sprintf("%s: target %s does not serve %s", sc.Name, t.Name, sc.Protocol))
					}
					continue
				}
				if err := t.Alive(); err != nil {
					out.Notes = append(out.Notes, fmt.Sprintf("%s/%s rep %d skipped: %s", sc.Name, t.Name, rep+1, firstAndLast(err)))
					continue
				}
				ms, err := run(ctx, &cfg, sc, t, rep+1)
				out.Measurements = append(out.Measurements, ms...)
				if err != nil {
					if ctx.Err() != nil {
						return out, fmt.Errorf("harness: interrupted: %w", ctx.Err())
					}
					out.Notes = append(out.Notes, fmt.Sprintf("%s/%s rep %d: %v", sc.Name, t.Name, rep+1, err))
					cfg.Log.Warn("run failed", "scenario", sc.Name, "target", t.Name, "error", err)
				}
			}
		}
		if cfg.CrossCheck && sc.CrossCheck != "" {
			out.CrossChecks = append(out.CrossChecks, crossCheck(ctx, &cfg, sc, running, out)...)
		}
	}

	if cfg.ProfileOneHop {
		out.Profile = profileOutrigger(ctx, &cfg)
	}
	for _, name := range cfg.ProfileTargets {
		cfg.Log.Info("profiling", "target", name, "scenario", cfg.Scenarios[0].Name)
		out.HopProfiles = append(out.HopProfiles, profileLastHop(ctx, &cfg, name, cfg.Scenarios[0]))
	}
	out.Machine.LoadAvgEnd = report.LoadAvg()
	out.Duration = time.Since(out.Started)
	return out, ctx.Err()
}

// runScenario runs one repetition of a scenario against one target.
func runScenario(ctx context.Context, cfg *Config, sc Scenario, t *targets.Target, rep int) ([]report.Measurement, error) {
	client, err := loadgen.NewClient(sc.loadTarget(sc.endpoint(t.Endpoints)))
	if err != nil {
		return nil, err
	}
	defer client.Close()
	if sc.Protocol == loadgen.H3 {
		// A UDP listener cannot be probed by connecting: wait for one answer.
		if err := firstSuccess(ctx, client, 10*time.Second); err != nil {
			return nil, err
		}
	}
	if sc.Warmup > 0 {
		if _, err := loadgen.Run(ctx, client, loadgen.Options{Mode: loadgen.ClosedLoop, Duration: sc.Warmup, Workers: sc.Workers}); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	var ms []report.Measurement
	for _, rate := range sc.OpenRates {
		m, err := measure(ctx, cfg, sc, t, client, rep, loadgen.Options{
			Mode: loadgen.OpenLoop, Rate: rate, Duration: sc.OpenDuration, Workers: sc.Workers,
		})
		if err != nil {
			return ms, err
		}
		ms = append(ms, m)
	}
	if sc.ClosedDuration > 0 {
		m, err := measure(ctx, cfg, sc, t, client, rep, loadgen.Options{
			Mode: loadgen.ClosedLoop, Duration: sc.ClosedDuration, Workers: sc.Workers,
		})
		if err != nil {
			return ms, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// measure is one bounded load run with the target's CPU and peak memory
// read around it.
func measure(ctx context.Context, cfg *Config, sc Scenario, t *targets.Target, client loadgen.Client, rep int, opts loadgen.Options) (report.Measurement, error) {
	pids := t.PIDs()
	var before procstat.Usage
	if len(pids) > 0 {
		if err := cfg.Proc.ResetPeaks(pids); err != nil {
			cfg.Log.Debug("peak RSS reset failed; peak covers the process lifetime", "target", t.Name, "error", err)
		}
		var err error
		if before, err = cfg.Proc.Measure(pids); err != nil {
			return report.Measurement{}, err
		}
	}
	// The proxy nearest the backend counts the connections it accepts:
	// for a two-hop target those come from the client sidecar, so with
	// mTLS each is one handshake.
	var connsBefore int64 = -1
	if len(t.Admin) > 0 {
		if n, err := targets.DownstreamConns(ctx, t.Admin[len(t.Admin)-1]); err == nil {
			connsBefore = n
		} else {
			cfg.Log.Debug("connection count unavailable", "target", t.Name, "error", err)
		}
	}
	res, err := loadgen.Run(ctx, client, opts)
	if err != nil {
		return report.Measurement{}, err
	}
	m := fromResult(sc.Name, t.Name, rep, res)
	if connsBefore >= 0 {
		if n, err := targets.DownstreamConns(ctx, t.Admin[len(t.Admin)-1]); err == nil {
			m.LastHopConns = n - connsBefore
			m.LastHopConnsKnown = true
		}
	}
	if len(pids) > 0 {
		after, err := cfg.Proc.Measure(pids)
		if err != nil {
			return m, err
		}
		d := after.Sub(before)
		m.CPU, m.PeakRSS = d.CPU, d.Peak
		if d.IOKnown {
			m.SyscR, m.SyscW, m.SyscKnown = d.SyscR, d.SyscW, true
		}
	}
	cfg.Log.Info("run", "scenario", sc.Name, "target", t.Name, "rep", rep, "mode", m.Mode,
		"rate", m.Rate, "rps", int(m.Throughput), "p50", m.P50, "p99", m.P99, "failed", m.Failed)
	return m, nil
}

// firstSuccess sends one request at a time until one succeeds or wait ends.
func firstSuccess(ctx context.Context, client loadgen.Client, wait time.Duration) error {
	s, err := client.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		err := s.Do(rctx)
		rcancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no successful request within %v: %w", wait, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func fromResult(scenario, target string, rep int, r *loadgen.Result) report.Measurement {
	m := report.Measurement{
		Scenario: scenario, Target: target, Rep: rep, Mode: string(r.Mode), Rate: r.Offered,
		Throughput: r.Throughput(), OK: r.OK, Failed: r.Failed(), Errors: r.ErrorSummary(),
	}
	if h := r.Latency; h != nil && h.TotalCount() > 0 {
		m.P50 = time.Duration(h.ValueAtQuantile(50))
		m.P90 = time.Duration(h.ValueAtQuantile(90))
		m.P99 = time.Duration(h.ValueAtQuantile(99))
		m.P999 = time.Duration(h.ValueAtQuantile(99.9))
		m.Max = time.Duration(h.Max())
	}
	if h := r.SendLag; h != nil && h.TotalCount() > 0 {
		m.SendLagP99 = time.Duration(h.ValueAtQuantile(99))
	}
	return m
}

func firstLine(err error) string {
	s := err.Error()
	for i := range len(s) {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

// firstAndLast is an error's first line and, for a process that exited, the
// last line of its log.
func firstAndLast(err error) string {
	s := err.Error()
	first := firstLine(err)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 && i+1 < len(s) {
		return first + " (log: " + strings.TrimSpace(s[i+1:]) + ")"
	}
	return first
}
