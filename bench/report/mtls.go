package report

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// Issue 8's target for mTLS between sidecars: the two-hop path with mTLS
// against the same path in plaintext, gRPC unary at 1k req/s open loop.
const (
	GoalMTLSAddedP99 = 150 * time.Microsecond
	goalMTLSScenario = "grpc-unary"
	goalMTLSRate     = 1000
	// Target names the comparison needs (bench/harness's).
	TwoHopTarget     = "outrigger-2hop"
	TwoHopMTLSTarget = "outrigger-2hop-mtls"
	// The A/B target's two paths, measured at the same time through the
	// same two processes.
	ABPlaintext = "outrigger-2hop-ab/plaintext"
	ABMTLS      = "outrigger-2hop-ab/mtls"
	// verdictConfidence is the confidence of the interval a verdict needs.
	verdictConfidence = 0.90
)

// Comparison is the latency one target adds over another in one scenario's
// open-loop runs at one rate. The differences are paired: each repetition's
// target percentile minus the same repetition's base percentile (the two
// ran back to back), then the median and range over repetitions.
type Comparison struct {
	Scenario     string
	Rate         float64
	Target, Base string
	AddedP50     Spread
	AddedP90     Spread
	AddedP99     Spread
	// AddedP99s are the repetitions' p99 differences, for the confidence
	// interval of their median.
	AddedP99s []float64
	// Interleaved is true for the A/B paths: both ran at once through the
	// same processes, so the machine's noise hit both alike; their CPU and
	// system calls cannot be told apart and are not reported.
	Interleaved bool
	// AddedCPU is the proxy processes' CPU time per request (nanoseconds)
	// of the target minus the base's (direct has none): the cost that
	// scheduling noise on a shared machine does not blur.
	AddedCPU Spread
	// TargetSyscalls and BaseSyscalls are the proxy processes' read and
	// write system calls per request, R and W (N = 0: not known, or
	// direct): how often the proxies go to the kernel, which TLS turns
	// into one record each for writes.
	TargetSyscR, TargetSyscW, BaseSyscR, BaseSyscW Spread
	// TargetConns and BaseConns are the connections the proxy nearest the
	// backend accepted during the measured runs (summed over repetitions),
	// -1 when not known; Requests are the target's requests.
	TargetConns, BaseConns int64
	Requests               int64
}

// Compare pairs target's and base's open-loop measurements of scenario at
// rate by repetition. ok is false when no repetition has both.
func Compare(ms []Measurement, scenario string, rate float64, target, base string) (Comparison, bool) {
	c := Comparison{Scenario: scenario, Rate: rate, Target: target, Base: base, TargetConns: -1, BaseConns: -1,
		Interleaved: target == ABMTLS && base == ABPlaintext}
	pick := func(name string) map[int]Measurement {
		out := map[int]Measurement{}
		for _, m := range ms {
			if m.Scenario == scenario && m.Target == name && m.Mode == "open" && m.Rate == rate {
				out[m.Rep] = m
			}
		}
		return out
	}
	ts, bs := pick(target), pick(base)
	var p50, p90, p99, cpu []float64
	var tr, tw, br, bw []float64
	sysc := func(m Measurement, r, w *[]float64) {
		if n := m.OK + m.Failed; m.SyscKnown && n > 0 {
			*r = append(*r, float64(m.SyscR)/float64(n))
			*w = append(*w, float64(m.SyscW)/float64(n))
		}
	}
	perReq := func(m Measurement) float64 {
		if n := m.OK + m.Failed; n > 0 {
			return float64(m.CPU) / float64(n)
		}
		return 0
	}
	reps := make([]int, 0, len(ts))
	for rep := range ts {
		reps = append(reps, rep)
	}
	slices.Sort(reps)
	conns := func(sum *int64, m Measurement) {
		switch {
		case !m.LastHopConnsKnown:
		case *sum < 0:
			*sum = m.LastHopConns
		default:
			*sum += m.LastHopConns
		}
	}
	for _, rep := range reps {
		t := ts[rep]
		b, ok := bs[rep]
		if !ok {
			continue
		}
		p50 = append(p50, float64(t.P50-b.P50))
		p90 = append(p90, float64(t.P90-b.P90))
		p99 = append(p99, float64(t.P99-b.P99))
		cpu = append(cpu, perReq(t)-perReq(b))
		sysc(t, &tr, &tw)
		sysc(b, &br, &bw)
		conns(&c.TargetConns, t)
		conns(&c.BaseConns, b)
		c.Requests += t.OK + t.Failed
	}
	if len(p50) == 0 {
		return c, false
	}
	c.AddedP50, c.AddedP90, c.AddedP99, c.AddedCPU = SpreadOf(p50), SpreadOf(p90), SpreadOf(p99), SpreadOf(cpu)
	c.AddedP99s = p99
	c.TargetSyscR, c.TargetSyscW, c.BaseSyscR, c.BaseSyscW = SpreadOf(tr), SpreadOf(tw), SpreadOf(br), SpreadOf(bw)
	return c, true
}

// MTLSComparisons are, for every scenario and open-loop rate with an mTLS
// target: the interleaved A/B paths' mTLS over plaintext, the sequential
// two-hop targets' mTLS over plaintext, and each two-hop over direct.
func MTLSComparisons(r *Run) []Comparison {
	var out []Comparison
	type sr struct {
		scenario string
		rate     float64
	}
	var seen []sr
	for _, m := range r.Measurements {
		k := sr{m.Scenario, m.Rate}
		if (m.Target != TwoHopMTLSTarget && m.Target != ABMTLS) || m.Mode != "open" || slices.Contains(seen, k) {
			continue
		}
		seen = append(seen, k)
		for _, pair := range [][2]string{
			{ABMTLS, ABPlaintext},
			{TwoHopMTLSTarget, TwoHopTarget},
			{TwoHopTarget, DirectTarget},
			{TwoHopMTLSTarget, DirectTarget},
		} {
			if c, ok := Compare(r.Measurements, k.scenario, k.rate, pair[0], pair[1]); ok {
				out = append(out, c)
			}
		}
	}
	return out
}

// writeMTLS renders the comparisons and, when the run has it, issue 8's
// verdict.
func writeMTLS(b *strings.Builder, r *Run) {
	cs := MTLSComparisons(r)
	if len(cs) == 0 {
		return
	}
	b.WriteString("## mTLS between sidecars: latency added\n\n")
	b.WriteString("Each repetition's percentile of the first target minus the same repetition's percentile of the " +
		"second; median of the repetitions with the min–max range in brackets. " + ABMTLS + " and " + ABPlaintext +
		" are the two paths of one pair of sidecars, loaded at the same time with their sends interleaved, so the " +
		"processes, their garbage collections and the machine's noise are the same for both; the other targets ran " +
		"back to back in separate processes. " +
		"\"conns\" are the connections the server-side proxy (nearest the backend) accepted during the measured " +
		"runs: between the two sidecars, so with mTLS each is one handshake. \"added CPU\" is the proxy processes' " +
		"CPU time per request (both sidecars; direct has none) of the first minus the second's: on a busy shared " +
		"machine the latency percentiles carry the scheduler's noise, the CPU cost does not.\n\n")
	b.WriteString("| scenario | rate | added by | over | added p50 | added p90 | added p99 | added CPU per request | " +
		"syscalls per request, read + write (first / second) | reps | conns (first / second) | requests |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range cs {
		cpu, sysc := fmtSpread(c.AddedCPU, fmtSignedFine), syscCell(c.TargetSyscR, c.TargetSyscW)+" / "+syscCell(c.BaseSyscR, c.BaseSyscW)
		if c.Interleaved {
			cpu, sysc = "— (same processes)", "—"
		}
		fmt.Fprintf(b, "| %s | %s/s | %s | %s | %s | %s | %s | %s | %s | %d | %s / %s | %d |\n",
			c.Scenario, fmtRate(c.Rate), c.Target, c.Base,
			fmtSpread(c.AddedP50, fmtSigned), fmtSpread(c.AddedP90, fmtSigned), fmtSpread(c.AddedP99, fmtSigned),
			cpu, sysc, c.AddedP99.N, connsCell(c.TargetConns, c.Target), connsCell(c.BaseConns, c.Base), c.Requests)
	}
	b.WriteString("\n")
	for _, c := range cs {
		if c.Scenario != goalMTLSScenario || c.Rate != goalMTLSRate ||
			!(c.Target == ABMTLS && c.Base == ABPlaintext || c.Target == TwoHopMTLSTarget && c.Base == TwoHopTarget) {
			continue
		}
		how := "sequential runs (separate processes, back to back)"
		if c.Interleaved {
			how = "interleaved (both paths at once through the same sidecars)"
		}
		verdict := MTLSVerdict(c.AddedP99s)
		switch verdict {
		case "short", "inconclusive":
			verdict = "**" + verdict + "**"
		}
		ci := fmt.Sprintf("too few repetitions for a %.0f %% confidence interval", 100*verdictConfidence)
		if lo, hi, ok := MedianCI(c.AddedP99s, verdictConfidence); ok {
			ci = fmt.Sprintf("%.0f %% confidence interval of the median %s to %s", 100*verdictConfidence, fmtSigned(lo), fmtSigned(hi))
		}
		fmt.Fprintf(b, "Issue 8's target, added p99 of mTLS over plaintext for both hops together ≤ %s "+
			"(%s at %s req/s open loop), %s: %s, median %s, %s (range %s to %s over %d repetitions).\n\n",
			fmtDur(float64(GoalMTLSAddedP99)), c.Scenario, fmtRate(c.Rate), how, verdict,
			fmtSigned(c.AddedP99.Median), ci, fmtSigned(c.AddedP99.Min), fmtSigned(c.AddedP99.Max), c.AddedP99.N)
	}
	b.WriteString("A verdict needs the confidence interval of the median difference (distribution-free, from the " +
		"repetitions' order statistics) on one side of the target: \"met\" when its upper end is at most the " +
		"target, \"short\" when its lower end is above it, \"inconclusive\" otherwise.\n\n")
}

// MTLSVerdict judges issue 8's target from the repetitions' paired p99
// differences: "met" when the confidence interval of their median lies at
// or below the target, "short" when it lies above, and "inconclusive"
// when it straddles the target or there are too few repetitions for one
// (the machine's noise would decide the verdict).
func MTLSVerdict(addedP99s []float64) string {
	lo, hi, ok := MedianCI(addedP99s, verdictConfidence)
	switch {
	case !ok:
		return "inconclusive"
	case hi <= float64(GoalMTLSAddedP99):
		return "met"
	case lo > float64(GoalMTLSAddedP99):
		return "short"
	default:
		return "inconclusive"
	}
}

// MedianCI is a distribution-free confidence interval for the median of
// the population vs were drawn from: the k-th smallest and k-th largest
// values, k the largest for which a Binomial(n, ½) falls below k with
// probability at most (1−conf)/2 (the sign test's interval; its coverage is
// at least conf). ok is false when n is too small for any k (n < 5 at
// 90 %).
func MedianCI(vs []float64, conf float64) (lo, hi float64, ok bool) {
	n := len(vs)
	if n == 0 {
		return 0, 0, false
	}
	tail := (1 - conf) / 2
	// cdf accumulates P(B <= j) for B ~ Binomial(n, 1/2).
	k, cdf, pj := 0, 0.0, math.Pow(0.5, float64(n))
	for j := 0; j < n/2; j++ {
		cdf += pj
		if cdf > tail {
			break
		}
		k = j + 1
		pj = pj * float64(n-j) / float64(j+1)
	}
	if k == 0 {
		return 0, 0, false
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[k-1], s[n-k], true
}

func syscCell(r, w Spread) string {
	if r.N == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f + %.1f", r.Median, w.Median)
}

func connsCell(n int64, target string) string {
	if n < 0 || target == DirectTarget {
		return "—"
	}
	return fmt.Sprintf("%d", n)
}

// fmtSignedFine is fmtSigned with a tenth of a microsecond below 100 µs.
func fmtSignedFine(ns float64) string {
	a := ns
	if a < 0 {
		a = -a
	}
	if a >= 100e3 {
		return fmtSigned(ns)
	}
	if ns < 0 {
		return fmt.Sprintf("−%.1f µs", a/1e3)
	}
	return fmt.Sprintf("+%.1f µs", a/1e3)
}

// fmtSigned is fmtDur with a sign: differences can be negative.
func fmtSigned(ns float64) string {
	if ns < 0 {
		return "−" + fmtDur(-ns)
	}
	return "+" + fmtDur(ns)
}

// LoadAvg reads /proc/loadavg's first three fields ("" when unreadable):
// the machine is shared, so a report says how busy it was.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
