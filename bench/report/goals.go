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
