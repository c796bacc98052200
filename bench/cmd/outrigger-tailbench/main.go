// Command outrigger-tailbench measures what a per-try timeout and hedging do
// to the tail latency when one backend of three is sometimes slow: the
// backends direct, then outrigger with no retry policy, with retries and
// with hedging, under the same open-loop load in one run. It writes a
// markdown report (bench/results/tail.md).
//
//	outrigger-tailbench [--outrigger bin/outrigger] [--out bench/results/tail.md] [--rate 500] [--duration 10s]
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/bench/tailbench"
	"github.com/outrigger-mesh/outrigger/internal/consulagent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `outrigger-tailbench: tail latency with one slow backend of three, direct and through outrigger
with no retry policy, a per-try timeout with retries, and hedging on the per-try timeout.

Usage:
  outrigger-tailbench [flags]

Flags:
  --outrigger PATH        proxy binary (default: go build ./proxy/cmd/outrigger into the work directory)
  --out FILE              report (default bench/results/tail.md)
  --rate R                requests per second, open loop (default 500)
  --duration D            measured load per setup (default 10s)
  --warmup D              unmeasured load per setup before it (default 1s)
  --workers N             requests in flight at most = client connections (default 32)
  --slow-fraction F       share of the slow backend's requests it answers late (default 0.1)
  --slow-delay D          how late (default 200ms)
  --service-time D        every other answer's time (default 1ms)
  --per-try-timeout D     retry_policy.per_try_timeout (default 25ms)
  --retries N             retry_policy.num_retries (default 2)
  --backoff-base D        retry_back_off.base_interval (default: unset, Envoy's 25ms)
  --deadline D            refuse settings whose run could last longer, and stop the run after D (default 2m)
  --work DIR              keep bootstraps and proxy logs here (default: a temporary directory, removed)
  --log-level LEVEL       debug, info, warn, error (default info)

Exit status: 0 when every setup was measured (whatever the figures), 1 on a setup failure, 2 on bad flags.
`

type options struct {
	cfg       tailbench.Config
	outrigger string
	out       string
	deadline  time.Duration
	work      string
	logLevel  string
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{cfg: tailbench.DefaultConfig()}
	fs := flag.NewFlagSet("outrigger-tailbench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.outrigger, "outrigger", "", "")
	fs.StringVar(&o.out, "out", "bench/results/tail.md", "")
	fs.Float64Var(&o.cfg.Rate, "rate", o.cfg.Rate, "")
	fs.DurationVar(&o.cfg.Duration, "duration", o.cfg.Duration, "")
	fs.DurationVar(&o.cfg.Warmup, "warmup", o.cfg.Warmup, "")
	fs.IntVar(&o.cfg.Workers, "workers", o.cfg.Workers, "")
	fs.Float64Var(&o.cfg.SlowFraction, "slow-fraction", o.cfg.SlowFraction, "")
	fs.DurationVar(&o.cfg.SlowDelay, "slow-delay", o.cfg.SlowDelay, "")
	fs.DurationVar(&o.cfg.ServiceTime, "service-time", o.cfg.ServiceTime, "")
	fs.DurationVar(&o.cfg.PerTryTimeout, "per-try-timeout", o.cfg.PerTryTimeout, "")
	fs.IntVar(&o.cfg.NumRetries, "retries", o.cfg.NumRetries, "")
	fs.DurationVar(&o.cfg.BackoffBase, "backoff-base", 0, "")
	fs.DurationVar(&o.deadline, "deadline", 2*time.Minute, "")
	fs.StringVar(&o.work, "work", "", "")
	fs.StringVar(&o.logLevel, "log-level", "info", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if o.out == "" {
		return nil, errors.New("--out must name a file")
	}
	if o.deadline <= 0 {
		return nil, fmt.Errorf("--deadline must be positive, got %v", o.deadline)
	}
	if hclog.LevelFromString(o.logLevel) == hclog.NoLevel {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	// The binary and work directory are filled in later; validate the rest now.
	check := o.cfg
	check.OutriggerBin, check.WorkDir = "-", "-"
	if err := check.Validate(); err != nil {
		return nil, err
	}
	if b := o.cfg.Budget(); b > o.deadline {
		return nil, fmt.Errorf("these settings may take up to %v, more than --deadline %v", b.Round(time.Second), o.deadline)
	}
	return o, nil
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "outrigger-tailbench:", err)
		return 2
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "tailbench", Level: hclog.LevelFromString(o.logLevel), Output: stderr})
	command := strings.Join(append([]string{"outrigger-tailbench"}, args...), " ")
	if err := bench(ctx, o, command, log); err != nil {
		log.Error("bench failed", "error", err)
		return 1
	}
	fmt.Fprintln(stdout, "wrote", o.out)
	return 0
}

// bench builds the proxy if needed, runs every setup within the deadline
// and writes the report (also the partial one of a failed run, for its
// notes: a partial report goes next to the target, not over it).
func bench(ctx context.Context, o *options, command string, log hclog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, o.deadline)
	defer cancel()
	work := o.work
	if work == "" {
		d, err := os.MkdirTemp("", "outrigger-tailbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	bin := o.outrigger
	if bin == "" {
		root, err := consulagent.RepoRoot(".")
		if err != nil {
			return fmt.Errorf("%w (or give --outrigger)", err)
		}
		log.Info("building outrigger")
		if bin, err = tailbench.BuildOutrigger(ctx, root, work); err != nil {
			return err
		}
	}
	cfg := o.cfg
	cfg.OutriggerBin, cfg.WorkDir, cfg.Log = bin, work, log
	rep, err := tailbench.Run(ctx, cfg)
	if rep == nil {
		return err
	}
	rep.Command = command
	out := o.out
	if err != nil {
		out = strings.TrimSuffix(out, ".md") + ".failed.md"
	}
	if werr := writeReport(out, rep); werr != nil {
		return errors.Join(err, werr)
	}
	if err != nil {
		return fmt.Errorf("%w (partial report in %s)", err, out)
	}
	return nil
}

func writeReport(path string, rep *tailbench.Report) error {
	var b bytes.Buffer
	if err := tailbench.WriteMarkdown(&b, rep); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
