package harness

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/outrigger-mesh/outrigger/bench/backend"
	"github.com/outrigger-mesh/outrigger/bench/loadgen"
	"github.com/outrigger-mesh/outrigger/bench/report"
	"github.com/outrigger-mesh/outrigger/bench/targets"
)

func startBackend(t *testing.T) targets.Upstream {
	t.Helper()
	be, err := backend.Start(backend.Config{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", PayloadSize: 16}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return targets.Upstream{HTTP: be.HTTPAddr(), GRPC: be.GRPCAddr()}
}

func tinyScenario() Scenario {
	return Scenario{
		Name: "tiny", Description: "tiny", Protocol: loadgen.HTTP1, Path: "/?size=16", Workers: 2,
		Warmup: 20 * time.Millisecond, OpenRates: []float64{200, 400}, OpenDuration: 100 * time.Millisecond,
		ClosedDuration: 100 * time.Millisecond,
	}
}

// TestRunDirect runs the whole harness with the direct target only: two
// repetitions of a tiny scenario, then renders the report.
func TestRunDirect(t *testing.T) {
	up := startBackend(t)
	res, err := Run(context.Background(), Config{
		Scenarios: []Scenario{tinyScenario()}, Targets: []string{Direct, Outrigger}, Reps: 2,
		Upstream: up, TmpDir: t.TempDir(), Command: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	// Outrigger has no binary here: skipped with a note, not a failure.
	if len(res.Targets) != 1 || len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "outrigger skipped") {
		t.Fatalf("targets %+v notes %v", res.Targets, res.Notes)
	}
	if len(res.Measurements) != 6 {
		t.Fatalf("%d measurements, want 2 reps × (2 rates + closed)", len(res.Measurements))
	}
	for _, m := range res.Measurements {
		if m.Failed != 0 || m.OK == 0 || m.P50 <= 0 || m.P999 < m.P50 {
			t.Errorf("measurement %+v", m)
		}
		if m.Mode == "open" && (m.OK != int64(m.Rate/10) || m.Rate == 0) {
			t.Errorf("open loop at %v sent %d, want %v", m.Rate, m.OK, m.Rate/10)
		}
	}
	var b strings.Builder
	if err := report.WriteMarkdown(&b, res, report.PlotFiles{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "## tiny") {
		t.Error("report lacks the scenario")
	}
}

func TestConfigErrors(t *testing.T) {
	good := func() Config {
		return Config{Scenarios: []Scenario{tinyScenario()}, Targets: []string{Direct}, Reps: 1,
			Upstream: targets.Upstream{HTTP: "127.0.0.1:1", GRPC: "127.0.0.1:2"}, TmpDir: "/tmp"}
	}
	tests := []struct {
		name   string
		modify func(*Config)
	}{
		{name: "no reps", modify: func(c *Config) { c.Reps = 0 }},
		{name: "no scenarios", modify: func(c *Config) { c.Scenarios = nil }},
		{name: "unknown target", modify: func(c *Config) { c.Targets = []string{"envoy"} }},
		{name: "no backend", modify: func(c *Config) { c.Upstream = targets.Upstream{} }},
		{name: "no tmp", modify: func(c *Config) { c.TmpDir = "" }},
		{name: "scenario without workers", modify: func(c *Config) { c.Scenarios[0].Workers = 0 }},
		{name: "rates without duration", modify: func(c *Config) { c.Scenarios[0].OpenDuration = 0 }},
		{name: "scenario measuring nothing", modify: func(c *Config) {
			c.Scenarios[0].OpenRates, c.Scenarios[0].ClosedDuration = nil, 0
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.modify(&c)
			if _, err := Run(context.Background(), c); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestScenarioBudgets(t *testing.T) {
	// make bench-quick must fit in 60 s with five targets and one repetition
	// (plus start-up and a wrk run per target); make bench in 15 min with
	// six targets and three.
	var quick time.Duration
	for _, s := range QuickScenarios() {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		quick += s.Estimate(5, 1) + 5*s.CrossCheckTime
	}
	if quick > 40*time.Second {
		t.Errorf("quick scenarios need %v, want ≤ 40s to leave start-up room", quick)
	}
	var full time.Duration
	for _, s := range FullScenarios() {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		full += s.Estimate(6, 3) + 6*s.CrossCheckTime
	}
	if full > 12*time.Minute {
		t.Errorf("full scenarios need %v, want ≤ 12 min", full)
	}
}

func TestParseTool(t *testing.T) {
	tests := []struct {
		name, tool, out string
		wantRPS         float64
		wantFailed      int64
		wantErr         bool
	}{
		{name: "wrk", tool: "wrk", out: `Running 2s test @ http://127.0.0.1:8080/
  1 threads and 50 connections
  126000 requests in 2.00s, 20.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  63000.50
Transfer/sec:     10.00MB
`, wantRPS: 63000.5, wantFailed: 8},
		{name: "wrk clean", tool: "wrk", out: "Requests/sec:   1000.00\n", wantRPS: 1000},
		{name: "h2load", tool: "h2load", out: `finished in 1.00s, 27094.00 req/s, 846.96KB/s
requests: 25836 total, 25840 started, 25836 done, 25830 succeeded, 4 failed, 2 errored, 0 timeout
`, wantRPS: 27094, wantFailed: 6},
		{name: "ghz", tool: "ghz", out: `{"count":304,"rps":1500.5,"statusCodeDistribution":{"OK":290,"Unavailable":12,"Canceled":2},"errorDistribution":{"rpc error: code = Unavailable desc = no healthy upstream":10,"rpc error: code = Unavailable desc = transport is closing":2,"rpc error: code = Canceled desc = context canceled":2}}`, wantRPS: 1500.5, wantFailed: 10},
		{name: "wrk without figure", tool: "wrk", out: "unable to connect", wantErr: true},
		{name: "ghz not json", tool: "ghz", out: "error", wantErr: true},
		{name: "unknown tool", tool: "ab", out: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rps, failed, err := parseTool(tt.tool, []byte(tt.out))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if rps != tt.wantRPS || failed != tt.wantFailed {
				t.Errorf("rps %v failed %d, want %v and %d", rps, failed, tt.wantRPS, tt.wantFailed)
			}
		})
	}
}

func TestParseMallocs(t *testing.T) {
	n, err := ParseMallocs([]byte("heap profile: 1: 2 [3: 4] @ heap/1048576\n\n# runtime.MemStats\n# Alloc = 1\n# Mallocs = 123456\n# Frees = 3\n"))
	if err != nil || n != 123456 {
		t.Fatalf("got %d, %v", n, err)
	}
	if _, err := ParseMallocs([]byte("nothing")); err == nil {
		t.Error("no error without the line")
	}
}

func TestProtoset(t *testing.T) {
	dir := t.TempDir()
	path, err := writeProtoset(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	// Dependencies come before the files that import them.
	last := set.File[len(set.File)-1]
	if last.GetName() != "grpc/testing/test.proto" || len(set.File) < 3 {
		t.Errorf("files: %d, last %q", len(set.File), last.GetName())
	}
}

// TestCrossCheckTools runs each installed tool for one second against the
// backend, so the argument lists and parsers stay in step with the real tools.
func TestCrossCheckTools(t *testing.T) {
	if testing.Short() {
		t.Skip("runs external tools")
	}
	up := startBackend(t)
	direct := []*targets.Target{targets.Direct(up)}
	for _, sc := range []Scenario{
		{Name: "wrk", Protocol: loadgen.HTTP1, Path: "/?size=16", Workers: 4, CrossCheck: "wrk", CrossCheckTime: time.Second},
		{Name: "h2load", Protocol: loadgen.H2C, Path: "/?size=16", Workers: 4, Conns: 2, CrossCheck: "h2load", CrossCheckTime: time.Second},
		{Name: "ghz", Protocol: loadgen.GRPC, BodySize: 8, ResponseSize: 16, Workers: 4, Conns: 1, CrossCheck: "ghz", CrossCheckTime: time.Second},
	} {
		t.Run(sc.Name, func(t *testing.T) {
			if _, err := targets.LookBinary(sc.CrossCheck); err != nil {
				t.Skip(err)
			}
			cfg := &Config{TmpDir: t.TempDir(), Log: hclog.NewNullLogger()}
			out := &report.Run{}
			cc := crossCheck(context.Background(), cfg, sc, direct, out)
			if len(cc) != 1 || cc[0].Err != "" || cc[0].RPS <= 0 || cc[0].Failed != 0 {
				t.Fatalf("cross-check %+v, notes %v", cc, out.Notes)
			}
			if strings.Contains(cc[0].Command, up.HTTP) || strings.Contains(cc[0].Command, up.GRPC) || strings.Contains(cc[0].Command, cfg.TmpDir) {
				t.Errorf("command %q shows the address or the temp dir", cc[0].Command)
			}
		})
	}
}

// go-floor and go-lean run through the outrigger-bench binary: without
// one they are skipped with a note, as a peer that is not installed.
func TestFloorSkippedWithoutBenchBinary(t *testing.T) {
	cfg := &Config{Targets: []string{GoFloor, GoLean}, Upstream: startBackend(t), TmpDir: t.TempDir(), Log: hclog.NewNullLogger()}
	out := &report.Run{}
	if running := startTargets(context.Background(), cfg, out); len(running) != 0 {
		t.Fatalf("started %d targets without the bench binary", len(running))
	}
	if len(out.Notes) != 2 || !strings.Contains(out.Notes[0], "go-floor skipped") || !strings.Contains(out.Notes[1], "go-lean skipped") {
		t.Fatalf("notes %v, want go-floor and go-lean skipped", out.Notes)
	}
}

// The cross-check runs only on targets serving the scenario's protocol
// (go-floor serves HTTP/1.1 only): others are left out, not failed.
func TestCrossCheckSkipsOtherProtocols(t *testing.T) {
	if testing.Short() {
		t.Skip("runs wrk")
	}
	if _, err := targets.LookBinary("wrk"); err != nil {
		t.Skip(err)
	}
	up := startBackend(t)
	grpcOnly := &targets.Target{Name: "grpc-only", Endpoints: targets.Endpoints{GRPC: up.GRPC}}
	sc := Scenario{Name: "wrk", Protocol: loadgen.HTTP1, Path: "/?size=16", Workers: 4, CrossCheck: "wrk", CrossCheckTime: time.Second}
	out := &report.Run{}
	cc := crossCheck(context.Background(), &Config{TmpDir: t.TempDir(), Log: hclog.NewNullLogger()}, sc,
		[]*targets.Target{targets.Direct(up), grpcOnly}, out)
	if len(cc) != 1 || cc[0].Target != Direct || cc[0].Err != "" || len(out.Notes) != 0 {
		t.Fatalf("cross-check %+v, notes %v: want direct only", cc, out.Notes)
	}
}
