package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/harness"
)

type options struct {
	quick        bool
	reps         int
	abReps       int
	targets      []string
	scenarios    []string
	outrigger    string
	outDir       string
	name         string
	profile      bool
	crossCheck   bool
	maxDuration  time.Duration
	logLevel     string
	backendDelay time.Duration
	// rate, openDuration and noClosed override the selected scenarios'
	// open-loop rates, open-loop run length and closed-loop run.
	rate           float64
	openDuration   time.Duration
	noClosed       bool
	profileTargets []string
	profileSeconds int
}

const usage = `outrigger-bench: measure outrigger against direct, nginx, HAProxy and Caddy.

Usage:
  outrigger-bench [flags]
  outrigger-bench render [--in bench/results/latest.json]   redraw the report from a run's JSON
  outrigger-bench backend --http ADDR --grpc ADDR           the upstream (the bench starts it)

Flags:
  --quick              one short scenario, one repetition, no two-hop target (make bench-quick)
  --reps N             repetitions of every run (default 3; 1 with --quick)
  --ab-reps N          repetitions of the outrigger-2hop-ab target (default: --reps)
  --targets LIST       comma-separated subset of: %s
                       (default all but outrigger-2hop-mtls and outrigger-2hop-ab: make bench-mtls,
                       and go-floor and go-lean, the least a Go HTTP/1.1 proxy does per request
                       without and with a proxy's work on bytes: make bench-floor)
  --scenarios LIST     comma-separated subset of: %s
                       (small-h3 and tcp-bulk run only when named: make bench-protocols)
  --outrigger PATH     the proxy binary (default bin/outrigger when it exists)
  --out DIR            where the report and plots go (default bench/results)
  --name NAME          report file name without .md (default latest; quick with --quick)
  --rate R             open loop at R req/s only (instead of each scenario's rates)
  --open-duration D    length of each open-loop run (default: the scenario's)
  --no-closed          skip the closed-loop runs (latency comparisons only)
  --profile            save CPU and allocation profiles of outrigger under load
  --profile-target LIST  also profile these outrigger targets' proxy nearest the backend
                       (the server sidecar of a two-hop) under the first scenario's
                       open-loop load, e.g. outrigger-2hop,outrigger-2hop-mtls
  --profile-seconds N  length of each --profile-target CPU profile (default 10)
  --no-crosscheck      skip the wrk / h2load / ghz comparison runs
  --max-duration D     stop the whole run after D (default 15m; 60s with --quick)
  --backend-delay D    latency the backend adds to every response (default 0)
  --log-level LEVEL    debug, info, warn, error (default info)
`

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("outrigger-bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&o.quick, "quick", false, "")
	reps := fs.Int("reps", 0, "")
	abReps := fs.Int("ab-reps", 0, "")
	targets := fs.String("targets", "", "")
	scenarios := fs.String("scenarios", "", "")
	fs.StringVar(&o.outrigger, "outrigger", "", "")
	fs.StringVar(&o.outDir, "out", "bench/results", "")
	fs.StringVar(&o.name, "name", "", "")
	fs.BoolVar(&o.profile, "profile", false, "")
	noCross := fs.Bool("no-crosscheck", false, "")
	fs.DurationVar(&o.maxDuration, "max-duration", 0, "")
	fs.DurationVar(&o.backendDelay, "backend-delay", 0, "")
	fs.StringVar(&o.logLevel, "log-level", "info", "")
	fs.Float64Var(&o.rate, "rate", 0, "")
	fs.DurationVar(&o.openDuration, "open-duration", 0, "")
	fs.BoolVar(&o.noClosed, "no-closed", false, "")
	profileTargets := fs.String("profile-target", "", "")
	fs.IntVar(&o.profileSeconds, "profile-seconds", 0, "")
	allScenarios := scenarioNames(append(harness.FullScenarios(), harness.ProtocolScenarios()...))
	help := fmt.Sprintf(usage, strings.Join(harness.AllTargets, ","), strings.Join(allScenarios, ","))
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, help)
			return nil, err
		}
		return nil, fmt.Errorf("%w (see --help)", err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see --help)", fs.Arg(0))
	}
	o.crossCheck = !*noCross
	switch {
	case *reps < 0:
		return nil, fmt.Errorf("--reps must be positive, got %d", *reps)
	case *reps > 0:
		o.reps = *reps
	case o.quick:
		o.reps = 1
	default:
		o.reps = 3
	}
	switch {
	case *abReps < 0:
		return nil, fmt.Errorf("--ab-reps must be positive, got %d", *abReps)
	case *abReps > 0:
		o.abReps = *abReps
	default:
		o.abReps = o.reps
	}
	if o.name == "" {
		o.name = "latest"
		if o.quick {
			o.name = "quick"
		}
	}
	if o.maxDuration == 0 {
		o.maxDuration = 15 * time.Minute
		if o.quick {
			o.maxDuration = 60 * time.Second
		}
	}
	if o.maxDuration < 0 || o.backendDelay < 0 {
		return nil, errors.New("--max-duration and --backend-delay must not be negative")
	}
	if o.rate < 0 || o.openDuration < 0 || o.profileSeconds < 0 {
		return nil, errors.New("--rate, --open-duration and --profile-seconds must not be negative")
	}
	o.profileTargets = splitList(*profileTargets)
	for _, t := range o.profileTargets {
		if !slices.Contains([]string{harness.Outrigger, harness.Outrigger2Hop, harness.Outrigger2HopMTLS}, t) {
			return nil, fmt.Errorf("--profile-target %q: only outrigger targets can be profiled", t)
		}
	}
	o.targets = slices.DeleteFunc(slices.Clone(harness.DefaultTargets), func(t string) bool {
		return o.quick && t == harness.Outrigger2Hop
	})
	if *targets != "" {
		o.targets = splitList(*targets)
		for _, t := range o.targets {
			if !slices.Contains(harness.AllTargets, t) {
				return nil, fmt.Errorf("unknown target %q (known: %s)", t, strings.Join(harness.AllTargets, ","))
			}
		}
	}
	if *scenarios != "" {
		o.scenarios = splitList(*scenarios)
		for _, s := range o.scenarios {
			if !slices.Contains(allScenarios, s) {
				return nil, fmt.Errorf("unknown scenario %q (known: %s)", s, strings.Join(allScenarios, ","))
			}
		}
	}
	if o.outrigger == "" {
		if st, err := os.Stat("bin/outrigger"); err == nil && !st.IsDir() {
			o.outrigger = "bin/outrigger"
		}
	}
	return o, nil
}

// quickProtocolScenarios are the protocol scenarios shortened for --quick.
func quickProtocolScenarios() []harness.Scenario {
	ss := harness.ProtocolScenarios()
	for i := range ss {
		ss[i].Warmup = min(ss[i].Warmup, 200*time.Millisecond)
		if ss[i].OpenDuration > 0 {
			ss[i].OpenDuration = time.Second
		}
		ss[i].ClosedDuration = min(ss[i].ClosedDuration, 2*time.Second)
	}
	return ss
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func scenarioNames(ss []harness.Scenario) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.Name)
	}
	return out
}

// selectScenarios applies --quick and --scenarios.
func (o *options) selectScenarios() []harness.Scenario {
	all := harness.FullScenarios()
	if o.quick {
		all = harness.QuickScenarios()
	}
	if len(o.scenarios) > 0 {
		// The protocol scenarios (small-h3, tcp-bulk) run only when named.
		if !o.quick {
			all = append(all, harness.ProtocolScenarios()...)
		} else {
			all = append(all, quickProtocolScenarios()...)
		}
		all = slices.DeleteFunc(all, func(s harness.Scenario) bool { return !slices.Contains(o.scenarios, s.Name) })
	}
	for i := range all {
		o.override(&all[i])
	}
	// A scenario left with nothing to measure (closed loop only, with
	// --no-closed) is dropped.
	return slices.DeleteFunc(all, func(s harness.Scenario) bool { return len(s.OpenRates) == 0 && s.ClosedDuration <= 0 })
}

// override applies --rate, --open-duration and --no-closed to s.
func (o *options) override(s *harness.Scenario) {
	if o.rate > 0 {
		s.OpenRates = []float64{o.rate}
		if s.OpenDuration <= 0 {
			s.OpenDuration = 2 * time.Second
		}
	}
	if o.openDuration > 0 && len(s.OpenRates) > 0 {
		s.OpenDuration = o.openDuration
	}
	if o.noClosed {
		s.ClosedDuration = 0
		// Without a closed-loop run there is no cross-check baseline either.
		s.CrossCheck = ""
	}
}
