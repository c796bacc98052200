package targets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/loadgen"
	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
)

// TestMain doubles as a helper process: with BENCH_HELPER_LISTEN set, the
// test binary listens there until SIGTERM, like a peer would.
func TestMain(m *testing.M) {
	if addr := os.Getenv("BENCH_HELPER_LISTEN"); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		<-sig
		ln.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestFreePorts(t *testing.T) {
	ports, err := FreePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v: want five distinct positive ports", ports)
		}
		seen[p] = true
	}
}

func TestProcessLifecycle(t *testing.T) {
	dir := t.TempDir()
	ports, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := loopback(ports[0])
	p, err := StartProcess("helper", []string{os.Args[0]}, []string{"BENCH_HELPER_LISTEN=" + addr}, filepath.Join(dir, "helper.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(time.Second) })
	if err := WaitReady(context.Background(), p, []string{addr}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("process still running after Stop")
	}
}

func TestWaitReadyErrors(t *testing.T) {
	dir := t.TempDir()
	ports, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	addr := loopback(ports[0])
	t.Run("process exits", func(t *testing.T) {
		p, err := StartProcess("exits", []string{"/bin/sh", "-c", "echo broken config >&2; exit 1"}, nil, filepath.Join(dir, "exits.log"))
		if err != nil {
			t.Fatal(err)
		}
		err = WaitReady(context.Background(), p, []string{addr}, 10*time.Second)
		if !errors.Is(err, ErrExited) {
			t.Fatalf("err = %v, want ErrExited", err)
		}
		if p.LogTail() != "broken config" {
			t.Errorf("log tail %q", p.LogTail())
		}
	})
	t.Run("never listens", func(t *testing.T) {
		p, err := StartProcess("idle", []string{"/bin/sh", "-c", "trap '' TERM; sleep 30"}, nil, filepath.Join(dir, "idle.log"))
		if err != nil {
			t.Fatal(err)
		}
		err = WaitReady(context.Background(), p, []string{addr}, 150*time.Millisecond)
		if err == nil || errors.Is(err, ErrExited) {
			t.Fatalf("err = %v, want a timeout", err)
		}
		// It ignores SIGTERM: Stop must kill the whole group after the grace.
		if err := p.Stop(100 * time.Millisecond); err == nil {
			t.Error("Stop of a process ignoring SIGTERM reported no kill")
		}
	})
}

func TestOutriggerBootstrapLoads(t *testing.T) {
	up := Upstream{HTTP: "127.0.0.1:8081", GRPC: "127.0.0.1:8082"}
	conf, err := OutriggerBootstrap(9901, 10000, up)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bootstrap.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// The proxy's own loader must accept what the bench writes.
	if _, err := bootstrap.Load(path, ""); err != nil {
		t.Fatalf("outrigger rejects the bench bootstrap: %v\n%s", err, conf)
	}
	if _, err := OutriggerBootstrap(1, 2, Upstream{HTTP: "nohost", GRPC: "127.0.0.1:1"}); err == nil {
		t.Error("bad upstream address accepted")
	}
}

// TestPeers starts each installed peer against a real backend and sends
// each protocol through it once. Peers that are not installed are skipped:
// the unit tests must not need them.
func TestPeers(t *testing.T) {
	up := fullBackend(t)
	peers := []struct {
		name  string
		start func(context.Context, string, string, Upstream) (*Target, error)
	}{
		{"nginx", StartNginx},
		{"haproxy", StartHAProxy},
		{"caddy", StartCaddy},
	}
	for _, peer := range peers {
		t.Run(peer.name, func(t *testing.T) {
			bin, err := LookBinary(peer.name)
			if err != nil {
				t.Skip(err)
			}
			tg, err := peer.start(context.Background(), bin, t.TempDir(), up)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := tg.Close(); err != nil {
					t.Error(err)
				}
			})
			if len(tg.PIDs()) != 1 || tg.Alive() != nil || tg.Config == "" {
				t.Errorf("target %+v", tg)
			}
			for _, lt := range []loadgen.Target{
				{Protocol: loadgen.HTTP1, Addr: tg.Endpoints.HTTP1, Path: "/?size=10"},
				{Protocol: loadgen.HTTP1, Addr: tg.Endpoints.HTTP1, Path: "/echo", Body: make([]byte, 200000)},
				{Protocol: loadgen.H2C, Addr: tg.Endpoints.H2C, Path: "/?size=10"},
				{Protocol: loadgen.GRPC, Addr: tg.Endpoints.GRPC, ResponseSize: 10},
			} {
				sendThree(t, lt, peer.name)
			}
			// HAProxy serves the bulk TCP scenario, Caddy the HTTP/3 one.
			if (peer.name == "haproxy") != (tg.Endpoints.TCP != "") || (peer.name == "caddy") != (tg.Endpoints.H3 != "") {
				t.Errorf("%s endpoints %+v", peer.name, tg.Endpoints)
			}
			sendH3AndTCP(t, tg)
		})
	}
}
