package targets

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/outrigger-mesh/outrigger/bench/loadgen"
)

// TestOutrigger runs one and two hops of a built outrigger (bin/outrigger at
// the repository root, or $OUTRIGGER_BIN) and sends each protocol through.
// Skipped when no binary is built.
func TestOutrigger(t *testing.T) {
	bin := outriggerBin(t)
	up := plainBackend(t)
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
				sendThree(t, lt, fmt.Sprintf("%d hop(s)", hops))
			}
			if tg.Endpoints.H3 != "" || tg.Endpoints.TCP != "" {
				t.Errorf("HTTP/3 or TCP endpoints without a backend serving them: %+v", tg.Endpoints)
			}
		})
	}
	t.Run("two hops with mTLS", func(t *testing.T) {
		tg, err := StartOutrigger(context.Background(), t.TempDir(), up, OutriggerOptions{Binary: bin, Hops: 2, MTLS: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := tg.Close(); err != nil {
				t.Error(err)
			}
		})
		if tg.Name != NameOutrigger2HopMTLS || !strings.Contains(tg.Config, "mutual TLS") {
			t.Errorf("target %s: %s", tg.Name, tg.Config)
		}
		testMTLS(t, tg)
	})
	t.Run("one hop with HTTP/3 and tcp_proxy", func(t *testing.T) {
		full := fullBackend(t)
		tg, err := StartOutrigger(context.Background(), t.TempDir(), full, OutriggerOptions{Binary: bin, Hops: 1})
		if err != nil && strings.Contains(err.Error(), "is not supported yet") {
			t.Skipf("%s predates the HTTP/3 and tcp_proxy listeners: rebuild it (%v)", bin, err)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := tg.Close(); err != nil {
				t.Error(err)
			}
		})
		if tg.Endpoints.H3 == "" || tg.Endpoints.TCP == "" {
			t.Fatalf("endpoints %+v", tg.Endpoints)
		}
		sendH3AndTCP(t, tg)
	})
	// Two hops get no HTTP/3 or tcp_proxy listener: the scenarios measure one.
	up2 := fullBackend(t)
	tg, err := StartOutrigger(context.Background(), t.TempDir(), up2, OutriggerOptions{Binary: bin, Hops: 2})
	if err != nil {
		t.Fatal(err)
	}
	if tg.Endpoints.H3 != "" || tg.Endpoints.TCP != "" {
		t.Errorf("two hops: endpoints %+v", tg.Endpoints)
	}
	if err := tg.Close(); err != nil {
		t.Error(err)
	}
	if _, err := StartOutrigger(context.Background(), t.TempDir(), up, OutriggerOptions{Binary: bin, Hops: 3}); err == nil {
		t.Error("three hops accepted")
	}
}
