package report

import (
	"strings"
	"testing"
	"time"
)

func TestWriteGoals(t *testing.T) {
	r := sampleRun()
	r.Targets = append(r.Targets, TargetInfo{Name: "outrigger", IdleRSS: 12 << 20})
	r.Profile = &Profile{AllocsPerRequest: 18.5, Requests: 1000}
	for rep := 1; rep <= 2; rep++ {
		r.Measurements = append(r.Measurements,
			Measurement{Scenario: "small-h1", Target: "outrigger", Rep: rep, Mode: "closed", Throughput: 30000 * float64(rep), OK: 1},
			Measurement{Scenario: "small-h1", Target: "outrigger", Rep: rep, Mode: "open", Rate: 1000, OK: 1, P99: 180 * time.Microsecond},
		)
	}
	var b strings.Builder
	writeGoals(&b, r, Summarise(r.Measurements))
	got := b.String()
	for _, want := range []string{
		"| throughput ≥ 1.0× HAProxy (small-h1, closed loop) | 0.75× (45.0k vs 60.0k req/s) | **short** |",
		"| added p99 ≤ 100µs at 1k req/s open loop | +80 µs (p99 180 µs vs direct 100 µs) | met |",
		"| ≤ 20 allocations per request | 18.5 | met |",
		"| idle RSS ≤ 10.0 MiB | 12.0 MiB | **short** |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("goals lack %q\n%s", want, got)
		}
	}
	// The protocols issue's two ratios.
	r = sampleRun()
	r.Scenarios = append(r.Scenarios, ScenarioInfo{Name: "tcp-bulk", BytesPerOp: 1 << 20})
	r.Measurements = append(r.Measurements,
		Measurement{Scenario: "small-h3", Target: "outrigger", Rep: 1, Mode: "closed", Throughput: 15000, OK: 1},
		Measurement{Scenario: "small-h3", Target: "caddy", Rep: 1, Mode: "closed", Throughput: 10000, OK: 1},
		Measurement{Scenario: "tcp-bulk", Target: "outrigger", Rep: 1, Mode: "closed", Throughput: 2000, OK: 1},
		Measurement{Scenario: "tcp-bulk", Target: "direct", Rep: 1, Mode: "closed", Throughput: 4000, OK: 1},
	)
	b.Reset()
	writeGoals(&b, r, Summarise(r.Measurements))
	for _, want := range []string{
		"| HTTP/3 throughput ≥ 1.2× caddy (small-h3, closed loop) | 1.50× (15.0k req/s vs 10.0k req/s) | met |",
		"| TCP proxy throughput ≥ 0.8× direct (tcp-bulk, closed loop) | 0.50× (2.10 GB/s vs 4.19 GB/s) | **short** |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("goals lack %q\n%s", want, b.String())
		}
	}
	// Without outrigger in the run there is nothing to say.
	b.Reset()
	writeGoals(&b, sampleRun(), Summarise(sampleRun().Measurements))
	if b.Len() != 0 {
		t.Errorf("goal table without outrigger:\n%s", b.String())
	}
}
