package tailbench

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// WriteMarkdown renders the report: command, machine, settings, the table
// and a reading of it.
func WriteMarkdown(w io.Writer, r *Report) error {
	var b strings.Builder
	c := r.Config
	b.WriteString("# Tail latency with one slow backend: per-try timeout and hedging\n\n")
	fmt.Fprintf(&b, "Generated %s in %s by:\n\n```\n%s\n```\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Took.Round(time.Second), orDash(r.Command))

	b.WriteString("## Machine\n\n")
	fmt.Fprintf(&b, "- CPU: %s, `nproc` = %d\n", orDash(r.Machine.CPUModel), r.Machine.NProc)
	fmt.Fprintf(&b, "- Kernel: %s; Go: %s\n", orDash(r.Machine.Kernel), orDash(r.Machine.GoVer))
	fmt.Fprintf(&b, "- outrigger: %s, a child process with `GOMAXPROCS=1`, one fresh process per setup\n", orDash(r.Outrigger))
	b.WriteString("- The load generator, the backends and the proxy share these cores and the machine is shared: " +
		"compare the rows of this run with each other, not with another run.\n\n")

	b.WriteString("## Settings\n\n")
	fmt.Fprintf(&b, "- Backends: three HTTP/1.1 servers on 127.0.0.1 (Go net/http). `slow` answers %s of its requests "+
		"(evenly spread: every %s) after %s; every other answer, on all three, takes %s.\n",
		pct(c.SlowFraction), every(c.SlowFraction), c.SlowDelay, c.ServiceTime)
	fmt.Fprintf(&b, "- Load: HTTP/1.1 GET, open loop at %s req/s for %s per setup after a %s warm-up at the same rate "+
		"(not measured), at most %d requests in flight on %d keep-alive connections; latency from each request's "+
		"scheduled send time (no coordinated omission) into an HDR histogram. The setups run back to back in the order below.\n",
		trimFloat(c.Rate), c.Duration, c.Warmup, c.Workers, c.Workers)
	b.WriteString("- Proxy: one listener, one route to a STATIC `ROUND_ROBIN` cluster over the three backends; no outlier " +
		"detection, no health checks, default circuit breakers and retry budget (20 %, min 3).\n")
	b.WriteString("- Direct: the generator itself takes the backends in turn (one connection per backend per worker).\n")
	backoff := "Envoy's default `retry_back_off` (base 25 ms: the first retry waits a random 0–25 ms)"
	if c.BackoffBase > 0 {
		backoff = fmt.Sprintf("`retry_back_off.base_interval` %s (the first retry waits a random 0–%s)", c.BackoffBase, c.BackoffBase)
	}
	fmt.Fprintf(&b, "- Retries: %s.\n", backoff)
	for _, row := range r.Rows {
		if row.Policy == "" {
			continue
		}
		fmt.Fprintf(&b, "\n%s, under the route's `route:`:\n\n```yaml\n%s```\n", row.Setup, row.Policy)
	}

	b.WriteString("\n## Results\n\n")
	fmt.Fprintf(&b, "| setup | requests | p50 | p90 | p99 | p99.9 | max | failed | upstream tries / request | retries | slow tries served / cut | backend requests (%s) | gen lag p99 |\n",
		strings.Join(r.Backends, " / "))
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, row := range r.Rows {
		t := row.BackendTotal()
		retries := "—"
		if row.Proxy != nil {
			retries = fmt.Sprintf("%.0f", row.Proxy.Retries)
			if row.Proxy.RetryOverflow > 0 {
				retries += fmt.Sprintf(" (+%.0f refused)", row.Proxy.RetryOverflow)
			}
		}
		var per []string
		for _, bc := range row.Backends {
			per = append(per, fmt.Sprint(bc.Requests))
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %d | %.3f | %s | %d / %d | %s | %s |\n",
			row.Setup, row.Sent, ms(row.P50), ms(row.P90), ms(row.P99), ms(row.P999), ms(row.Max),
			row.Failed, row.TriesPerRequest(), retries, t.SlowServed, t.SlowCut, strings.Join(per, " / "), ms(row.GenLagP99))
	}
	b.WriteString("\nUpstream tries are the proxy's `outrigger_upstream_rq_total` (direct: the backends' own count) over " +
		"the measured load, divided by the requests sent; retries are `outrigger_upstream_rq_retry_total` (hedges " +
		"included). Slow tries served / cut: the slow backend's late answers sent in full, and those whose try the " +
		"proxy ended before the delay was up.\n")
	for _, row := range r.Rows {
		if row.ErrorSummary != "" {
			fmt.Fprintf(&b, "\nFailures, %s: %s\n", row.Setup, row.ErrorSummary)
		}
		if p := row.Proxy; p != nil && (p.Timeouts > 0 || p.Canceled > 0) {
			fmt.Fprintf(&b, "\n%s: %.0f tries ended by the per-try timeout, %.0f cancelled (a hedge that lost, or the client left).\n",
				row.Setup, p.Timeouts, p.Canceled)
		}
	}

	b.WriteString("\n## Reading\n\n")
	b.WriteString(Reading(r))
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Reading is the paragraph that states the measured ratios.
func Reading(r *Report) string {
	base, ok1 := r.Row(SetupNoRetry)
	retry, ok2 := r.Row(SetupRetry)
	hedge, ok3 := r.Row(SetupHedge)
	if !ok1 || !ok2 || !ok3 {
		return "Incomplete run: not every setup was measured.\n"
	}
	c := r.Config
	var b strings.Builder
	fmt.Fprintf(&b, "One backend of three answers %s of its requests after %s, so about %s of the first tries are slow. ",
		pct(c.SlowFraction), c.SlowDelay, pct(c.SlowFraction/3))
	if d, ok := r.Row(SetupDirect); ok {
		fmt.Fprintf(&b, "Direct, the p99 is %s (p50 %s); ", ms(d.P99), ms(d.P50))
	}
	fmt.Fprintf(&b, "through outrigger with no retry policy it is %s (p50 %s). ", ms(base.P99), ms(base.P50))
	fmt.Fprintf(&b, "A per-try timeout of %s with up to %d retries on another host brings the p99 to %s: **%s the baseline's** "+
		"(p99.9 %s vs %s, max %s vs %s), for %.3f upstream tries per request instead of %.3f. ",
		c.PerTryTimeout, c.NumRetries, ms(retry.P99), ratio(retry.P99, base.P99),
		ms(retry.P999), ms(base.P999), ms(retry.Max), ms(base.Max), retry.TriesPerRequest(), base.TriesPerRequest())
	fmt.Fprintf(&b, "Adding hedging on the per-try timeout gives a p99 of %s: **%s the baseline's** and %s the retries' "+
		"(p99.9 %s, max %s), for %.3f tries per request. ",
		ms(hedge.P99), ratio(hedge.P99, base.P99), ratio(hedge.P99, retry.P99), ms(hedge.P999), ms(hedge.Max), hedge.TriesPerRequest())
	firstBackoff := 25 * time.Millisecond
	if c.BackoffBase > 0 {
		firstBackoff = c.BackoffBase
	}
	if c.SlowDelay > c.PerTryTimeout+firstBackoff+c.ServiceTime {
		fmt.Fprintf(&b, "Here a slow answer (%s) always comes after the second try's (per-try timeout %s + backoff ≤ %s + %s), "+
			"so the slow try a hedge keeps running never wins: hedging can at best match plain retries, and differs from "+
			"them only in ending the slow try when the hedge answers instead of at the timeout. ",
			c.SlowDelay, c.PerTryTimeout, firstBackoff, c.ServiceTime)
	}
	var failed []string
	for _, row := range r.Rows {
		if row.Failed > 0 {
			failed = append(failed, fmt.Sprintf("%s: %d", row.Setup, row.Failed))
		}
	}
	if len(failed) > 0 {
		fmt.Fprintf(&b, "Failed requests: %s (see above). ", strings.Join(failed, "; "))
	} else {
		b.WriteString("No request failed in any setup. ")
	}
	b.WriteString("These are one run's figures on a shared machine; the ratios, not the absolute values, are the result.\n")
	return b.String()
}

// ms renders a latency in milliseconds with three significant figures or
// so; zero (no successful request) is a dash.
func ms(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	m := float64(d) / float64(time.Millisecond)
	switch {
	case m < 10:
		return fmt.Sprintf("%.2f ms", m)
	case m < 100:
		return fmt.Sprintf("%.1f ms", m)
	default:
		return fmt.Sprintf("%.0f ms", m)
	}
}

// ratio is a/b as "0.23×"; a dash when b is zero.
func ratio(a, b time.Duration) string {
	if b <= 0 || a <= 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

func pct(f float64) string { return strconv.FormatFloat(100*f, 'g', 3, 64) + " %" }

// every renders a slow fraction as "10th request" style text.
func every(f float64) string {
	if f <= 0 {
		return "never"
	}
	n := 1 / f
	if n == float64(int64(n)) {
		if n == 1 {
			return "request"
		}
		return ordinal(int64(n)) + " request"
	}
	return fmt.Sprintf("%.3g requests", n)
}

func ordinal(n int64) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return fmt.Sprintf("%d%s", n, suffix)
}

func trimFloat(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", f), "0"), ".")
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
