package report

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Baselines the tables compare with, when present.
const (
	DirectTarget  = "direct"
	HAProxyTarget = "haproxy"
)

// PlotFiles names the PNGs WriteMarkdown links to, per scenario.
type PlotFiles struct {
	Latency    map[string]string // scenario -> file, when it has a rate sweep
	Throughput map[string]string
}

// WriteMarkdown renders the report.
func WriteMarkdown(w io.Writer, r *Run, plots PlotFiles) error {
	var b strings.Builder
	sums := Summarise(r.Measurements)

	b.WriteString("# Outrigger bench: latest results\n\n")
	fmt.Fprintf(&b, "Generated %s in %s by:\n\n```\n%s\n```\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Duration.Round(time.Second), r.Command)
	b.WriteString("## Machine\n\n")
	fmt.Fprintf(&b, "- CPU: %s, `nproc` = %d\n", orDash(r.Machine.CPUModel), r.Machine.NProc)
	fmt.Fprintf(&b, "- Kernel: %s; Go: %s\n", orDash(r.Machine.Kernel), orDash(r.Machine.GoVer))
	if r.Machine.LoadAvgStart != "" || r.Machine.LoadAvgEnd != "" {
		fmt.Fprintf(&b, "- Load average (1, 5, 15 min): %s at the start, %s at the end\n",
			orDash(r.Machine.LoadAvgStart), orDash(r.Machine.LoadAvgEnd))
	}
	b.WriteString("- The load generator, the proxy and the backend share these cores: compare ratios within " +
		"this run, not absolute figures across machines or runs.\n\n")

	b.WriteString("## Targets\n\n| target | version | configuration | idle RSS |\n|---|---|---|---|\n")
	for _, t := range r.Targets {
		idle := "—"
		if t.IdleRSS > 0 {
			idle = fmtBytes(float64(t.IdleRSS))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", t.Name, orDash(escape(t.Version)), escape(t.Config), idle)
	}
	b.WriteString("\n")

	writeGoals(&b, r, sums)
	writeMTLS(&b, r)
	for _, sc := range r.Scenarios {
		writeScenario(&b, r, sc, sums, plots)
	}

	if p := r.Profile; p != nil {
		b.WriteString("## Profile (outrigger, one hop, under closed-loop load)\n\n")
		if p.Err != "" {
			fmt.Fprintf(&b, "Not taken: %s\n\n", p.Err)
		} else {
			fmt.Fprintf(&b, "- CPU profile: `%s`\n- Allocation profile: `%s`\n", p.CPUPath, p.AllocsPath)
			if p.AllocsPerRequest > 0 {
				fmt.Fprintf(&b, "- Allocations per request: %.1f (Mallocs growth over %d requests, background included)\n",
					p.AllocsPerRequest, p.Requests)
			}
			b.WriteString("\nRead them with `go tool pprof -top bin/outrigger FILE`.\n\n")
		}
	}

	for _, p := range r.HopProfiles {
		fmt.Fprintf(&b, "## Profile (%s, %s, %s)\n\n", p.Target, p.Proxy, p.Load)
		if p.Err != "" {
			fmt.Fprintf(&b, "Not taken: %s\n\n", p.Err)
			continue
		}
		fmt.Fprintf(&b, "- CPU profile: `%s`\n- Allocation profile: `%s`\n", p.CPUPath, p.AllocsPath)
		if p.AllocsPerRequest > 0 {
			fmt.Fprintf(&b, "- Allocations per request: %.1f (Mallocs growth over %d requests, background included)\n",
				p.AllocsPerRequest, p.Requests)
		}
		b.WriteString("\nRead them with `go tool pprof -top bin/outrigger FILE`; compare two with `-diff_base`.\n\n")
	}

	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}

	b.WriteString(methodText)
	_, err := io.WriteString(w, b.String())
	if err != nil {
		return fmt.Errorf("report: write markdown: %w", err)
	}
	return nil
}

const methodText = `## Method

- Every figure is the median of the repetitions with the min–max range in brackets; targets are
  interleaved within each repetition (the order rotates) so drift on the shared machine spreads
  over all of them.
- Open loop: requests are scheduled at fixed intervals and latency is measured from the scheduled
  send time, so a stalled target cannot hide latency by slowing the generator (coordinated
  omission). "gen lag p99" is how late the generator itself sent; when it is large on direct too,
  the machine, not the target, is the limit. Requests the schedule could not send count as errors.
- Closed loop: a fixed number of workers send back to back; latency is from the actual send.
- CPU s/10k: utime+stime of the proxy process tree (/proc/PID/stat) during the run, per 10,000
  requests. Peak RSS: VmHWM (/proc/PID/status) reset before each run through clear_refs, summed
  over the proxy's processes. "Added" latency is the target's median percentile minus direct's.
- Histograms: github.com/HdrHistogram/hdrhistogram-go, 1 ns–60 s, 3 significant digits.
`

func writeScenario(b *strings.Builder, r *Run, sc ScenarioInfo, sums []Summary, plots PlotFiles) {
	fmt.Fprintf(b, "## %s\n\n%s (%s; %d workers", sc.Name, sc.Description, sc.Protocol, sc.Workers)
	if sc.Conns > 0 {
		fmt.Fprintf(b, " over %d connections", sc.Conns)
	}
	b.WriteString(")\n\n")
	targets := targetsOf(r, sc.Name)

	direct, hasDirect := Find(sums, Key{sc.Name, DirectTarget, "closed", 0})
	versus := sc.Versus
	if versus == "" {
		versus = HAProxyTarget
	}
	vs, hasVs := Find(sums, Key{sc.Name, versus, "closed", 0})
	hasClosed := slices.ContainsFunc(sums, func(s Summary) bool { return s.Scenario == sc.Name && s.Mode == "closed" })
	if hasClosed {
		b.WriteString("### Closed loop: maximum throughput\n\n")
	}
	if !hasClosed {
		// Open loop only (--no-closed): no throughput table.
	} else if sc.BytesPerOp > 0 {
		fmt.Fprintf(b, "| target | GB/s | × direct | × %s | CPU s/GiB | peak RSS | errors |\n", versus)
		b.WriteString("|---|---|---|---|---|---|---|\n")
		gbps := func(v float64) string { return fmt.Sprintf("%.2f", v*float64(sc.BytesPerOp)/1e9) }
		for _, t := range targets {
			s, ok := Find(sums, Key{sc.Name, t, "closed", 0})
			if !ok {
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s |\n", t,
				fmtSpread(s.Throughput, gbps),
				ratio(s.Throughput.Median, direct.Throughput.Median, hasDirect),
				ratio(s.Throughput.Median, vs.Throughput.Median, hasVs),
				cpuPerGiB(t, s, sc.BytesPerOp), memCell(t, s), errCell(s))
		}
		b.WriteString("\n")
	} else {
		fmt.Fprintf(b, "| target | req/s | × direct | × %s | p50 | p99 | CPU s/10k req | peak RSS | errors |\n", versus)
		b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
		for _, t := range targets {
			s, ok := Find(sums, Key{sc.Name, t, "closed", 0})
			if !ok {
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t,
				fmtSpread(s.Throughput, fmtRate),
				ratio(s.Throughput.Median, direct.Throughput.Median, hasDirect),
				ratio(s.Throughput.Median, vs.Throughput.Median, hasVs),
				fmtSpread(s.P50, fmtDur), fmtSpread(s.P99, fmtDur),
				cpuCell(t, s), memCell(t, s), errCell(s))
		}
		b.WriteString("\n")
	}

	if sc.RefRate > 0 {
		ref, hasRef := Find(sums, Key{sc.Name, DirectTarget, "open", sc.RefRate})
		fmt.Fprintf(b, "### Open loop at %s req/s: latency from the scheduled send time\n\n", fmtRate(sc.RefRate))
		b.WriteString("| target | p50 | p90 | p99 | p99.9 | added p50 | added p99 | gen lag p99 | errors |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
		for _, t := range targets {
			s, ok := Find(sums, Key{sc.Name, t, "open", sc.RefRate})
			if !ok {
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t,
				fmtSpread(s.P50, fmtDur), fmtSpread(s.P90, fmtDur), fmtSpread(s.P99, fmtDur), fmtSpread(s.P999, fmtDur),
				added(s.P50, ref.P50, hasRef && t != DirectTarget), added(s.P99, ref.P99, hasRef && t != DirectTarget),
				fmtDur(s.SendLagP99.Median), errCell(s))
		}
		b.WriteString("\n")
	}

	rates := openRates(sums, sc.Name)
	if len(rates) > 1 {
		b.WriteString("### p99 latency against offered load (medians)\n\n| target |")
		for _, rt := range rates {
			fmt.Fprintf(b, " %s/s |", fmtRate(rt))
		}
		b.WriteString("\n|---|" + strings.Repeat("---|", len(rates)) + "\n")
		for _, t := range targets {
			fmt.Fprintf(b, "| %s |", t)
			for _, rt := range rates {
				s, ok := Find(sums, Key{sc.Name, t, "open", rt})
				cell := "—"
				if ok {
					cell = fmtDur(s.P99.Median)
					if s.Failed > 0 {
						cell += fmt.Sprintf(" (%d err)", s.Failed)
					}
				}
				fmt.Fprintf(b, " %s |", cell)
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	if f := plots.Latency[sc.Name]; f != "" {
		fmt.Fprintf(b, "![latency against offered load, %s](%s)\n\n", sc.Name, f)
	}
	if f := plots.Throughput[sc.Name]; f != "" {
		fmt.Fprintf(b, "![closed-loop throughput, %s](%s)\n\n", sc.Name, f)
	}

	var cc []CrossCheck
	for _, c := range r.CrossChecks {
		if c.Scenario == sc.Name {
			cc = append(cc, c)
		}
	}
	if len(cc) > 0 {
		fmt.Fprintf(b, "### Cross-check with %s (one run each, after the repetitions)\n\n", cc[0].Tool)
		fmt.Fprintf(b, "`%s`\n\n| target | req/s | × direct | failed |\n|---|---|---|---|\n", cc[0].Command)
		var directRPS float64
		for _, c := range cc {
			if c.Target == DirectTarget {
				directRPS = c.RPS
			}
		}
		for _, c := range cc {
			if c.Err != "" {
				fmt.Fprintf(b, "| %s | error: %s | — | — |\n", c.Target, escape(c.Err))
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %s | %d |\n", c.Target, fmtRate(c.RPS), ratio(c.RPS, directRPS, directRPS > 0), c.Failed)
		}
		b.WriteString("\n")
	}
}

// targetsOf lists the targets measured in a scenario, in run order; a
// target measured as several paths (the A/B target's "name/plaintext" and
// "name/mtls") is listed as its paths.
func targetsOf(r *Run, scenario string) []string {
	var out []string
	for _, t := range r.Targets {
		for _, m := range r.Measurements {
			if m.Scenario != scenario || slices.Contains(out, m.Target) {
				continue
			}
			if m.Target == t.Name || strings.HasPrefix(m.Target, t.Name+"/") {
				out = append(out, m.Target)
			}
		}
	}
	return out
}

func openRates(sums []Summary, scenario string) []float64 {
	var rates []float64
	for _, s := range sums {
		if s.Scenario == scenario && s.Mode == "open" && !slices.Contains(rates, s.Rate) {
			rates = append(rates, s.Rate)
		}
	}
	slices.Sort(rates)
	return rates
}

func cpuCell(target string, s Summary) string {
	if target == DirectTarget {
		return "—"
	}
	return fmtSpread(s.CPUPer10k, func(v float64) string { return fmt.Sprintf("%.3f", v) })
}

// cpuPerGiB converts CPU s/10k operations of bytesPerOp each into CPU s/GiB.
func cpuPerGiB(target string, s Summary, bytesPerOp int64) string {
	if target == DirectTarget || s.CPUPer10k.Median == 0 || bytesPerOp <= 0 {
		return "—"
	}
	perOp := s.CPUPer10k.Median / 10000
	return fmt.Sprintf("%.3f", perOp*float64(1<<30)/float64(bytesPerOp))
}

func memCell(target string, s Summary) string {
	if target == DirectTarget {
		return "—"
	}
	return fmtSpread(s.PeakRSS, fmtBytes)
}

func errCell(s Summary) string {
	if s.Failed == 0 {
		return "0"
	}
	c := fmt.Sprintf("%d of %d", s.Failed, s.Requests)
	if len(s.Errors) > 0 {
		e := s.Errors[0]
		if len(e) > 100 {
			e = e[:100] + "…"
		}
		c += ": " + escape(e)
	}
	return c
}

func fmtSpread(s Spread, f func(float64) string) string {
	if s.N == 0 {
		return "—"
	}
	if s.N == 1 || s.Min == s.Max {
		return f(s.Median)
	}
	return fmt.Sprintf("%s (%s–%s)", f(s.Median), f(s.Min), f(s.Max))
}

func ratio(v, base float64, ok bool) string {
	if !ok || base == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", v/base)
}

func added(v, base Spread, ok bool) string {
	if !ok {
		return "—"
	}
	d := v.Median - base.Median
	sign := "+"
	if d < 0 {
		sign, d = "−", -d
	}
	return sign + fmtDur(d)
}

// fmtDur prints nanoseconds as µs below 1 ms and ms above.
func fmtDur(ns float64) string {
	switch {
	case ns < float64(time.Millisecond):
		return fmt.Sprintf("%.0f µs", ns/1e3)
	case ns < float64(10*time.Second):
		return fmt.Sprintf("%.2f ms", ns/1e6)
	default:
		return fmt.Sprintf("%.1f s", ns/1e9)
	}
}

func fmtRate(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1fk", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.2fk", v/1000)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func fmtBytes(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", v/(1<<10))
	}
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// escape keeps a cell from breaking the table.
func escape(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	return strings.ReplaceAll(s, "\n", " ")
}
