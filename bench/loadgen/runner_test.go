package loadgen

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/bench/backend"
	"github.com/outrigger-mesh/outrigger/bench/targets"
)

func startBackend(t *testing.T) *backend.Server {
	t.Helper()
	cert, key, err := targets.WriteSelfSignedCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := backend.Start(backend.Config{
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", PayloadSize: 64,
		H3Addr: "127.0.0.1:0", CertFile: cert, KeyFile: key, TCPSourceAddr: "127.0.0.1:0",
	}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func newClient(t *testing.T, target Target) Client {
	t.Helper()
	c, err := NewClient(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestRunEndToEnd drives each protocol against the real backend in both
// modes: small, bounded runs that must succeed without errors.
func TestRunEndToEnd(t *testing.T) {
	be := startBackend(t)
	tests := []struct {
		name   string
		target Target
	}{
		{name: "http1 GET", target: Target{Protocol: HTTP1, Addr: be.HTTPAddr(), Path: "/?size=100"}},
		{name: "http1 POST echo", target: Target{Protocol: HTTP1, Addr: be.HTTPAddr(), Path: "/echo", Body: make([]byte, 70000)}},
		{name: "h2c GET", target: Target{Protocol: H2C, Addr: be.HTTPAddr(), Path: "/?size=100", Conns: 2}},
		{name: "grpc unary", target: Target{Protocol: GRPC, Addr: be.GRPCAddr(), Body: make([]byte, 10), ResponseSize: 100, Conns: 1}},
		{name: "grpc stream", target: Target{Protocol: GRPCStream, Addr: be.GRPCAddr(), Body: make([]byte, 10), ResponseSize: 100, Conns: 1}},
		{name: "h3 GET", target: Target{Protocol: H3, Addr: be.H3Addr(), Path: "/?size=100", Conns: 2}},
		{name: "h3 POST echo", target: Target{Protocol: H3, Addr: be.H3Addr(), Path: "/echo", Body: make([]byte, 20000), Conns: 1}},
		{name: "tcp bulk", target: Target{Protocol: TCPBulk, Addr: be.TCPSourceAddr()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.target)
			open, err := Run(context.Background(), c, Options{Mode: OpenLoop, Rate: 500, Duration: 200 * time.Millisecond, Workers: 4})
			if err != nil {
				t.Fatal(err)
			}
			if open.Scheduled != 100 || open.OK != 100 || open.Failed() != 0 {
				t.Fatalf("open loop: scheduled %d ok %d failed %d (%s), want 100/100/0",
					open.Scheduled, open.OK, open.Failed(), open.ErrorSummary())
			}
			if open.Latency.TotalCount() != 100 || open.SendLag.TotalCount() != 100 {
				t.Errorf("histograms hold %d and %d values, want 100", open.Latency.TotalCount(), open.SendLag.TotalCount())
			}
			if open.Offered != 500 {
				t.Errorf("offered = %v, want 500", open.Offered)
			}
			closed, err := Run(context.Background(), c, Options{Mode: ClosedLoop, Duration: 150 * time.Millisecond, MaxRequests: 300, Workers: 3})
			if err != nil {
				t.Fatal(err)
			}
			if closed.OK == 0 || closed.OK > 300 || closed.Failed() != 0 {
				t.Fatalf("closed loop: ok %d failed %d (%s)", closed.OK, closed.Failed(), closed.ErrorSummary())
			}
			if closed.Throughput() <= 0 || closed.SendLag != nil {
				t.Errorf("throughput %v, send lag %v", closed.Throughput(), closed.SendLag)
			}
		})
	}
}

// TestOpenLoopCountsStalls checks coordinated omission cannot hide a stall:
// with one worker and a target that takes 50 ms, requests scheduled every
// 5 ms wait behind it, and their latency counts from the scheduled time.
func TestOpenLoopCountsStalls(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond) // the slow target under test
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, Target{Protocol: HTTP1, Addr: srv.Listener.Addr().String()})
	res, err := Run(context.Background(), c, Options{Mode: OpenLoop, Rate: 200, Duration: 100 * time.Millisecond, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 20 {
		t.Fatalf("ok = %d (%s), want 20", res.OK, res.ErrorSummary())
	}
	// The last request was due at 95 ms and could only start after 19
	// earlier 50 ms requests: ~1 s after its slot. Service time alone is 50 ms.
	if got := time.Duration(res.Latency.Max()); got < 900*time.Millisecond {
		t.Errorf("max latency = %v, want ≥ 900ms counted from the schedule", got)
	}
	if got := time.Duration(res.SendLag.Max()); got < 850*time.Millisecond {
		t.Errorf("max send lag = %v, want the backlog to show", got)
	}
}

func TestRunReportsStatusErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, Target{Protocol: HTTP1, Addr: srv.Listener.Addr().String()})
	res, err := Run(context.Background(), c, Options{Mode: ClosedLoop, Duration: time.Second, MaxRequests: 10, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Errors != 10 || res.ErrorKinds["http1: status 503"] != 10 {
		t.Fatalf("ok %d errors %d kinds %v, want ten 503s", res.OK, res.Errors, res.ErrorKinds)
	}
}

func TestRunUnreachable(t *testing.T) {
	// A port nobody listens on: every request fails, the run still ends.
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	c := newClient(t, Target{Protocol: HTTP1, Addr: addr})
	res, err := Run(context.Background(), c, Options{Mode: OpenLoop, Rate: 1000, Duration: 20 * time.Millisecond, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 0 || res.Failed() != 20 {
		t.Fatalf("ok %d failed %d, want 0 and 20", res.OK, res.Failed())
	}
	if res.ErrorSummary() == "" {
		t.Error("no error summary")
	}
}

func TestOptionsAndProtocols(t *testing.T) {
	tests := []struct {
		name    string
		target  Target
		opts    Options
		wantErr error
	}{
		{name: "unknown protocol", target: Target{Protocol: "spdy", Addr: "127.0.0.1:1"}, wantErr: ErrUnsupportedProtocol},
		{name: "no address", target: Target{Protocol: HTTP1}},
		{name: "bad mode", target: Target{Protocol: HTTP1, Addr: "127.0.0.1:1"}, opts: Options{Mode: "burst", Duration: time.Second, Workers: 1}},
		{name: "no workers", target: Target{Protocol: HTTP1, Addr: "127.0.0.1:1"}, opts: Options{Mode: ClosedLoop, Duration: time.Second}},
		{name: "no duration", target: Target{Protocol: HTTP1, Addr: "127.0.0.1:1"}, opts: Options{Mode: ClosedLoop, Workers: 1}},
		{name: "open loop without rate", target: Target{Protocol: HTTP1, Addr: "127.0.0.1:1"}, opts: Options{Mode: OpenLoop, Duration: time.Second, Workers: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewClient(tt.target)
			if err == nil {
				defer c.Close()
				_, err = Run(context.Background(), c, tt.opts)
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}
