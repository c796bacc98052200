package harness

import (
	"context"
	"fmt"
	"slices"

	"github.com/outrigger-mesh/outrigger/bench/report"
	"github.com/outrigger-mesh/outrigger/bench/targets"
)

// startTargets starts the selected targets. One that cannot start is left
// out with a note rather than failing the whole run: a bench without Caddy
// still says something.
func startTargets(ctx context.Context, cfg *Config, out *report.Run) []*targets.Target {
	var running []*targets.Target
	add := func(t *targets.Target) {
		info := report.TargetInfo{Name: t.Name, Version: t.Version, Config: t.Config}
		if pids := t.PIDs(); len(pids) > 0 {
			if u, err := cfg.Proc.Measure(pids); err == nil {
				info.IdleRSS = u.RSS
			}
		}
		out.Targets = append(out.Targets, info)
		running = append(running, t)
	}
	skip := func(name string, err error) {
		out.Notes = append(out.Notes, fmt.Sprintf("target %s skipped: %s", name, firstLine(err)))
		cfg.Log.Warn("target skipped", "target", name, "error", err)
	}
	for _, name := range AllTargets {
		if !slices.Contains(cfg.Targets, name) {
			continue
		}
		var t *targets.Target
		var err error
		switch name {
		case Direct:
			t = targets.Direct(cfg.Upstream)
		case Outrigger, Outrigger2Hop, Outrigger2HopMTLS:
			if cfg.OutriggerBin == "" {
				err = fmt.Errorf("no outrigger binary (build it with `go build -o bin/outrigger ./proxy/cmd/outrigger`)")
				break
			}
			t, err = targets.StartOutrigger(ctx, cfg.TmpDir, cfg.Upstream, outriggerOptions(name, cfg.OutriggerBin))
		case Outrigger2HopAB:
			if cfg.OutriggerBin == "" {
				err = fmt.Errorf("no outrigger binary (build it with `go build -o bin/outrigger ./proxy/cmd/outrigger`)")
				break
			}
			t, err = targets.StartOutriggerAB(ctx, cfg.TmpDir, cfg.Upstream, cfg.OutriggerBin)
		case GoFloor, GoLean:
			if cfg.BenchBin == "" {
				err = fmt.Errorf("no outrigger-bench binary to run `outrigger-bench floor` with")
				break
			}
			start := targets.StartFloor
			if name == GoLean {
				start = targets.StartLean
			}
			t, err = start(ctx, cfg.BenchBin, cfg.TmpDir, cfg.Upstream)
		default:
			var bin string
			if bin, err = targets.LookBinary(name); err != nil {
				break
			}
			start := map[string]func(context.Context, string, string, targets.Upstream) (*targets.Target, error){
				Nginx: targets.StartNginx, HAProxy: targets.StartHAProxy, Caddy: targets.StartCaddy,
			}[name]
			t, err = start(ctx, bin, cfg.TmpDir, cfg.Upstream)
		}
		if err != nil {
			skip(name, err)
			continue
		}
		cfg.Log.Info("target ready", "target", name, "endpoints", fmt.Sprintf("%+v", t.Endpoints))
		add(t)
	}
	return running
}

// outriggerOptions are how the outrigger target name runs.
func outriggerOptions(name, bin string) targets.OutriggerOptions {
	o := targets.OutriggerOptions{Binary: bin, Hops: 1}
	switch name {
	case Outrigger2Hop:
		o.Hops = 2
	case Outrigger2HopMTLS:
		o.Hops, o.MTLS = 2, true
	}
	return o
}
