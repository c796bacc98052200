package tcpproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"cluster", Config{Cluster: "a"}, ""},
		{"weighted", Config{WeightedClusters: []WeightedCluster{{"a", 1}, {"b", 0}}}, ""},
		{"neither", Config{}, "cluster or weighted_clusters is required"},
		{"both", Config{Cluster: "a", WeightedClusters: []WeightedCluster{{"b", 1}}}, "both set"},
		{"empty weighted name", Config{WeightedClusters: []WeightedCluster{{"", 1}}}, "empty cluster name"},
		{"zero weights", Config{WeightedClusters: []WeightedCluster{{"a", 0}}}, "add up to 0"},
		{"negative idle", Config{Cluster: "a", IdleTimeout: -time.Second}, "negative idle_timeout"},
		{"empty log path", Config{Cluster: "a", AccessLogs: []AccessLog{{}}}, "access_log[0]: empty path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
		})
	}
	if _, err := New(Config{}, Deps{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with an invalid config: %v", err)
	}
	if _, err := New(Config{Cluster: "a"}, Deps{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New without clusters: %v", err)
	}
}

func TestEcho(t *testing.T) {
	checkNoGoroutineLeak(t)
	m := clusters(t, static("echo", serveTCP(t, echo)))
	p := newProxy(t, Config{StatPrefix: "t", Cluster: "echo", IdleTimeout: time.Hour}, Deps{Clusters: m})
	f := startFront(t, p, nil)
	c := f.dial(t)
	for _, msg := range []string{"hello", strings.Repeat("x", 100_000), "bye"} {
		if got := roundTrip(t, c, msg); got != msg {
			t.Fatalf("echo = %.20q..., want %.20q...", got, msg)
		}
	}
	_ = c.Close()
	f.waitServed(t, 1)
	st := p.Stats().Snapshot()
	want := uint64(5 + 100_000 + 3)
	if st["downstream_cx_total"] != 1 || st["downstream_cx_rx_bytes_total"] != want || st["downstream_cx_tx_bytes_total"] != want {
		t.Errorf("stats = %v, want 1 connection and %d bytes each way", st, want)
	}
	if st["downstream_cx_active"] != 0 {
		t.Errorf("downstream_cx_active = %d after close", st["downstream_cx_active"])
	}
	cs := m.Get("echo").Stats()
	waitFor(t, 5*time.Second, "upstream_cx_active back to 0", func() bool { return cs.CxActive.Load() == 0 })
	if cs.CxTotal.Load() != 1 {
		t.Errorf("upstream_cx_total = %d, want 1", cs.CxTotal.Load())
	}
}

// TestHalfCloseDownstreamFirst: the client's FIN reaches the upstream,
// which still answers after it.
func TestHalfCloseDownstreamFirst(t *testing.T) {
	checkNoGoroutineLeak(t)
	backend := serveTCP(t, func(c *net.TCPConn) {
		got, _ := io.ReadAll(c) // until the proxied FIN
		_, _ = c.Write([]byte("got " + string(got)))
	})
	m := clusters(t, static("b", backend))
	f := startFront(t, newProxy(t, Config{Cluster: "b"}, Deps{Clusters: m}), nil)
	c := f.dial(t)
	if _, err := c.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read after half-close: %v", err)
	}
	if string(resp) != "got request" {
		t.Fatalf("response = %q", resp)
	}
	f.waitServed(t, 1)
}

// TestHalfCloseUpstreamFirst: the upstream's FIN reaches the client, which
// still sends after it.
func TestHalfCloseUpstreamFirst(t *testing.T) {
	checkNoGoroutineLeak(t)
	received := make(chan string, 1)
	backend := serveTCP(t, func(c *net.TCPConn) {
		_, _ = c.Write([]byte("greeting"))
		_ = c.CloseWrite()
		got, _ := io.ReadAll(c)
		received <- string(got)
	})
	m := clusters(t, static("b", backend))
	f := startFront(t, newProxy(t, Config{Cluster: "b"}, Deps{Clusters: m}), nil)
	c := f.dial(t)
	got, err := io.ReadAll(c) // ends at the proxied FIN
	if err != nil || string(got) != "greeting" {
		t.Fatalf("read = %q, %v", got, err)
	}
	if _, err := c.Write([]byte("after the upstream's FIN")); err != nil {
		t.Fatalf("write after the upstream's FIN: %v", err)
	}
	_ = c.CloseWrite()
	select {
	case s := <-received:
		if s != "after the upstream's FIN" {
			t.Fatalf("upstream received %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("upstream never saw the client's bytes and FIN")
	}
	f.waitServed(t, 1)
}

func TestIdleTimeout(t *testing.T) {
	checkNoGoroutineLeak(t)
	m := clusters(t, static("echo", serveTCP(t, echo)))
	const idle = 200 * time.Millisecond
	p := newProxy(t, Config{Cluster: "echo", IdleTimeout: idle}, Deps{Clusters: m})
	f := startFront(t, p, nil)
	c := f.dial(t)
	roundTrip(t, c, "x")
	last := time.Now()
	n, err := c.Read(make([]byte, 1))
	if n != 0 || (err != io.EOF && !isReset(err)) {
		t.Fatalf("read on an idle connection = %d, %v; want it closed", n, err)
	}
	if waited := time.Since(last); waited < idle {
		t.Errorf("closed %s after the last byte, before the idle timeout %s", waited, idle)
	}
	f.waitServed(t, 1)
	if got := p.Stats().IdleTimeout.Load(); got != 1 {
		t.Errorf("idle_timeout = %d, want 1", got)
	}
}

// TestIdleTimeoutResetsOnTraffic: bytes moving either way keep the
// connection open, also when splice moves them without returning (less
// than a splice chunk in the whole test: only the kernel's counts show
// the progress).
func TestIdleTimeoutResetsOnTraffic(t *testing.T) {
	checkNoGoroutineLeak(t)
	const idle = 300 * time.Millisecond
	const total = 2 * time.Second
	streamed := make(chan int64, 1)
	backend := serveTCP(t, func(c *net.TCPConn) {
		// Upstream to downstream only: 16 KiB every 30 ms.
		var n int64
		chunk := make([]byte, 16<<10)
		for end := time.Now().Add(total); time.Now().Before(end); {
			w, err := c.Write(chunk)
			n += int64(w)
			if err != nil {
				break
			}
			time.Sleep(30 * time.Millisecond)
		}
		_ = c.CloseWrite()
		streamed <- n
	})
	m := clusters(t, static("b", backend))
	p := newProxy(t, Config{Cluster: "b", IdleTimeout: idle}, Deps{Clusters: m})
	f := startFront(t, p, nil)
	c := f.dial(t)
	got, err := io.Copy(io.Discard, c)
	if err != nil {
		t.Fatalf("stream cut: %v after %d bytes", err, got)
	}
	if want := <-streamed; got != want {
		t.Fatalf("got %d bytes, the upstream sent %d (idle timeout fired while bytes flowed?)", got, want)
	}
	if n := p.Stats().IdleTimeout.Load(); n != 0 {
		t.Errorf("idle_timeout = %d while bytes flowed", n)
	}
}

func isReset(err error) bool {
	var ne *net.OpError
	return errors.As(err, &ne) && strings.Contains(err.Error(), "reset")
}

func TestConnectFailureClosesDownstream(t *testing.T) {
	checkNoGoroutineLeak(t)
	logPath := filepath.Join(t.TempDir(), "access.log")
	al, err := telemetry.NewAccessLogger(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = al.Close() })
	dead := deadAddr(t)
	m := clusters(t, static("dead", dead))
	p := newProxy(t, Config{Cluster: "dead"}, Deps{Clusters: m, Logs: []*telemetry.AccessLogger{al}, Listener: "l1"})
	f := startFront(t, p, nil)
	c := f.dial(t)
	n, err := c.Read(make([]byte, 1))
	if n != 0 || (err != io.EOF && !isReset(err)) {
		t.Fatalf("read = %d, %v; want the downstream closed", n, err)
	}
	f.waitServed(t, 1)
	cs := m.Get("dead").Stats()
	if cs.CxConnectFail.Load() != 1 || cs.CxTotal.Load() != 0 {
		t.Errorf("cluster cx_connect_fail = %d, cx_total = %d; want 1, 0", cs.CxConnectFail.Load(), cs.CxTotal.Load())
	}
	if got := p.Stats().ConnectAttemptsExceeded.Load(); got != 1 {
		t.Errorf("upstream_cx_connect_attempts_exceeded = %d, want 1", got)
	}
	e := readLog(t, al, logPath)
	if e["response_flags"] != "UF,URX" || e["upstream_cluster"] != "dead" || e["listener"] != "l1" || e["upstream_host"] != "-" {
		t.Errorf("access log = %v", e)
	}
}

// readLog flushes al and decodes its one line.
func readLog(t *testing.T, al *telemetry.AccessLogger, path string) map[string]any {
	t.Helper()
	al.Flush()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) != 1 {
		t.Fatalf("access log has %d lines:\n%s", len(lines), b)
	}
	var e map[string]any
	if err := json.Unmarshal(lines[0], &e); err != nil {
		t.Fatalf("access log line %s: %v", lines[0], err)
	}
	return e
}

func TestNoUpstream(t *testing.T) {
	checkNoGoroutineLeak(t)
	cfgs := []cluster.Config{{Name: "empty", Discovery: cluster.Static}}
	full := static("full", serveTCP(t, echo))
	full.Thresholds.MaxConnections = 1
	cfgs = append(cfgs, full)
	m := clusters(t, cfgs...)
	tests := []struct {
		cluster string
		flags   string
		stat    func(p *Proxy) uint64
	}{
		{"missing", "NC", func(p *Proxy) uint64 { return p.Stats().CxNoRoute.Load() }},
		{"empty", "UH", func(p *Proxy) uint64 { return p.Stats().NoneHealthy.Load() }},
		{"full", "UO", func(*Proxy) uint64 { return m.Get("full").Stats().CxOverflow.Load() }},
	}
	for _, tt := range tests {
		t.Run(tt.cluster, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "access.log")
			al, err := telemetry.NewAccessLogger(logPath)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = al.Close() })
			p := newProxy(t, Config{Cluster: tt.cluster}, Deps{Clusters: m, Logs: []*telemetry.AccessLogger{al}})
			f := startFront(t, p, nil)
			if tt.cluster == "full" {
				// Hold the cluster's one connection open.
				holder := f.dial(t)
				roundTrip(t, holder, "hold")
				defer func() {
					_ = holder.Close()
					f.waitServed(t, 1)
				}()
			}
			c := f.dial(t)
			if n, err := c.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !isReset(err)) {
				t.Fatalf("read = %d, %v; want the downstream closed", n, err)
			}
			f.waitServed(t, 1)
			if got := tt.stat(p); got != 1 {
				t.Errorf("counter = %d, want 1", got)
			}
			if e := readLog(t, al, logPath); e["response_flags"] != tt.flags {
				t.Errorf("response_flags = %v, want %s", e["response_flags"], tt.flags)
			}
		})
	}
}

// TestMaxConnectAttempts: with two attempts, a dead host is retried on the
// live one; with one, the connection fails.
func TestMaxConnectAttempts(t *testing.T) {
	checkNoGoroutineLeak(t)
	dead, live := deadAddr(t), serveTCP(t, echo)
	m := clusters(t, static("two", dead, live))
	for _, tt := range []struct {
		attempts uint32
		allOK    bool
	}{{2, true}, {1, false}} {
		p := newProxy(t, Config{Cluster: "two", MaxConnectAttempts: tt.attempts}, Deps{Clusters: m})
		f := startFront(t, p, nil)
		ok := 0
		const conns = 6 // round robin: at least half of them pick the dead host first
		for i := 0; i < conns; i++ {
			c := f.dial(t)
			if _, err := c.Write([]byte("ping")); err == nil {
				buf := make([]byte, 4)
				if _, err := io.ReadFull(c, buf); err == nil && string(buf) == "ping" {
					ok++
				}
			}
			_ = c.Close()
			f.waitServed(t, 1)
		}
		if tt.allOK && ok != conns {
			t.Errorf("max_connect_attempts %d: %d of %d connections worked", tt.attempts, ok, conns)
		}
		if !tt.allOK && (ok == conns || ok == 0) {
			t.Errorf("max_connect_attempts %d: %d of %d connections worked, want some but not all", tt.attempts, ok, conns)
		}
	}
	var deadFails uint64
	for _, h := range m.Get("two").Hosts() {
		if h.Address == dead {
			deadFails = h.Stats.CxConnectFail.Load()
		}
	}
	if deadFails < 3 {
		t.Errorf("dead host cx_connect_fail = %d, want >= 3", deadFails)
	}
}

func TestWeightedClusters(t *testing.T) {
	checkNoGoroutineLeak(t)
	m := clusters(t,
		static("a", serveTCP(t, greeter("a"))),
		static("b", serveTCP(t, greeter("b"))),
		static("never", serveTCP(t, greeter("n"))))
	p := newProxy(t, Config{WeightedClusters: []WeightedCluster{{"a", 1}, {"b", 3}, {"never", 0}}}, Deps{Clusters: m})
	f := startFront(t, p, nil)
	counts := map[string]int{}
	const conns = 200
	for i := 0; i < conns; i++ {
		c := f.dial(t)
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		counts[string(b)]++
		_ = c.Close()
	}
	f.waitServed(t, conns)
	// b's share is 3/4: 150 expected, sd about 6.
	if counts["n"] != 0 || counts["a"]+counts["b"] != conns || counts["b"] < 110 || counts["b"] > 185 {
		t.Errorf("picks = %v, want about 50 a and 150 b", counts)
	}
}

// TestRawDownstream: bytes the listener already read go upstream first,
// then the socket's.
func TestRawDownstream(t *testing.T) {
	checkNoGoroutineLeak(t)
	m := clusters(t, static("echo", serveTCP(t, echo)))
	p := newProxy(t, Config{Cluster: "echo"}, Deps{Clusters: m})
	var raw atomic.Bool
	f := startFront(t, p, func(c *net.TCPConn) net.Conn {
		pc := &prefixed{TCPConn: c, prefix: []byte("peeked:")}
		// The listener read the first bytes of the client's stream: eat them
		// from the socket the way it did.
		buf := make([]byte, 3)
		if _, err := io.ReadFull(c, buf); err == nil {
			pc.prefix = append(pc.prefix, buf...)
		}
		raw.Store(true)
		return pc
	})
	c := f.dial(t)
	if _, err := c.Write([]byte("abcdef")); err != nil {
		t.Fatal(err)
	}
	_ = c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "peeked:abcdef" {
		t.Fatalf("echo = %q, %v", got, err)
	}
	f.waitServed(t, 1)
	if !raw.Load() || p.Stats().RxBytes.Load() != uint64(len("peeked:abcdef")) {
		t.Errorf("rx bytes = %d", p.Stats().RxBytes.Load())
	}
}

// TestTLS: a TLS-terminated downstream (no splice possible) and a TLS
// upstream from the cluster's config, half-close through both.
func TestTLS(t *testing.T) {
	checkNoGoroutineLeak(t)
	srvTLS, pool := testTLS(t)
	tlsBackend := serveTCP(t, func(c *net.TCPConn) {
		tc := tls.Server(c, srvTLS)
		got, err := io.ReadAll(tc) // until close_notify
		if err != nil {
			return
		}
		_, _ = tc.Write([]byte("tls got " + string(got)))
		_ = tc.CloseWrite()
	})
	up := static("tls", tlsBackend)
	up.TLS = &tls.Config{RootCAs: pool, ServerName: "backend", MinVersion: tls.VersionTLS12}
	m := clusters(t, up)
	p := newProxy(t, Config{Cluster: "tls"}, Deps{Clusters: m})
	f := startFront(t, p, func(c *net.TCPConn) net.Conn {
		tc := tls.Server(c, srvTLS)
		if err := tc.HandshakeContext(context.Background()); err != nil {
			t.Logf("downstream handshake: %v", err)
		}
		return tc
	})
	raw := f.dial(t)
	c := tls.Client(raw, &tls.Config{RootCAs: pool, ServerName: "backend"})
	if _, err := c.Write([]byte("secret")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "tls got secret" {
		t.Fatalf("response = %q, %v", got, err)
	}
	f.waitServed(t, 1)
}

// TestUpstreamTLSFailure: a failed handshake is a connect failure.
func TestUpstreamTLSFailure(t *testing.T) {
	checkNoGoroutineLeak(t)
	srvTLS, _ := testTLS(t)
	_, otherPool := testTLS(t)
	backend := serveTCP(t, func(c *net.TCPConn) {
		_ = tls.Server(c, srvTLS).Handshake()
	})
	up := static("tls", backend)
	up.TLS = &tls.Config{RootCAs: otherPool, ServerName: "backend"}
	m := clusters(t, up)
	p := newProxy(t, Config{Cluster: "tls"}, Deps{Clusters: m})
	f := startFront(t, p, nil)
	c := f.dial(t)
	if n, err := c.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !isReset(err)) {
		t.Fatalf("read = %d, %v; want the downstream closed", n, err)
	}
	f.waitServed(t, 1)
	if got := m.Get("tls").Stats().CxConnectFail.Load(); got != 1 {
		t.Errorf("cx_connect_fail = %d, want 1", got)
	}
}

// TestContextEndsSession: the listener closing (ctx) ends a connection
// that is waiting on an idle upstream, also half-closed.
func TestContextEndsSession(t *testing.T) {
	checkNoGoroutineLeak(t)
	backend := serveTCP(t, func(c *net.TCPConn) {
		_, _ = io.Copy(io.Discard, c) // never answers, never closes first
		time.Sleep(100 * time.Millisecond)
	})
	m := clusters(t, static("b", backend))
	p := newProxy(t, Config{Cluster: "b"}, Deps{Clusters: m})
	f := startFront(t, p, nil)
	c := f.dial(t)
	_ = c.CloseWrite() // downstream half-closed: only upstream->downstream runs
	waitFor(t, 5*time.Second, "the upstream connection", func() bool { return m.Get("b").Stats().CxActive.Load() == 1 })
	f.cancel()
	f.waitServed(t, 1)
	if n, err := c.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !isReset(err)) {
		t.Fatalf("read = %d, %v; want closed", n, err)
	}
}
