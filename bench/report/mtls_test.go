package report

import (
	"strings"
	"testing"
	"time"
)

// mtlsRun is direct, the plaintext and the mTLS two-hop, three repetitions
// of grpc-unary at 1k req/s; the mTLS target adds 20 µs at p99 in every
// repetition but the third (50 µs), and rep 3 of the plaintext is missing
// its pair for direct.
func mtlsRun() *Run {
	r := &Run{Targets: []TargetInfo{{Name: DirectTarget}, {Name: TwoHopTarget}, {Name: TwoHopMTLSTarget}},
		Scenarios: []ScenarioInfo{{Name: "grpc-unary", Protocol: "grpc", Workers: 50, RefRate: 1000}}}
	for rep := 1; rep <= 3; rep++ {
		base := time.Duration(rep) * 100 * time.Microsecond
		extra := 20 * time.Microsecond
		if rep == 3 {
			extra = 50 * time.Microsecond
		}
		m := func(target string, add time.Duration, cpu time.Duration, conns int64, known bool) Measurement {
			return Measurement{Scenario: "grpc-unary", Target: target, Rep: rep, Mode: "open", Rate: 1000, OK: 1000,
				P50: base/2 + add, P90: base + add, P99: 2*base + add, CPU: cpu, LastHopConns: conns, LastHopConnsKnown: known}
		}
		if rep != 3 {
			r.Measurements = append(r.Measurements, m(DirectTarget, 0, 0, 0, false))
		}
		r.Measurements = append(r.Measurements,
			m(TwoHopTarget, 300*time.Microsecond, 500*time.Millisecond, 0, true),
			m(TwoHopMTLSTarget, 300*time.Microsecond+extra, 510*time.Millisecond, int64(rep%2), true),
		)
	}
	// A closed-loop run is not compared.
	r.Measurements = append(r.Measurements, Measurement{Scenario: "grpc-unary", Target: TwoHopMTLSTarget, Rep: 1, Mode: "closed", OK: 5})
	return r
}

func TestCompare(t *testing.T) {
	r := mtlsRun()
	c, ok := Compare(r.Measurements, "grpc-unary", 1000, TwoHopMTLSTarget, TwoHopTarget)
	if !ok {
		t.Fatal("no comparison")
	}
	us := float64(time.Microsecond)
	if c.AddedP99 != (Spread{Median: 20 * us, Min: 20 * us, Max: 50 * us, N: 3}) || c.AddedP50.Median != 20*us {
		t.Errorf("added p50 %+v p99 %+v", c.AddedP50, c.AddedP99)
	}
	// 10 ms more CPU over 1,000 requests: 10 µs each.
	if c.AddedCPU.Median != 10*us {
		t.Errorf("added CPU %+v", c.AddedCPU)
	}
	if c.TargetConns != 2 || c.BaseConns != 0 || c.Requests != 3000 {
		t.Errorf("conns %d / %d, requests %d", c.TargetConns, c.BaseConns, c.Requests)
	}
	d, ok := Compare(r.Measurements, "grpc-unary", 1000, TwoHopTarget, DirectTarget)
	if !ok || d.AddedP99.N != 2 || d.BaseConns != -1 {
		t.Errorf("over direct: %+v", d)
	}
	if _, ok := Compare(r.Measurements, "grpc-unary", 2000, TwoHopMTLSTarget, TwoHopTarget); ok {
		t.Error("a rate that did not run compared")
	}
	if cs := MTLSComparisons(r); len(cs) != 3 {
		t.Errorf("%d comparisons, want 3", len(cs))
	}
	if cs := MTLSComparisons(sampleRun()); len(cs) != 0 {
		t.Errorf("a run without the mTLS target has comparisons %+v", cs)
	}
}

func TestWriteMTLS(t *testing.T) {
	r := mtlsRun()
	r.Machine.LoadAvgStart, r.Machine.LoadAvgEnd = "1.00 2.00 3.00", "4.00 5.00 6.00"
	var b strings.Builder
	if err := WriteMarkdown(&b, r, PlotFiles{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"## mTLS between sidecars",
		"| grpc-unary | 1.00k/s | outrigger-2hop-mtls | outrigger-2hop | +20 µs (+20 µs–+50 µs) |",
		"+10.0 µs",
		"| 2 / 0 |",
		"≤ 150 µs (grpc-unary at 1.00k req/s open loop), sequential runs (separate processes, back to back): **inconclusive**, median +20 µs, too few repetitions",
		"Load average (1, 5, 15 min): 1.00 2.00 3.00 at the start, 4.00 5.00 6.00 at the end",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q\n%s", want, out)
		}
	}
	// Five repetitions over the goal: short.
	r = mtlsRun()
	for rep := 4; rep <= 5; rep++ {
		for _, m := range r.Measurements[:6] {
			if m.Target != DirectTarget && m.Mode == "open" && m.Rep == 1 {
				m.Rep = rep
				r.Measurements = append(r.Measurements, m)
			}
		}
	}
	for i := range r.Measurements {
		if r.Measurements[i].Target == TwoHopMTLSTarget {
			r.Measurements[i].P99 += time.Millisecond
		}
	}
	b.Reset()
	if err := WriteMarkdown(&b, r, PlotFiles{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), ": **short**, median +1.02 ms, 90 % confidence interval of the median +1.02 ms to +1.05 ms") {
		t.Errorf("no short verdict:\n%s", b.String())
	}
}

func TestMTLSVerdict(t *testing.T) {
	us := func(vs ...float64) []float64 {
		for i := range vs {
			vs[i] *= float64(time.Microsecond)
		}
		return vs
	}
	for _, tc := range []struct {
		diffs []float64
		want  string
	}{
		{us(50, 80, 100, 120, 140), "met"},
		{us(50, 80, 100, 120, 151), "inconclusive"}, // n = 5: the interval is the range
		{us(151, 160, 200, 220, 250), "short"},
		{us(100, 100, 100, 100), "inconclusive"}, // too few for a 90 % interval
		// n = 10: the 2nd smallest to the 2nd largest; one outlier each side
		// does not decide.
		{us(-900, -50, -20, 0, 10, 20, 30, 60, 140, 2000), "met"},
		{us(-900, -50, -20, 0, 10, 20, 30, 60, 160, 2000), "inconclusive"},
		{nil, "inconclusive"},
	} {
		if got := MTLSVerdict(tc.diffs); got != tc.want {
			t.Errorf("%v: %s, want %s", tc.diffs, got, tc.want)
		}
	}
}

func TestMedianCI(t *testing.T) {
	vs := func(n int) []float64 {
		out := make([]float64, n)
		for i := range out {
			out[i] = float64(n - i) // descending: MedianCI sorts
		}
		return out
	}
	for _, tc := range []struct {
		n, conf float64
		ok      bool
		lo, hi  float64
	}{
		{4, 0.90, false, 0, 0},
		{5, 0.90, true, 1, 5},   // P(B=0) = 1/32 ≤ 0.05
		{10, 0.90, true, 2, 9},  // P(B≤1) = 11/1024; P(B≤2) = 56/1024 > 0.05
		{15, 0.90, true, 4, 12}, // P(B≤3) = 576/32768 = 0.018; P(B≤4) = 0.059
		{6, 0.95, true, 1, 6},   // P(B=0) = 1/64 ≤ 0.025
		{5, 0.95, false, 0, 0},
	} {
		lo, hi, ok := MedianCI(vs(int(tc.n)), tc.conf)
		if ok != tc.ok || lo != tc.lo || hi != tc.hi {
			t.Errorf("n=%v conf=%v: [%v, %v] %v, want [%v, %v] %v", tc.n, tc.conf, lo, hi, ok, tc.lo, tc.hi, tc.ok)
		}
	}
}

// abRun has the A/B target's two paths over ten repetitions (the mTLS path
// 30 µs slower at p99, 400 µs in the fourth: the 90 % interval of ten
// leaves out the largest and the smallest) and the sequential targets too
// noisy to judge.
func abRun() *Run {
	r := &Run{Targets: []TargetInfo{{Name: TwoHopTarget}, {Name: TwoHopMTLSTarget}, {Name: "outrigger-2hop-ab"}},
		Scenarios: []ScenarioInfo{{Name: "grpc-unary", Protocol: "grpc", Workers: 50, RefRate: 1000}}}
	for rep := 1; rep <= 10; rep++ {
		m := func(target string, p99 time.Duration) Measurement {
			return Measurement{Scenario: "grpc-unary", Target: target, Rep: rep, Mode: "open", Rate: 1000, OK: 1000,
				P50: 500 * time.Microsecond, P90: time.Millisecond, P99: p99}
		}
		extra := 30 * time.Microsecond
		if rep == 4 {
			extra = 400 * time.Microsecond
		}
		noise := time.Duration(rep%3) * time.Millisecond
		r.Measurements = append(r.Measurements,
			m(ABPlaintext, 2*time.Millisecond+noise), m(ABMTLS, 2*time.Millisecond+noise+extra),
			m(TwoHopTarget, 2*time.Millisecond+noise), m(TwoHopMTLSTarget, 3*time.Millisecond-noise))
	}
	return r
}

func TestWriteMTLSInterleaved(t *testing.T) {
	r := abRun()
	cs := MTLSComparisons(r)
	if len(cs) != 2 || !cs[0].Interleaved || cs[0].Target != ABMTLS || cs[1].Interleaved {
		t.Fatalf("comparisons %+v", cs)
	}
	var b strings.Builder
	if err := WriteMarkdown(&b, r, PlotFiles{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"| grpc-unary | 1.00k/s | outrigger-2hop-ab/mtls | outrigger-2hop-ab/plaintext | +0 µs | +0 µs | +30 µs (+30 µs–+400 µs) | — (same processes) | — | 10 |",
		"interleaved (both paths at once through the same sidecars): met, median +30 µs, 90 % confidence interval of the median +30 µs to +30 µs (range +30 µs to +400 µs over 10 repetitions)",
		"sequential runs (separate processes, back to back): **inconclusive**",
		// The paths appear in the scenario's open-loop table.
		"| outrigger-2hop-ab/plaintext |", "| outrigger-2hop-ab/mtls |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q\n%s", want, out)
		}
	}
}

func TestFmtSigned(t *testing.T) {
	for ns, want := range map[float64]string{
		-1500: "−1.5 µs", 2500: "+2.5 µs", 150e3: "+150 µs", -2e6: "−2.00 ms",
	} {
		if got := fmtSignedFine(ns); got != want {
			t.Errorf("fmtSignedFine(%v) = %q, want %q", ns, got, want)
		}
	}
	if LoadAvg() == "" {
		t.Error("no /proc/loadavg")
	}
}
