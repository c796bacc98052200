package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
	"github.com/outrigger-mesh/outrigger/proxy/server"
)

// tcpChain renders one filter chain with a tcp_proxy to cluster; match and
// transport are YAML fragments at chain level (6 spaces), extra lines go in
// the TcpProxy (10 spaces).
func tcpChain(cluster, match, transport, extra string) string {
	return match + transport + fmt.Sprintf(`      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: %s
          cluster: %s
%s`, cluster, cluster, extra)
}

// tcpBootstrap renders one listener "tcp" (on addr, 127.0.0.1:0 if empty)
// over chains (each from tcpChain, turned into a list item) and clusters.
func tcpBootstrap(addr string, clusters string, chains ...string) string {
	host, port := "127.0.0.1", "0"
	if addr != "" {
		host, port, _ = net.SplitHostPort(addr)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `static_resources:
  listeners:
  - name: tcp
    address:
      socket_address: {address: %s, port_value: %s}
    filter_chains:
`, host, port)
	for _, c := range chains {
		sb.WriteString("    - " + strings.TrimPrefix(c, "      "))
	}
	sb.WriteString("  clusters:\n")
	sb.WriteString(clusters)
	return sb.String()
}

// tcpServe accepts on loopback and runs handle per connection until the
// test ends.
func tcpServe(t *testing.T, ln net.Listener, handle func(net.Conn)) string {
	t.Helper()
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(60 * time.Second))
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func tcpListen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	return ln
}

// echoServer writes name (if any), echoes, and half-closes at the end.
func echoServer(t *testing.T, name string) string {
	return tcpServe(t, tcpListen(t), func(c net.Conn) {
		if name != "" {
			_, _ = io.WriteString(c, name)
		}
		_, _ = io.Copy(c, c)
		if cw, ok := c.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	})
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	must(t, err)
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readString(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return string(b)
}

func TestTCPProxyEcho(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "tcp.log")
	extra := fmt.Sprintf(`          idle_timeout: 30s
          max_connect_attempts: 2
          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: %q
`, logPath)
	p := startProxy(t, tcpBootstrap("", staticCluster("echo", "", echoServer(t, "")), tcpChain("echo", "", "", extra)))
	c := dialTCP(t, p.addr["tcp"])
	_, _ = io.WriteString(c, "hello")
	if got := readString(t, c, 5); got != "hello" {
		t.Fatalf("echo %q", got)
	}
	// Half-close: the FIN goes through, the echo's own FIN comes back.
	_ = c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q, %v", rest, err)
	}
	waitFor(t, 5*time.Second, "the connection to end", func() bool {
		return p.srv.TCPProxyStats()["echo"]["downstream_cx_active"] == 0
	})
	st := p.srv.TCPProxyStats()["echo"]
	if st["downstream_cx_total"] != 1 || st["downstream_cx_rx_bytes_total"] != 5 || st["downstream_cx_tx_bytes_total"] != 5 {
		t.Errorf("tcp.echo stats = %v", st)
	}
	if m := gatherTCP(t, p); !strings.Contains(m, `outrigger_tcp_downstream_cx_total{stat_prefix="echo"} 1`) {
		t.Errorf("metrics:\n%s", m)
	}
	p.stop(t)
	lines := accessLogLines(t, logPath)
	if len(lines) != 1 || lines[0]["upstream_cluster"] != "echo" || lines[0]["bytes_received"] != float64(5) ||
		lines[0]["bytes_sent"] != float64(5) || lines[0]["listener"] != "tcp" || lines[0]["response_flags"] != "-" {
		t.Errorf("access log %v", lines)
	}
}

// gatherTCP renders the outrigger_tcp_* metrics.
func gatherTCP(t *testing.T, p *proxy) string {
	t.Helper()
	mfs, err := p.srv.Metrics().Gatherer().Gather()
	must(t, err)
	var sb strings.Builder
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "outrigger_tcp_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			v := m.GetCounter().GetValue()
			if m.GetGauge() != nil {
				v = m.GetGauge().GetValue()
			}
			fmt.Fprintf(&sb, "%s{stat_prefix=%q} %v\n", mf.GetName(), m.GetLabel()[0].GetValue(), v)
		}
	}
	return sb.String()
}

// TestTCPProxyBigTransfer: 64 MiB each way through the proxy (splice
// between the sockets), checked byte for byte.
func TestTCPProxyBigTransfer(t *testing.T) {
	const size = 64 << 20
	p := startProxy(t, tcpBootstrap("", staticCluster("echo", "", echoServer(t, "")), tcpChain("echo", "", "", "")))
	c := dialTCP(t, p.addr["tcp"])
	src := make([]byte, 1<<20)
	for i := range src {
		src[i] = byte(rand.Uint32())
	}
	sent := sha256.New()
	go func() {
		w := io.MultiWriter(c, sent)
		for i := 0; i < size/len(src); i++ {
			src[i%len(src)] ^= byte(i) // vary the stream
			if _, err := w.Write(src); err != nil {
				return
			}
		}
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	got := sha256.New()
	n, err := io.Copy(got, c)
	if err != nil || n != size {
		t.Fatalf("received %d bytes, %v; want %d", n, err, size)
	}
	if !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
		t.Fatal("the echoed stream differs from the one sent")
	}
	waitFor(t, 5*time.Second, "the byte counters", func() bool {
		st := p.srv.TCPProxyStats()["echo"]
		return st["downstream_cx_rx_bytes_total"] == size && st["downstream_cx_tx_bytes_total"] == size
	})
}

// TestTCPProxyTLSPassthroughBySNI: chains without TLS that match on
// server_names forward the raw TLS stream, ClientHello included, to two
// different backends, which terminate TLS with their own certificates; a
// third chain terminates TLS in the proxy and forwards plaintext.
func TestTCPProxyTLSPassthroughBySNI(t *testing.T) {
	dir := t.TempDir()
	certA, certB := makeCert(t, dir, "a", "a.test"), makeCert(t, dir, "b", "b.test")
	certP := makeCert(t, dir, "proxy", "plain.test")
	tlsEcho := func(cert *testCert, name string) string {
		ln := tls.NewListener(tcpListen(t), &tls.Config{Certificates: []tls.Certificate{cert.tls}})
		return tcpServe(t, ln, func(c net.Conn) {
			_, _ = io.WriteString(c, name)
			_, _ = io.Copy(c, c)
		})
	}
	a, b := tlsEcho(certA, "A"), tlsEcho(certB, "B")
	plain := echoServer(t, "P")
	sni := func(name string) string {
		return fmt.Sprintf("      filter_chain_match:\n        server_names: [%q]\n", name)
	}
	terminate := fmt.Sprintf(`      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {filename: %q}
              private_key: {filename: %q}
`, certP.certFile, certP.keyFile)
	clusters := staticCluster("a", "", a) + staticCluster("b", "", b) + staticCluster("plain", "", plain)
	p := startProxy(t, tcpBootstrap("", clusters,
		tcpChain("a", sni("a.test"), "", ""),
		tcpChain("b", sni("b.test"), "", ""),
		tcpChain("plain", sni("plain.test"), terminate, "")))
	for _, tt := range []struct {
		name string
		pool *testCert
		want string
	}{{"a.test", certA, "A"}, {"b.test", certB, "B"}, {"plain.test", certP, "P"}} {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.addr["tcp"],
			&tls.Config{RootCAs: tt.pool.pool, ServerName: tt.name})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if got := readString(t, c, 1); got != tt.want {
			t.Errorf("%s reached %q, want %q", tt.name, got, tt.want)
		}
		_, _ = io.WriteString(c, "ping")
		if got := readString(t, c, 4); got != "ping" {
			t.Errorf("%s: echo %q", tt.name, got)
		}
		_ = c.Close()
	}
	// No chain for the name: the connection is refused.
	if c, err := tls.Dial("tcp", p.addr["tcp"], &tls.Config{InsecureSkipVerify: true, ServerName: "nobody.test"}); err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("a name no chain serves was accepted")
		}
		_ = c.Close()
	}
}

// TestTCPProxyListenerUpdate: a changed listener on the same address takes
// over its socket; a connection open on the old one keeps its upstream
// until it ends, new ones reach the new config.
func TestTCPProxyListenerUpdate(t *testing.T) {
	addr := freeAddr(t)
	clusters := staticCluster("one", "", echoServer(t, "1")) + staticCluster("two", "", echoServer(t, "2"))
	p := startProxy(t, tcpBootstrap(addr, clusters, tcpChain("one", "", "", "")))
	old := dialTCP(t, addr)
	if got := readString(t, old, 1); got != "1" {
		t.Fatalf("first backend %q", got)
	}
	b, err := bootstrap.Load("", tcpBootstrap(addr, clusters, tcpChain("two", "", "", "")))
	must(t, err)
	must(t, p.srv.Apply(b.Static))
	c := dialTCP(t, addr)
	if got := readString(t, c, 1); got != "2" {
		t.Errorf("after the update a new connection reached %q, want 2", got)
	}
	_, _ = io.WriteString(old, "still")
	if got := readString(t, old, 5); got != "still" {
		t.Errorf("the old connection's echo %q", got)
	}
}

// TestTCPProxyDrain: on shutdown a TCP connection keeps working for the
// drain time, then is closed, and Run returns.
func TestTCPProxyDrain(t *testing.T) {
	b, err := bootstrap.Load("", tcpBootstrap("", staticCluster("echo", "", echoServer(t, "")), tcpChain("echo", "", "", "")))
	must(t, err)
	const drain = 400 * time.Millisecond
	srv, err := server.New(server.Options{
		Logger:    hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}),
		Bootstrap: b, DrainTimeout: drain,
	})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	waitFor(t, 5*time.Second, "proxy ready", srv.Ready)
	c := dialTCP(t, srv.Listeners()["tcp"])
	_, _ = io.WriteString(c, "a")
	readString(t, c, 1)
	start := time.Now()
	cancel()
	// Served during the drain.
	_, _ = io.WriteString(c, "b")
	if got := readString(t, c, 1); got != "b" {
		t.Errorf("echo during the drain %q", got)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("read after the drain = %d, %v; want closed", n, err)
	}
	if took := time.Since(start); took < drain-50*time.Millisecond {
		t.Errorf("closed %s after shutdown began, before the drain time %s", took, drain)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

// TestTCPProxyConfigErrors: what the converter refuses, with its path.
func TestTCPProxyConfigErrors(t *testing.T) {
	cl := staticCluster("echo", "", "127.0.0.1:9")
	hcmFilter := `      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: x
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config: {name: r}
`
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown cluster", tcpBootstrap("", cl, tcpChain("nope", "", "", "")),
			`typed_config.cluster: cluster "nope" is not defined`},
		{"unsupported field", tcpBootstrap("", cl, tcpChain("echo", "", "", "          downstream_idle_timeout: 1s\n")),
			"typed_config.downstream_idle_timeout"},
		{"second network filter", tcpBootstrap("", cl, tcpChain("echo", "", "", "")+hcmFilter),
			"filter_chains[0].filters[0]: the envoy.filters.network.tcp_proxy filter must be the chain's last"},
		{"weighted cluster unknown", tcpBootstrap("", cl, strings.Replace(tcpChain("echo", "", "", ""), "          cluster: echo\n",
			"          weighted_clusters:\n            clusters:\n            - {name: echo, weight: 1}\n            - {name: other, weight: 2}\n", 1)),
			`weighted_clusters.clusters[1].name: cluster "other" is not defined`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := bootstrap.Load("", tt.yaml)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error = %v, want it to mention %q\n%s", err, tt.want, tt.yaml)
			}
		})
	}
}

// TestTCPProxyRedis: a real Redis behind the TCP proxy, driven by
// redis-benchmark for a bounded run (SET and GET, 20 clients).
func TestTCPProxyRedis(t *testing.T) {
	server, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (Debian: apt-get install redis-server redis-tools); skipping the Redis test")
	}
	bench, err := exec.LookPath("redis-benchmark")
	if err != nil {
		t.Skip("redis-benchmark not installed (Debian: apt-get install redis-tools); skipping the Redis test")
	}
	redisAddr := startRedis(t, server)
	p := startProxy(t, tcpBootstrap("", staticCluster("redis", "", redisAddr), tcpChain("redis", "", "", "")))
	run := func(addr string) string {
		host, port := hostPort(t, addr)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, bench, "-h", host, "-p", port, "-n", "20000", "-c", "20", "-t", "set,get", "-q").CombinedOutput()
		if err != nil {
			t.Fatalf("redis-benchmark against %s: %v\n%s", addr, err, out)
		}
		return string(out)
	}
	out := run(p.addr["tcp"])
	t.Logf("through the proxy:\n%s", out)
	for _, cmd := range []string{"SET: ", "GET: "} {
		if !strings.Contains(out, cmd) || !strings.Contains(out, "requests per second") {
			t.Errorf("redis-benchmark output lacks %q results:\n%s", cmd, out)
		}
	}
	if strings.Contains(strings.ToLower(out), "error") {
		t.Errorf("redis-benchmark reported errors:\n%s", out)
	}
	st := p.srv.TCPProxyStats()["redis"]
	if st["downstream_cx_total"] < 20 || st["upstream_cx_none_healthy"] != 0 || st["upstream_cx_connect_attempts_exceeded"] != 0 {
		t.Errorf("tcp.redis stats = %v", st)
	}
	t.Logf("direct:\n%s", run(redisAddr))
}

// startRedis runs redis-server on a free loopback port, without
// persistence, until the test ends.
func startRedis(t *testing.T, bin string) string {
	t.Helper()
	addr := freeAddr(t)
	_, port := hostPort(t, addr)
	cmd := exec.Command(bin, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--port", port, "--dir", t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	must(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = io.WriteString(c, "PING\r\n")
			b := make([]byte, 7)
			_, err = io.ReadFull(c, b)
			_ = c.Close()
			if err == nil && string(b) == "+PONG\r\n" {
				return addr
			}
		}
		select {
		case <-exited:
			t.Fatalf("redis-server exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server not answering on %s:\n%s", addr, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
