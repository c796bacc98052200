package targets

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/loadgen"
)

// The go-floor and go-lean targets serve the HTTP/1.1 scenarios' requests
// through the outrigger-bench binary's floor subcommand, and nothing else.
func TestFloorTarget(t *testing.T) {
	if testing.Short() {
		t.Skip("builds outrigger-bench")
	}
	bin := filepath.Join(t.TempDir(), "outrigger-bench")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/outrigger-bench").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	up := plainBackend(t)
	for _, start := range []func(context.Context, string, string, Upstream) (*Target, error){StartFloor, StartLean} {
		tg, err := start(ctx, bin, t.TempDir(), up)
		if err != nil {
			t.Fatal(err)
		}
		defer tg.Close()
		if tg.Endpoints.H2C != "" || tg.Endpoints.GRPC != "" || len(tg.PIDs()) != 1 {
			t.Fatalf("%s: endpoints %+v, %d processes: want HTTP/1.1 only, one process", tg.Name, tg.Endpoints, len(tg.PIDs()))
		}
		sendThree(t, loadgen.Target{Protocol: loadgen.HTTP1, Addr: tg.Endpoints.HTTP1, Path: "/?size=10", Timeout: time.Second}, tg.Name)
	}
}
