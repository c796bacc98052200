package natsd

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outrigger-mesh/outrigger/examples/shop/internal/shoptest"
)

func TestRun(t *testing.T) {
	addr, monitor := shoptest.FreeAddr(t), shoptest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"-addr", addr, "-store-dir", t.TempDir(), "-monitor-addr", monitor}, slog.New(slog.DiscardHandler))
	}()
	var nc *nats.Conn
	shoptest.Eventually(t, 10*time.Second, "natsd to accept clients", func() bool {
		var err error
		nc, err = nats.Connect("nats://"+addr, nats.Timeout(time.Second))
		return err == nil
	})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.AccountInfo(context.Background()); err != nil {
		t.Fatalf("JetStream not enabled: %v", err)
	}
	nc.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestRunErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"empty store", []string{"-store-dir", ""}, "-store-dir"},
		{"extra args", []string{"x"}, "unexpected arguments"},
		{"bad addr", []string{"-addr", "nowhere"}, "-addr"},
		{"bad port", []string{"-addr", "127.0.0.1:99999"}, "want 0..65535"},
		{"bad monitor", []string{"-monitor-addr", "x"}, "-monitor-addr"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := Run(context.Background(), tt.args, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run(%q) = %v, want an error with %q", tt.args, err, tt.want)
			}
		})
	}
}
