package targets

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/bench/backend"
	"github.com/outrigger-mesh/outrigger/bench/loadgen"
)

// TestOutrigger runs one and two hops of a built outrigger (bin/outrigger at
// the repository root, or $OUTRIGGER_BIN) and sends each protocol through.
// Skipped when no binary is built.
func TestOutrigger(t *testing.T) {
	bin := os.Getenv("OUTRIGGER_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../../bin/outrigger")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no outrigger binary at %s: build it with `go build -o bin/outrigger ./proxy/cmd/outrigger`", bin)
	}
	be, err := backend.Start(backend.Config{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", PayloadSize: 10}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	up := Upstream{HTTP: be.HTTPAddr(), GRPC: be.GRPCAddr()}
	for _, hops := range []int{1, 2} {
		t.Run(map[int]string{1: "one hop", 2: "two hops"}[hops], func(t *testing.T) {
			tg, err := StartOutrigger(context.Background(), t.TempDir(), up, OutriggerOptions{Binary: bin, Hops: hops})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := tg.Close(); err != nil {
					t.Error(err)
				}
			})
			if len(tg.PIDs()) != hops {
				t.Errorf("%d processes, want %d", len(tg.PIDs()), hops)
			}
			for _, lt := range []loadgen.Target{
				{Protocol: loadgen.HTTP1, Addr: tg.Endpoints.HTTP1, Path: "/?size=10"},
				{Protocol: loadgen.HTTP1, Addr: tg.Endpoints.HTTP1, Path: "/echo", Body: make([]byte, 200000)},
				{Protocol: loadgen.H2C, Addr: tg.Endpoints.H2C, Path: "/?size=10"},
				{Protocol: loadgen.GRPC, Addr: tg.Endpoints.GRPC, ResponseSize: 10},
			} {
				c, err := loadgen.NewClient(lt)
				if err != nil {
					t.Fatal(err)
				}
				res, err := loadgen.Run(context.Background(), c, loadgen.Options{Mode: loadgen.ClosedLoop, Duration: 5 * time.Second, MaxRequests: 3, Workers: 1})
				c.Close()
				if err != nil {
					t.Fatal(err)
				}
				if res.OK != 3 {
					t.Errorf("%s through %d hop(s): ok %d (%s), want 3", lt.Protocol, hops, res.OK, res.ErrorSummary())
				}
			}
		})
	}
	if _, err := StartOutrigger(context.Background(), t.TempDir(), up, OutriggerOptions{Binary: bin, Hops: 3}); err == nil {
		t.Error("three hops accepted")
	}
}
