package harness

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/bench/backend"
	"github.com/outrigger-mesh/outrigger/bench/report"
	"github.com/outrigger-mesh/outrigger/bench/targets"
)

// startFullBackend is startBackend plus HTTP/3 and the bulk TCP source.
func startFullBackend(t *testing.T) targets.Upstream {
	t.Helper()
	cert, key, err := targets.WriteSelfSignedCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	be, err := backend.Start(backend.Config{
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", PayloadSize: 16,
		H3Addr: "127.0.0.1:0", CertFile: cert, KeyFile: key, TCPSourceAddr: "127.0.0.1:0",
	}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return targets.Upstream{HTTP: be.HTTPAddr(), GRPC: be.GRPCAddr(), H3: be.H3Addr(), TCP: be.TCPSourceAddr(), CertFile: cert, KeyFile: key}
}

// tinyProtocolScenarios are ProtocolScenarios cut to a few hundred ms.
func tinyProtocolScenarios() []Scenario {
	ss := ProtocolScenarios()
	for i := range ss {
		ss[i].Warmup = 50 * time.Millisecond
		ss[i].ClosedDuration = 200 * time.Millisecond
		if len(ss[i].OpenRates) > 0 {
			ss[i].OpenRates, ss[i].OpenDuration = []float64{200}, 200*time.Millisecond
		}
		ss[i].Workers = min(ss[i].Workers, 8)
	}
	return ss
}

// TestProtocolScenarios runs small-h3 and tcp-bulk, cut short, against
// direct and whichever of outrigger (bin/outrigger or $OUTRIGGER_BIN),
// HAProxy and Caddy are available; the rest are skipped with a note.
func TestProtocolScenarios(t *testing.T) {
	up := startFullBackend(t)
	bin := os.Getenv("OUTRIGGER_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../../bin/outrigger")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Logf("no outrigger binary at %s: outrigger is skipped", bin)
		bin = ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{
		Scenarios: tinyProtocolScenarios(), Targets: []string{Direct, Outrigger, Nginx, HAProxy, Caddy}, Reps: 1,
		Upstream: up, OutriggerBin: bin, TmpDir: t.TempDir(), Command: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	serves := map[string]map[string]bool{
		"small-h3": {Direct: true, Outrigger: true, Caddy: true},
		"tcp-bulk": {Direct: true, Outrigger: true, HAProxy: true},
	}
	for _, ti := range res.Targets {
		for sc, who := range serves {
			var ms []report.Measurement
			for _, m := range res.Measurements {
				if m.Scenario == sc && m.Target == ti.Name {
					ms = append(ms, m)
				}
			}
			if !who[ti.Name] {
				if len(ms) != 0 {
					t.Errorf("%s measured on %s, which does not serve it", sc, ti.Name)
				}
				continue
			}
			if len(ms) == 0 {
				t.Errorf("%s not measured on %s (notes %v)", sc, ti.Name, res.Notes)
			}
			for _, m := range ms {
				if m.OK == 0 || m.Failed != 0 {
					t.Errorf("%s/%s %s: ok %d failed %d (%s)", sc, ti.Name, m.Mode, m.OK, m.Failed, m.Errors)
				}
			}
		}
	}
	var b strings.Builder
	if err := report.WriteMarkdown(&b, res, report.PlotFiles{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## small-h3", "## tcp-bulk", "| GB/s |", "× caddy", "CPU s/GiB"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestProtocolScenarioBudget(t *testing.T) {
	// make bench-protocols: direct, outrigger and a peer per scenario, three
	// repetitions, within a few minutes.
	var total time.Duration
	for _, s := range ProtocolScenarios() {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		total += s.Estimate(3, 3)
	}
	if total > 3*time.Minute {
		t.Errorf("protocol scenarios need %v, want ≤ 3 min", total)
	}
}
