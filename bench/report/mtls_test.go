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
		"≤ 150 µs (grpc-unary at 1.00k req/s open loop): met, median +20 µs",
		"Load average (1, 5, 15 min): 1.00 2.00 3.00 at the start, 4.00 5.00 6.00 at the end",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q\n%s", want, out)
		}
	}
	// Over the goal: short.
	for i := range r.Measurements {
		if r.Measurements[i].Target == TwoHopMTLSTarget {
			r.Measurements[i].P99 += time.Millisecond
		}
	}
	b.Reset()
	if err := WriteMarkdown(&b, r, PlotFiles{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), ": **short**, median +1.02 ms") {
		t.Errorf("no short verdict:\n%s", b.String())
	}
	// Repetitions far apart: the noise decides, so no verdict.
	r.Measurements[2].P99 += 5 * time.Millisecond
	b.Reset()
	if err := WriteMarkdown(&b, r, PlotFiles{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), ": **inconclusive** (the repetitions' differences spread over 5.00 ms") {
		t.Errorf("no inconclusive verdict:\n%s", b.String())
	}
}

func TestMTLSVerdict(t *testing.T) {
	us := float64(time.Microsecond)
	for _, tc := range []struct {
		s    Spread
		want string
	}{
		{Spread{Median: 100 * us, Min: 50 * us, Max: 200 * us, N: 5}, "met"},
		{Spread{Median: 200 * us, Min: 150 * us, Max: 250 * us, N: 5}, "short"},
		{Spread{Median: 100 * us, Min: -1000 * us, Max: 200 * us, N: 5}, "inconclusive"},
		{Spread{Median: 100 * us, Min: 100 * us, Max: 100 * us, N: 2}, "inconclusive"},
	} {
		if got := MTLSVerdict(tc.s); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.s, got, tc.want)
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
