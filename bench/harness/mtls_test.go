package harness

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/loadgen"
	"github.com/outrigger-mesh/outrigger/bench/report"
	"github.com/outrigger-mesh/outrigger/bench/targets"
)

func TestOutriggerOptions(t *testing.T) {
	for name, want := range map[string]targets.OutriggerOptions{
		Outrigger:         {Binary: "b", Hops: 1},
		Outrigger2Hop:     {Binary: "b", Hops: 2},
		Outrigger2HopMTLS: {Binary: "b", Hops: 2, MTLS: true},
	} {
		if got := outriggerOptions(name, "b"); got != want {
			t.Errorf("%s: %+v, want %+v", name, got, want)
		}
	}
	for _, d := range DefaultTargets {
		if d == Outrigger2HopMTLS || d == Outrigger2HopAB {
			t.Errorf("the mTLS target %s runs by default", d)
		}
	}
}

func TestProfileConfigErrors(t *testing.T) {
	good := Config{Scenarios: []Scenario{tinyScenario()}, Targets: []string{Direct}, Reps: 1,
		Upstream: targets.Upstream{HTTP: "127.0.0.1:1", GRPC: "127.0.0.1:2"}, TmpDir: "/tmp"}
	for name, modify := range map[string]func(*Config){
		"profile of a peer":         func(c *Config) { c.ProfileTargets, c.ProfileDir = []string{Nginx}, "/tmp" },
		"profile without directory": func(c *Config) { c.ProfileTargets = []string{Outrigger2HopMTLS} },
		"one-hop without directory": func(c *Config) { c.ProfileOneHop = true },
		"negative profile seconds":  func(c *Config) { c.ProfileSeconds = -1 },
	} {
		c := good
		modify(&c)
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestRunMTLS runs the mTLS comparison end to end on a built outrigger: the
// three targets, gRPC open loop, two repetitions, a profile of the mTLS
// target's server sidecar, and the report's comparison.
func TestRunMTLS(t *testing.T) {
	bin := outriggerBin(t)
	up := startBackend(t)
	sc := Scenario{
		Name: "grpc-unary", Description: "tiny gRPC", Protocol: loadgen.GRPC, BodySize: 16, ResponseSize: 16,
		Workers: 4, Conns: 1, Warmup: 50 * time.Millisecond, OpenRates: []float64{200}, OpenDuration: 200 * time.Millisecond,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	dir := t.TempDir()
	res, err := Run(ctx, Config{
		Scenarios: []Scenario{sc}, Targets: []string{Direct, Outrigger2Hop, Outrigger2HopMTLS}, Reps: 2,
		Upstream: up, OutriggerBin: bin, TmpDir: t.TempDir(), Command: "test",
		ProfileDir: dir, ProfileTargets: []string{Outrigger2HopMTLS}, ProfileSeconds: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Targets) != 3 || len(res.Measurements) != 6 {
		t.Fatalf("targets %+v, %d measurements, notes %v", res.Targets, len(res.Measurements), res.Notes)
	}
	for _, m := range res.Measurements {
		if m.OK == 0 || m.Failed != 0 {
			t.Errorf("%s rep %d: ok %d failed %d (%s)", m.Target, m.Rep, m.OK, m.Failed, m.Errors)
		}
		if (m.Target != Direct) != m.LastHopConnsKnown {
			t.Errorf("%s: connection count known %v", m.Target, m.LastHopConnsKnown)
		}
	}
	cs := report.MTLSComparisons(res)
	if len(cs) != 3 || cs[0].Target != Outrigger2HopMTLS || cs[0].Base != Outrigger2Hop || cs[0].AddedP99.N != 2 {
		t.Fatalf("comparisons %+v", cs)
	}
	if len(res.HopProfiles) != 1 {
		t.Fatalf("profiles %+v", res.HopProfiles)
	}
	p := res.HopProfiles[0]
	if p.Err != "" {
		t.Fatalf("profile: %s", p.Err)
	}
	if st, err := os.Stat(p.CPUPath); err != nil || st.Size() == 0 || !strings.Contains(p.CPUPath, "hop2") {
		t.Errorf("CPU profile %s: %v", p.CPUPath, err)
	}
	if res.Machine.LoadAvgEnd == "" {
		t.Error("no load average at the end")
	}
	var b strings.Builder
	if err := report.WriteMarkdown(&b, res, report.PlotFiles{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## mTLS between sidecars", "server sidecar (hop 2)", "Load average"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// TestRunAB runs the interleaved comparison end to end on a built
// outrigger: the A/B target with more repetitions than the plaintext
// target beside it (--ab-reps), gRPC open loop on both paths at once, a
// scenario it cannot run noted, and the report's interleaved comparison.
func TestRunAB(t *testing.T) {
	bin := outriggerBin(t)
	up := startBackend(t)
	grpc := Scenario{
		Name: "grpc-unary", Description: "tiny gRPC", Protocol: loadgen.GRPC, BodySize: 16, ResponseSize: 16,
		Workers: 4, Conns: 1, Warmup: 50 * time.Millisecond, OpenRates: []float64{400}, OpenDuration: 200 * time.Millisecond,
	}
	h1 := tinyScenario()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{
		Scenarios: []Scenario{grpc, h1}, Targets: []string{Outrigger2Hop, Outrigger2HopAB}, Reps: 1, ABReps: 3,
		Upstream: up, OutriggerBin: bin, TmpDir: t.TempDir(), Command: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, m := range res.Measurements {
		if m.Scenario != grpc.Name {
			if strings.HasPrefix(m.Target, Outrigger2HopAB) {
				t.Errorf("the A/B target ran %s", m.Scenario)
			}
			continue
		}
		count[m.Target]++
		if m.OK == 0 || m.Failed != 0 {
			t.Errorf("%s rep %d: ok %d failed %d (%s)", m.Target, m.Rep, m.OK, m.Failed, m.Errors)
		}
		if strings.HasPrefix(m.Target, Outrigger2HopAB) {
			// Half the rate each, recorded at the whole rate; no new
			// connection between the sidecars during the run.
			if m.Rate != 400 || m.OK > 60 || !m.LastHopConnsKnown || m.LastHopConns != 0 {
				t.Errorf("%s rep %d: rate %v ok %d conns %d (known %v)", m.Target, m.Rep, m.Rate, m.OK, m.LastHopConns, m.LastHopConnsKnown)
			}
		}
	}
	if count[report.ABPlaintext] != 3 || count[report.ABMTLS] != 3 || count[Outrigger2Hop] != 1 {
		t.Fatalf("runs per target %v, notes %v", count, res.Notes)
	}
	if !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "compares gRPC unary only") }) {
		t.Errorf("no note for the scenario the A/B target skips: %v", res.Notes)
	}
	cs := report.MTLSComparisons(res)
	if len(cs) != 1 || !cs[0].Interleaved || cs[0].AddedP99.N != 3 {
		t.Fatalf("comparisons %+v", cs)
	}
}

// outriggerBin is the built outrigger (bin/outrigger at the repository
// root, or $OUTRIGGER_BIN); the test is skipped when there is none.
func outriggerBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("OUTRIGGER_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../../bin/outrigger")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no outrigger binary at %s", bin)
	}
	return bin
}
