package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/bench/harness"
	"github.com/outrigger-mesh/outrigger/bench/loadgen"
	"github.com/outrigger-mesh/outrigger/bench/report"
	"github.com/outrigger-mesh/outrigger/bench/targets"
)

// runBench starts the backend, runs the harness and writes the report. It
// returns the Markdown file's path.
func runBench(ctx context.Context, o *options, command string, log hclog.Logger) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.maxDuration)
	defer cancel()
	if err := raiseFileLimit(log); err != nil {
		return "", err
	}
	scenarios := o.selectScenarios()
	if len(scenarios) == 0 {
		return "", errors.New("no scenario selected")
	}
	tmp, err := os.MkdirTemp("", "outrigger-bench-")
	if err != nil {
		return "", fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	outrigger := o.outrigger
	if outrigger != "" {
		if outrigger, err = filepath.Abs(outrigger); err != nil {
			return "", err
		}
	}
	var need protocolNeeds
	for _, sc := range scenarios {
		need.h3 = need.h3 || sc.Protocol == loadgen.H3
		need.tcp = need.tcp || sc.Protocol == loadgen.TCPBulk
	}
	backend, up, err := startBackend(ctx, tmp, o.backendDelay, need)
	if err != nil {
		return "", err
	}
	defer backend.Stop(5 * time.Second)
	log.Info("backend ready", "http", up.HTTP, "grpc", up.GRPC)

	cfg := harness.Config{
		Scenarios: scenarios, Targets: o.targets, Reps: o.reps, ABReps: o.abReps, Upstream: up,
		OutriggerBin: outrigger, TmpDir: tmp, CrossCheck: o.crossCheck,
		Command: command, Log: log,
	}
	if exe, err := os.Executable(); err == nil {
		cfg.BenchBin = exe // serves the go-floor and go-lean targets
	}
	if o.profile || len(o.profileTargets) > 0 {
		cfg.ProfileDir = filepath.Join(o.outDir, "profiles")
		cfg.ProfileOneHop, cfg.ProfileTargets, cfg.ProfileSeconds = o.profile, o.profileTargets, o.profileSeconds
	}
	res, runErr := harness.Run(ctx, cfg)
	if res == nil {
		return "", runErr
	}
	if runErr != nil {
		res.Notes = append(res.Notes, "run ended early: "+runErr.Error())
	}
	if res.Duration == 0 {
		res.Duration = time.Since(res.Started)
	}
	if o.backendDelay > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("the backend added %v to every response", o.backendDelay))
	}
	path, err := writeReport(o, res)
	if err != nil {
		return "", err
	}
	return path, runErr
}

// protocolNeeds say which optional backend sides the scenarios use. Only
// then do the backend and the targets open HTTP/3 and bulk TCP listeners, so
// the other scenarios measure the same processes as before.
type protocolNeeds struct{ h3, tcp bool }

// startBackend runs this binary's `backend` subcommand with GOMAXPROCS=1.
func startBackend(ctx context.Context, dir string, delay time.Duration, need protocolNeeds) (*targets.Process, targets.Upstream, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, targets.Upstream{}, fmt.Errorf("backend: %w", err)
	}
	ports, err := targets.FreePorts(3)
	if err != nil {
		return nil, targets.Upstream{}, err
	}
	up := targets.Upstream{HTTP: fmt.Sprintf("127.0.0.1:%d", ports[0]), GRPC: fmt.Sprintf("127.0.0.1:%d", ports[1])}
	argv := []string{exe, "backend", "--http", up.HTTP, "--grpc", up.GRPC, "--delay", delay.String()}
	wait := []string{up.HTTP, up.GRPC}
	if need.h3 {
		udp, err := targets.FreeUDPPort()
		if err != nil {
			return nil, targets.Upstream{}, err
		}
		if up.CertFile, up.KeyFile, err = targets.WriteSelfSignedCert(dir); err != nil {
			return nil, targets.Upstream{}, err
		}
		up.H3 = fmt.Sprintf("127.0.0.1:%d", udp)
		argv = append(argv, "--h3", up.H3, "--cert", up.CertFile, "--key", up.KeyFile)
	}
	if need.tcp {
		up.TCP = fmt.Sprintf("127.0.0.1:%d", ports[2])
		argv = append(argv, "--tcp-source", up.TCP)
		wait = append(wait, up.TCP)
	}
	p, err := targets.StartProcess("backend", argv, []string{"GOMAXPROCS=1"}, filepath.Join(dir, "backend.log"))
	if err != nil {
		return nil, targets.Upstream{}, err
	}
	if err := targets.WaitReady(ctx, p, wait, 10*time.Second); err != nil {
		_ = p.Stop(time.Second)
		return nil, targets.Upstream{}, err
	}
	return p, up, nil
}

func writeReport(o *options, res *report.Run) (string, error) {
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	plots, err := report.WritePlots(o.outDir, o.name, res)
	if err != nil {
		res.Notes = append(res.Notes, "plots: "+err.Error())
	}
	mdPath := filepath.Join(o.outDir, o.name+".md")
	f, err := os.Create(mdPath)
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	if err := report.WriteMarkdown(f, res, plots); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	// The JSON record carries the comparisons the Markdown shows.
	res.Comparisons = report.MTLSComparisons(res)
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(o.outDir, o.name+".json"), js, 0o644); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	return mdPath, nil
}

// raiseFileLimit lifts the soft open-file limit to the hard one: the
// 1,000-connection scenario holds a socket per connection.
func raiseFileLimit(log hclog.Logger) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("setrlimit: %w", err)
		}
	}
	if lim.Cur < 4096 {
		log.Warn("open-file limit is low; the 1,000-connection scenario may fail", "limit", lim.Cur)
	}
	return nil
}
