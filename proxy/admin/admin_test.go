package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
)

// fakeBackend records what the admin server asked of it.
type fakeBackend struct {
	ready, draining atomic.Bool
	drains, quits   atomic.Int32
	quit            chan struct{}
	quitOnce        sync.Once

	mu        sync.Mutex
	level     string
	dumpErr   error
	setErr    error
	registry  *prometheus.Registry
	requestsC prometheus.Counter
}

func newFakeBackend() *fakeBackend {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "outrigger_test_total", Help: "test counter"})
	reg.MustRegister(c)
	c.Add(7)
	return &fakeBackend{level: "info", registry: reg, requestsC: c, quit: make(chan struct{})}
}

func (f *fakeBackend) Ready() bool    { return f.ready.Load() }
func (f *fakeBackend) Draining() bool { return f.draining.Load() }
func (f *fakeBackend) ConfigDump() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dumpErr != nil {
		return nil, f.dumpErr
	}
	return []byte(`{"configs":[]}`), nil
}
func (f *fakeBackend) Clusters() []byte {
	return []byte("backend::127.0.0.1:8080::health_flags::healthy\n")
}
func (f *fakeBackend) LogLevel() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.level
}
func (f *fakeBackend) SetLogLevel(level string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.setErr != nil {
		return f.setErr
	}
	f.level = level
	return nil
}
func (f *fakeBackend) DrainListeners() { f.drains.Add(1); f.draining.Store(true) }
func (f *fakeBackend) Quit() {
	f.quits.Add(1)
	f.quitOnce.Do(func() { close(f.quit) })
}
func (f *fakeBackend) Gatherer() prometheus.Gatherer { return f.registry }

// startServer runs a real admin server on 127.0.0.1:0 and returns its base URL.
func startServer(t *testing.T, b Backend) string {
	t.Helper()
	s, err := New("127.0.0.1:0", false, b, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return "http://" + s.Addr().String()
}

func do(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

func TestEndpoints(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*fakeBackend)
		method     string
		path       string
		wantCode   int
		wantBody   string // substring
		wantType   string // Content-Type prefix, if set
		wantAllow  string
		wantDrains int32
		wantLevel  string
	}{
		{name: "index", method: "GET", path: "/", wantCode: 200, wantBody: "/quitquitquit"},
		{name: "not found", method: "GET", path: "/nope", wantCode: 404, wantBody: "not found: /nope"},
		{name: "ready before config", method: "GET", path: "/ready", wantCode: 503, wantBody: "PRE_INITIALIZING\n"},
		{name: "ready when live", setup: func(f *fakeBackend) { f.ready.Store(true) }, method: "GET", path: "/ready", wantCode: 200, wantBody: "LIVE\n"},
		{name: "ready head", setup: func(f *fakeBackend) { f.ready.Store(true) }, method: "HEAD", path: "/ready", wantCode: 200},
		{name: "draining wins over ready", setup: func(f *fakeBackend) { f.ready.Store(true); f.draining.Store(true) }, method: "GET", path: "/ready", wantCode: 503, wantBody: "DRAINING\n"},
		{name: "ready with POST", method: "POST", path: "/ready", wantCode: 405, wantAllow: "GET, HEAD", wantBody: "use GET"},
		{name: "prometheus", method: "GET", path: "/stats/prometheus", wantCode: 200, wantBody: "outrigger_test_total 7", wantType: "text/plain"},
		{name: "config dump", method: "GET", path: "/config_dump", wantCode: 200, wantBody: `{"configs":[]}`, wantType: "application/json"},
		{name: "config dump error", setup: func(f *fakeBackend) { f.dumpErr = errors.New("marshal exploded") }, method: "GET", path: "/config_dump", wantCode: 500, wantBody: "marshal exploded"},
		{name: "clusters", method: "GET", path: "/clusters", wantCode: 200, wantBody: "backend::127.0.0.1:8080", wantType: "text/plain"},
		{name: "logging get", method: "GET", path: "/logging", wantCode: 200, wantBody: "outrigger: info"},
		{name: "logging get with level is 405", method: "GET", path: "/logging?level=debug", wantCode: 405, wantBody: "use POST", wantLevel: "info"},
		{name: "logging post", method: "POST", path: "/logging?level=debug", wantCode: 200, wantBody: "outrigger: debug", wantLevel: "debug"},
		{name: "logging envoy name", method: "POST", path: "/logging?level=warning", wantCode: 200, wantLevel: "warn"},
		{name: "logging upper case", method: "POST", path: "/logging?level=TRACE", wantCode: 200, wantLevel: "trace"},
		{name: "logging bad level", method: "POST", path: "/logging?level=loud", wantCode: 400, wantBody: `unknown level "loud"`, wantLevel: "info"},
		{name: "logging unknown param", method: "POST", path: "/logging?upstream=debug", wantCode: 400, wantBody: "unsupported parameter upstream", wantLevel: "info"},
		{name: "logging post without level lists", method: "POST", path: "/logging", wantCode: 200, wantBody: "outrigger: info"},
		{name: "logging backend error", setup: func(f *fakeBackend) { f.setErr = errors.New("no") }, method: "POST", path: "/logging?level=debug", wantCode: 500, wantLevel: "info"},
		{name: "logging put", method: "PUT", path: "/logging", wantCode: 405, wantAllow: "GET, HEAD, POST"},
		{name: "drain with GET", method: "GET", path: "/drain_listeners", wantCode: 405, wantAllow: "POST", wantBody: "use POST"},
		{name: "drain", method: "POST", path: "/drain_listeners", wantCode: 200, wantBody: "OK", wantDrains: 1},
		{name: "drain graceful", method: "POST", path: "/drain_listeners?graceful", wantCode: 200, wantDrains: 1},
		{name: "drain inboundonly refused", method: "POST", path: "/drain_listeners?inboundonly", wantCode: 400, wantBody: "unsupported parameter inboundonly"},
		{name: "quit with GET", method: "GET", path: "/quitquitquit", wantCode: 405, wantBody: "use POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newFakeBackend()
			if tt.setup != nil {
				tt.setup(b)
			}
			base := startServer(t, b)
			code, hdr, body := do(t, tt.method, base+tt.path)
			if code != tt.wantCode {
				t.Errorf("status = %d, want %d (body %q)", code, tt.wantCode, body)
			}
			if !strings.Contains(body, tt.wantBody) {
				t.Errorf("body = %q, want it to contain %q", body, tt.wantBody)
			}
			if tt.wantType != "" && !strings.HasPrefix(hdr.Get("Content-Type"), tt.wantType) {
				t.Errorf("Content-Type = %q, want %q", hdr.Get("Content-Type"), tt.wantType)
			}
			if tt.wantAllow != "" && hdr.Get("Allow") != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", hdr.Get("Allow"), tt.wantAllow)
			}
			if got := b.drains.Load(); got != tt.wantDrains {
				t.Errorf("DrainListeners called %d times, want %d", got, tt.wantDrains)
			}
			if tt.wantLevel != "" && b.LogLevel() != tt.wantLevel {
				t.Errorf("level = %q, want %q", b.LogLevel(), tt.wantLevel)
			}
			if b.quits.Load() != 0 {
				t.Errorf("Quit called")
			}
		})
	}
}

func TestDrainThenReady(t *testing.T) {
	b := newFakeBackend()
	b.ready.Store(true)
	base := startServer(t, b)
	if code, _, _ := do(t, "GET", base+"/ready"); code != 200 {
		t.Fatalf("ready before drain = %d", code)
	}
	if code, _, _ := do(t, "POST", base+"/drain_listeners"); code != 200 {
		t.Fatalf("drain = %d", code)
	}
	if code, _, body := do(t, "GET", base+"/ready"); code != 503 || body != "DRAINING\n" {
		t.Errorf("ready after drain = %d %q, want 503 DRAINING", code, body)
	}
}

func TestQuit(t *testing.T) {
	b := newFakeBackend()
	base := startServer(t, b)
	code, _, body := do(t, "POST", base+"/quitquitquit")
	if code != 200 || body != "OK\n" {
		t.Errorf("quit = %d %q", code, body)
	}
	select {
	case <-b.quit:
	case <-time.After(5 * time.Second):
		t.Fatal("Quit not called")
	}
}

func TestCheckLoopback(t *testing.T) {
	tests := []struct {
		addr    string
		wantErr bool
	}{
		{addr: "127.0.0.1:9901"},
		{addr: "127.3.4.5:0"},
		{addr: "[::1]:9901"},
		{addr: "[::ffff:127.0.0.1]:9901"},
		{addr: "localhost:9901"},
		{addr: "0.0.0.0:0", wantErr: true},
		{addr: "[::]:9901", wantErr: true},
		{addr: ":9901", wantErr: true},
		{addr: "10.1.2.3:9901", wantErr: true},
		{addr: "admin.example.com:9901", wantErr: true},
		{addr: "127.0.0.1", wantErr: true}, // no port
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := CheckLoopback(tt.addr)
			if (err != nil) != tt.wantErr {
				t.Fatalf("CheckLoopback(%q) = %v, wantErr %v", tt.addr, err, tt.wantErr)
			}
		})
	}
}

func TestNewRefusesNonLoopback(t *testing.T) {
	b := newFakeBackend()
	_, err := New("0.0.0.0:0", false, b, hclog.NewNullLogger())
	if !errors.Is(err, ErrNonLoopback) {
		t.Fatalf("New(0.0.0.0:0) error = %v, want ErrNonLoopback", err)
	}
	if !strings.Contains(err.Error(), "0.0.0.0:0") || !strings.Contains(err.Error(), "every interface") {
		t.Errorf("error does not explain itself: %v", err)
	}
	if !strings.Contains(err.Error(), AllowFlag) {
		t.Errorf("error does not name %s: %v", AllowFlag, err)
	}
	// The same rule, for the command's --mode validate.
	if err := CheckAddress("0.0.0.0:0", true); err != nil {
		t.Errorf("CheckAddress allowed: %v", err)
	}
	if err := CheckAddress("0.0.0.0:0", false); !errors.Is(err, ErrNonLoopback) || !strings.Contains(err.Error(), AllowFlag) {
		t.Errorf("CheckAddress = %v, want ErrNonLoopback naming %s", err, AllowFlag)
	}

	// With the flag the same address binds; we still only talk over loopback.
	s, err := New("0.0.0.0:0", true, b, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("New(0.0.0.0:0, allow) = %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	_, port, _ := strings.Cut(s.Addr().String(), "]:")
	if port == "" {
		_, port, _ = strings.Cut(s.Addr().String(), ":")
	}
	if code, _, _ := do(t, "GET", "http://127.0.0.1:"+port+"/ready"); code != 503 {
		t.Errorf("ready = %d, want 503", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	taken, err := New("127.0.0.1:0", false, newFakeBackend(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = taken.Close() })
	tests := []struct {
		name    string
		addr    string
		b       Backend
		wantErr bool
	}{
		{name: "ok", addr: "127.0.0.1:0", b: newFakeBackend()},
		{name: "port taken", addr: taken.Addr().String(), b: newFakeBackend(), wantErr: true},
		{name: "nil backend", addr: "127.0.0.1:0", wantErr: true},
		{name: "garbage", addr: "not an address", b: newFakeBackend(), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s *Server
			var err error
			if tt.b == nil {
				s, err = New(tt.addr, false, nil, nil)
			} else {
				s, err = New(tt.addr, false, tt.b, nil)
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("New(%q) error = %v, wantErr %v", tt.addr, err, tt.wantErr)
			}
			if s != nil {
				_ = s.Close()
			}
		})
	}
}

func TestServeLifecycle(t *testing.T) {
	t.Run("close before serve", func(t *testing.T) {
		s, err := New("127.0.0.1:0", false, newFakeBackend(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := s.Serve(context.Background()); err != nil {
			t.Errorf("Serve after Close = %v, want nil", err)
		}
	})
	t.Run("close stops serve and the port", func(t *testing.T) {
		s, err := New("127.0.0.1:0", false, newFakeBackend(), nil)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Serve(context.Background()) }()
		url := "http://" + s.Addr().String() + "/ready"
		do(t, "GET", url) // served
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve = %v, want nil", err)
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			t.Error("server still answers after Close")
		}
	})
	t.Run("serve twice", func(t *testing.T) {
		s, err := New("127.0.0.1:0", false, newFakeBackend(), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		do(t, "GET", "http://"+s.Addr().String()+"/ready") // first Serve is running
		if err := s.Serve(ctx); !errors.Is(err, ErrServing) {
			t.Errorf("second Serve = %v, want ErrServing", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// metricsBackend serves the proxy's real registry.
type metricsBackend struct {
	*fakeBackend
	m *telemetry.Metrics
}

func (b metricsBackend) Gatherer() prometheus.Gatherer { return b.m.Gatherer() }

func TestPrometheusWithProxyMetrics(t *testing.T) {
	m := telemetry.NewMetrics()
	m.Listener("ingress").RecordRequest(200, time.Millisecond)
	m.SetServerState(telemetry.StateLive)
	base := startServer(t, metricsBackend{fakeBackend: newFakeBackend(), m: m})
	code, _, body := do(t, "GET", base+"/stats/prometheus")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{
		`outrigger_downstream_rq_total{code_class="2xx",listener="ingress"} 1`,
		"outrigger_server_live 1",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("scrape lacks %q", want)
		}
	}
}
