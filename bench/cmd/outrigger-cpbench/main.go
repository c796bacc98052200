// Command outrigger-cpbench is the control plane's scale bench: thousands
// of real ADS streams from one process against outrigger-cp over a real
// Consul, measuring the time from one Consul change to every proxy's ACK
// and the control plane's memory per connected proxy. It writes
// bench/results/cpscale.md (and .json).
//
//	outrigger-cpbench [--proxies 1000,10000] [--mode sotw,delta] [--streams-per-conn 16,1] [--deadline 5m]
//	outrigger-cpbench render [--out bench/results] [--name cpscale]   (redraw the report from its JSON)
package main

import (
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

	"github.com/outrigger-mesh/outrigger/bench/cpscale"
	"github.com/outrigger-mesh/outrigger/bench/report"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code (0 when every
// case ran, whatever the targets say; 1 when a case failed; 2 on bad flags).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "render" {
		return runRender(args[1:], stdout, stderr)
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "outrigger-cpbench:", err)
		return 2
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "cpbench", Level: hclog.LevelFromString(o.logLevel), Output: stderr})
	path, err := runBench(ctx, o, strings.Join(append([]string{"outrigger-cpbench"}, args...), " "), logger)
	if path != "" {
		fmt.Fprintln(stdout, "wrote", path)
	}
	if err != nil {
		logger.Error("bench failed", "error", err)
		return 1
	}
	return 0
}

// runBench runs every case within the deadline and writes the report
// after each, so an interrupted run still leaves what it measured.
func runBench(ctx context.Context, o *options, command string, log hclog.Logger) (string, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.deadline)
	defer cancel()

	work := o.workDir
	if work == "" {
		d, err := os.MkdirTemp("", "outrigger-cpbench-")
		if err != nil {
			return "", err
		}
		defer os.RemoveAll(d)
		work = d
	}
	root, rootErr := cpscale.RepoRoot(".")
	consulBin := o.consul
	if consulBin == "" {
		if rootErr != nil {
			return "", fmt.Errorf("%w (or give --consul)", rootErr)
		}
		log.Info("finding Consul (scripts/install-consul.sh builds it the first time, ~5 min)")
		b, err := cpscale.ConsulBinary(ctx, root)
		if err != nil {
			return "", err
		}
		consulBin = b
	}
	cpBin := o.controlPlane
	if cpBin == "" && !o.inProcess {
		if rootErr != nil {
			return "", fmt.Errorf("%w (or give --outrigger-cp)", rootErr)
		}
		log.Info("building outrigger-cp")
		b, err := cpscale.BuildControlPlane(ctx, root, work)
		if err != nil {
			return "", err
		}
		cpBin = b
	}

	rep := &cpscale.Report{Generated: start, Commands: []string{command}, Machine: report.DescribeMachine()}
	if o.appendReport {
		prev, err := cpscale.ReadReport(filepath.Join(o.outDir, o.name+".json"))
		if err != nil {
			return "", err
		}
		rep.Commands = append(prev.Commands, command)
		rep.Cases = prev.Cases
		rep.Notes = prev.Notes
		rep.Took = prev.Took
		start = start.Add(-prev.Took)
	}
	rep.Notes = append(rep.Notes, o.notes...)
	var errs []error
	path := ""
	cases := o.cases()
	for i, c := range cases {
		if ctx.Err() != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d case(s) not run: the deadline (%v) passed", len(cases)-i, o.deadline))
			break
		}
		c.ConsulBin, c.ControlPlaneBin = consulBin, cpBin
		c.Dir = filepath.Join(work, fmt.Sprintf("case-%d", i+1))
		c.Logger = log.Named(fmt.Sprintf("case-%d", i+1))
		c.Logger.Info("case", "proxies", c.Proxies, "services", c.Services, "mode", map[bool]string{true: "delta", false: "sotw"}[c.Delta],
			"layout", map[bool]string{true: "shared", false: "pods"}[c.Shared], "streams_per_conn", c.StreamsPerConn)
		res, err := cpscale.Run(ctx, c)
		rep.Cases = append(rep.Cases, res)
		if err != nil {
			errs = append(errs, fmt.Errorf("case %s: %w", res.Label(), err))
		}
		rep.Took = time.Since(start)
		p, werr := rep.Write(o.outDir, o.name)
		if werr != nil {
			return path, errors.Join(append(errs, werr)...)
		}
		path = p
	}
	return path, errors.Join(errs...)
}

// runRender redraws the Markdown report from its JSON (after a change to
// the report's layout, or to read an interrupted run).
func runRender(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("outrigger-cpbench render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "bench/results", "directory of the report")
	name := fs.String("name", "cpscale", "report file name without .md/.json")
	var notes noteList
	fs.Var(&notes, "note", "add a line to the report's notes (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	rep, err := cpscale.ReadReport(filepath.Join(*out, *name+".json"))
	if err == nil {
		rep.Notes = append(rep.Notes, notes...)
		var path string
		if path, err = rep.Write(*out, *name); err == nil {
			fmt.Fprintln(stdout, "wrote", path)
			return 0
		}
	}
	fmt.Fprintln(stderr, "outrigger-cpbench render:", err)
	return 1
}
