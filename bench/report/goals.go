package report

import (
	"fmt"
	"strings"
	"time"
)

// Goals are issue 3's targets for the hot path; the report shows where the
// run stands against each, met or not.
const (
	GoalThroughputVsHAProxy = 1.0                    // one hop, small-h1 closed loop
	GoalAddedP99            = 100 * time.Microsecond // one hop, open loop at 1k req/s
	GoalAllocsPerRequest    = 20.0
	GoalIdleRSS             = 10 << 20
	goalScenario            = "small-h1"
	goalTarget              = "outrigger"

	// The protocols issue's targets.
	GoalH3VsCaddy   = 1.2 // small-h3 closed loop
	GoalTCPVsDirect = 0.8 // tcp-bulk closed loop
	goalH3Scenario  = "small-h3"
	goalTCPScenario = "tcp-bulk"
	caddyTarget     = "caddy"
)

// writeGoals renders the goal table when the run has what it needs.
func writeGoals(b *strings.Builder, r *Run, sums []Summary) {
	type row struct{ goal, got, verdict string }
	var rows []row
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**short**"
	}
	o, hasO := Find(sums, Key{goalScenario, goalTarget, "closed", 0})
	h, hasH := Find(sums, Key{goalScenario, HAProxyTarget, "closed", 0})
	if hasO && hasH && h.Throughput.Median > 0 {
		x := o.Throughput.Median / h.Throughput.Median
		rows = append(rows, row{
			fmt.Sprintf("throughput ≥ %.1f× HAProxy (small-h1, closed loop)", GoalThroughputVsHAProxy),
			fmt.Sprintf("%.2f× (%s vs %s req/s)", x, fmtRate(o.Throughput.Median), fmtRate(h.Throughput.Median)),
			verdict(x >= GoalThroughputVsHAProxy),
		})
	}
	oo, hasOO := Find(sums, Key{goalScenario, goalTarget, "open", 1000})
	d, hasD := Find(sums, Key{goalScenario, DirectTarget, "open", 1000})
	if hasOO && hasD {
		add := time.Duration(oo.P99.Median - d.P99.Median)
		rows = append(rows, row{
			fmt.Sprintf("added p99 ≤ %v at 1k req/s open loop", GoalAddedP99),
			fmt.Sprintf("%s (p99 %s vs direct %s)", added(oo.P99, d.P99, true), fmtDur(oo.P99.Median), fmtDur(d.P99.Median)),
			verdict(add <= GoalAddedP99),
		})
	}
	ratioRow := func(scenario, peer, label string, goal float64, unit func(float64) string) {
		o, hasO := Find(sums, Key{scenario, goalTarget, "closed", 0})
		p, hasP := Find(sums, Key{scenario, peer, "closed", 0})
		if !hasO || !hasP || p.Throughput.Median <= 0 {
			return
		}
		x := o.Throughput.Median / p.Throughput.Median
		rows = append(rows, row{
			fmt.Sprintf("%s ≥ %.1f× %s (%s, closed loop)", label, goal, peer, scenario),
			fmt.Sprintf("%.2f× (%s vs %s)", x, unit(o.Throughput.Median), unit(p.Throughput.Median)),
			verdict(x >= goal),
		})
	}
	ratioRow(goalH3Scenario, caddyTarget, "HTTP/3 throughput", GoalH3VsCaddy, func(v float64) string { return fmtRate(v) + " req/s" })
	ratioRow(goalTCPScenario, DirectTarget, "TCP proxy throughput", GoalTCPVsDirect, func(v float64) string {
		bpo := 0.0
		for _, sc := range r.Scenarios {
			if sc.Name == goalTCPScenario {
				bpo = float64(sc.BytesPerOp)
			}
		}
		if bpo == 0 {
			return fmtRate(v) + " op/s"
		}
		return fmt.Sprintf("%.2f GB/s", v*bpo/1e9)
	})
	if p := r.Profile; p != nil && p.AllocsPerRequest > 0 {
		rows = append(rows, row{
			fmt.Sprintf("≤ %.0f allocations per request", GoalAllocsPerRequest),
			fmt.Sprintf("%.1f", p.AllocsPerRequest),
			verdict(p.AllocsPerRequest <= GoalAllocsPerRequest),
		})
	}
	for _, t := range r.Targets {
		if t.Name == goalTarget && t.IdleRSS > 0 {
			rows = append(rows, row{
				fmt.Sprintf("idle RSS ≤ %s", fmtBytes(GoalIdleRSS)),
				fmtBytes(float64(t.IdleRSS)),
				verdict(t.IdleRSS <= GoalIdleRSS),
			})
		}
	}
	if len(rows) == 0 {
		return
	}
	b.WriteString("## Outrigger against its goals (one hop)\n\n| goal | this run | |\n|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %s | %s | %s |\n", r.goal, r.got, r.verdict)
	}
	b.WriteString("\n")
}
