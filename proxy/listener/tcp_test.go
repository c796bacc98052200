package listener

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The real TCP proxy (proxy/tcpproxy) is tested through the listener in
// proxy/server; these handlers show what the listener hands over.

// seen is what a test handler was given.
type seen struct {
	kind   string // "raw", "tls" or "other"
	prefix []byte // RawConn's bytes already read
	sni    string // the terminated TLS connection's server name
}

// echoTCP answers name, then echoes; it records what it was handed.
type echoTCP struct {
	name string
	got  chan seen
}

func newEchoTCP(name string) *echoTCP { return &echoTCP{name: name, got: make(chan seen, 16)} }

func (h *echoTCP) ServeConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	s := seen{kind: "other"}
	rw := io.ReadWriter(c)
	switch v := c.(type) {
	case RawConn:
		var sock net.Conn
		sock, s.prefix = v.Raw()
		if _, ok := sock.(*net.TCPConn); ok {
			s.kind = "raw"
		}
		// Replay what the listener read, then the socket itself.
		rw = struct {
			io.Reader
			io.Writer
		}{io.MultiReader(bytes.NewReader(s.prefix), sock), sock}
	case *tls.Conn:
		s.kind, s.sni = "tls", v.ConnectionState().ServerName
	}
	h.got <- s
	if _, err := io.WriteString(rw, h.name+":"); err != nil {
		return
	}
	_, _ = io.Copy(rw, rw)
}

func (h *echoTCP) wait(t *testing.T) seen {
	t.Helper()
	select {
	case s := <-h.got:
		return s
	case <-time.After(10 * time.Second):
		t.Fatalf("handler %s never got a connection", h.name)
		return seen{}
	}
}

// forwardTCP passes every connection to addr, replaying the bytes the
// listener read: a minimal TCP proxy, enough to show TLS passthrough.
type forwardTCP struct{ addr string }

func (f forwardTCP) ServeConn(ctx context.Context, c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", f.addr)
	if err != nil {
		return
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close(); _ = up.Close() })
	defer stop()
	var src io.Reader = c
	if r, ok := c.(RawConn); ok {
		sock, prefix := r.Raw()
		if _, err := up.Write(prefix); err != nil {
			return
		}
		src = sock
	}
	go func() {
		_, _ = io.Copy(up, src)
		_ = up.(*net.TCPConn).CloseWrite()
	}()
	_, _ = io.Copy(c, up)
}

// tlsBackend is a TLS server on loopback that writes its name and echoes.
func tlsBackend(t *testing.T, cfg *tls.Config, name string) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
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
				_ = c.SetDeadline(time.Now().Add(15 * time.Second))
				if _, err := io.WriteString(c, name); err == nil {
					_, _ = io.Copy(c, c)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	return string(b)
}

func TestTCPChainPlaintext(t *testing.T) {
	checkNoGoroutineLeak(t)
	h := newEchoTCP("tcp")
	l := startListener(t, Config{FilterChains: []FilterChain{{Name: "tcp", TCP: h}}})
	c := dialRaw(t, l)
	if got := readN(t, c, 4); got != "tcp:" {
		t.Fatalf("greeting %q", got)
	}
	// The greeting came before the client sent anything: a catch-all TCP
	// chain is served without reading a byte (server-first protocols).
	if s := h.wait(t); s.kind != "raw" || len(s.prefix) != 0 {
		t.Errorf("handler got %s with %q already read, want a raw socket and nothing read", s.kind, s.prefix)
	}
	_, _ = io.WriteString(c, "ping")
	if got := readN(t, c, 4); got != "ping" {
		t.Errorf("echo %q", got)
	}
	if n := l.Stats().TCPConns; n != 1 {
		t.Errorf("TCPConns = %d, want 1", n)
	}
}

// With TLS chains on the same listener, a plaintext connection is told
// apart by its first byte, which the TCP handler gets back.
func TestTCPChainBesideTLS(t *testing.T) {
	checkNoGoroutineLeak(t)
	ca := newTestCA(t)
	h := newEchoTCP("tcp")
	l := startListener(t, Config{FilterChains: []FilterChain{
		{Name: "web", Handler: okHandler("web"), TLS: ca.serverTLS(t, "web.example")},
		{Name: "tcp", TCP: h, Match: ChainMatch{TransportProtocol: "raw_buffer"}},
	}})
	c := dialRaw(t, l)
	_, _ = io.WriteString(c, "hello")
	if got := readN(t, c, 9); got != "tcp:hello" {
		t.Fatalf("got %q", got)
	}
	if s := h.wait(t); s.kind != "raw" || string(s.prefix) != "h" {
		t.Errorf("handler got %s with %q already read, want raw with \"h\"", s.kind, s.prefix)
	}
	resp := get(t, tlsClient(t, ca, "web.example", "h2"), "https://"+l.Addr().String()+"/")
	if resp.Header.Get("X-Chain") != "web" || resp.ProtoMajor != 2 {
		t.Errorf("TLS request served by %q over %s", resp.Header.Get("X-Chain"), resp.Proto)
	}
}

func TestTCPChainTerminatesTLS(t *testing.T) {
	checkNoGoroutineLeak(t)
	ca := newTestCA(t)
	h := newEchoTCP("tls-tcp")
	l := startListener(t, Config{FilterChains: []FilterChain{
		{Name: "tcp", TCP: h, TLS: ca.serverTLS(t, "db.example")},
	}})
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.pool, ServerName: "db.example", NextProtos: []string{"postgresql"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if p := c.ConnectionState().NegotiatedProtocol; p != "" {
		t.Errorf("ALPN %q negotiated on a TCP chain without alpn_protocols", p)
	}
	if got := readN(t, c, 8); got != "tls-tcp:" {
		t.Fatalf("greeting %q", got)
	}
	if s := h.wait(t); s.kind != "tls" || s.sni != "db.example" {
		t.Errorf("handler got %+v, want the terminated *tls.Conn", s)
	}
}

// TLS passthrough: chains without TLS that match on server_names get the
// connection as it came, ClientHello included, so the backends terminate
// TLS with their own certificates. An HTTP chain that terminates TLS on
// the same listener keeps working.
func TestTLSPassthroughBySNI(t *testing.T) {
	checkNoGoroutineLeak(t)
	ca := newTestCA(t)
	a := tlsBackend(t, ca.serverTLS(t, "a.example"), "A")
	b := tlsBackend(t, ca.serverTLS(t, "b.example"), "B")
	catchAll := newEchoTCP("any")
	l := startListener(t, Config{FilterChains: []FilterChain{
		{Name: "a", TCP: forwardTCP{a}, Match: ChainMatch{ServerNames: []string{"a.example"}}},
		{Name: "b", TCP: forwardTCP{b}, Match: ChainMatch{ServerNames: []string{"*.b.example", "b.example"}}},
		{Name: "web", Handler: okHandler("web"), TLS: ca.serverTLS(t, "web.example"), Match: ChainMatch{ServerNames: []string{"web.example"}}},
		{Name: "any", TCP: catchAll},
	}})
	for _, tt := range []struct{ sni, want string }{{"a.example", "A"}, {"b.example", "B"}, {"x.b.example", "B"}} {
		c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.pool, ServerName: tt.sni, InsecureSkipVerify: tt.sni == "x.b.example"})
		if err != nil {
			t.Fatalf("%s: %v", tt.sni, err)
		}
		if got := readN(t, c, 1); got != tt.want {
			t.Errorf("%s reached backend %q, want %q", tt.sni, got, tt.want)
		}
		_, _ = io.WriteString(c, "ping")
		if got := readN(t, c, 4); got != "ping" {
			t.Errorf("%s: echo %q", tt.sni, got)
		}
		// The certificate is the backend's own: TLS was not terminated here.
		if cn := c.ConnectionState().PeerCertificates[0].Subject.CommonName; cn != tt.sni && tt.sni != "x.b.example" {
			t.Errorf("%s: certificate of %q", tt.sni, cn)
		}
		_ = c.Close()
	}
	// The HTTP chain terminating TLS (through the recording reader).
	for _, alpn := range []string{"h2", "http/1.1"} {
		resp := get(t, tlsClient(t, ca, "web.example", alpn), "https://"+l.Addr().String()+"/")
		if resp.Header.Get("X-Chain") != "web" {
			t.Errorf("%s: served by %q", alpn, resp.Header.Get("X-Chain"))
		}
	}
	// An unknown name falls to the catch-all TCP chain, ClientHello and all.
	raw := dialRaw(t, l)
	hello := tls.Client(raw, &tls.Config{ServerName: "other.example", InsecureSkipVerify: true})
	go func() { _ = hello.Handshake() }() // the echo answers nonsense; only the bytes matter
	s := catchAll.wait(t)
	if s.kind != "raw" || len(s.prefix) < 5 || s.prefix[0] != 0x16 || !bytes.Contains(s.prefix, []byte("other.example")) {
		t.Errorf("catch-all got %s with %d bytes, want the raw ClientHello naming other.example", s.kind, len(s.prefix))
	}
	// Plaintext also reaches the catch-all (after the first-byte peek).
	p := dialRaw(t, l)
	_, _ = io.WriteString(p, "plain")
	if got := readN(t, p, 9); got != "any:plain" {
		t.Errorf("plaintext got %q", got)
	}
}

// Without a chain for the name (and no catch-all), a passthrough listener
// closes the connection, as for terminating chains.
func TestTLSPassthroughNoMatch(t *testing.T) {
	checkNoGoroutineLeak(t)
	ca := newTestCA(t)
	l := startListener(t, Config{FilterChains: []FilterChain{
		{Name: "a", TCP: newEchoTCP("a"), Match: ChainMatch{TransportProtocol: "tls", ServerNames: []string{"a.example"}}},
	}})
	_, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.pool, ServerName: "z.example"})
	if err == nil {
		t.Fatal("handshake for an unmatched name succeeded")
	}
	waitFor(t, 5*time.Second, "the rejection to be counted", func() bool { return l.Stats().DownstreamCxRejected == 1 })
}

// Drain: a TCP connection keeps running through Shutdown until the drain
// deadline, then is closed; one that ends earlier lets Shutdown return
// early.
func TestShutdownClosesTCPAtDeadline(t *testing.T) {
	checkNoGoroutineLeak(t)
	h := newEchoTCP("tcp")
	l := startListener(t, Config{FilterChains: []FilterChain{{Name: "tcp", TCP: h}}})
	c := dialRaw(t, l)
	readN(t, c, 4)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- l.Shutdown(ctx) }()
	// Still served while draining.
	_, _ = io.WriteString(c, "during")
	if got := readN(t, c, 6); got != "during" {
		t.Fatalf("echo during drain %q", got)
	}
	err := <-done
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the drain cut short", err)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Errorf("Shutdown returned after %s, before the drain deadline", took)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("read after the drain = %d, %v; want closed", n, err)
	}
}

func TestShutdownWaitsForTCPToEnd(t *testing.T) {
	checkNoGoroutineLeak(t)
	l := startListener(t, Config{FilterChains: []FilterChain{{Name: "tcp", TCP: newEchoTCP("tcp")}}})
	c := dialRaw(t, l)
	readN(t, c, 4)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- l.Shutdown(ctx)
	}()
	_ = c.Close() // the client ends its connection
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown still waiting after the last TCP connection ended")
	}
}

func TestCloseEndsTCP(t *testing.T) {
	checkNoGoroutineLeak(t)
	l, err := New(Config{Name: "x", Address: "127.0.0.1:0", FilterChains: []FilterChain{{Name: "tcp", TCP: newEchoTCP("tcp")}}}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve(context.Background()) }()
	c := dialRaw(t, l)
	readN(t, c, 4)
	_ = l.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close with a TCP connection open")
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("read after Close = %d, %v; want closed", n, err)
	}
}

// A listener update hands the socket over: new TCP connections reach the
// new chain while one on the old chain keeps working until it drains.
func TestDetachAdoptTCP(t *testing.T) {
	checkNoGoroutineLeak(t)
	old := startListener(t, Config{FilterChains: []FilterChain{{Name: "old", TCP: newEchoTCP("old")}}})
	busy := dialRaw(t, old)
	readN(t, busy, 4)
	ln := old.Detach()
	next, err := Adopt(Config{Name: "next", FilterChains: []FilterChain{{Name: "new", TCP: newEchoTCP("new")}}}, ln, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- next.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = next.Close()
		<-done
	})
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained <- old.Shutdown(ctx)
	}()
	c := dialRaw(t, next)
	if got := readN(t, c, 4); got != "new:" {
		t.Errorf("new connection served by %q", got)
	}
	_, _ = io.WriteString(busy, "still")
	if got := readN(t, busy, 5); got != "still" {
		t.Errorf("old connection echo %q", got)
	}
	_ = busy.Close()
	if err := <-drained; err != nil {
		t.Errorf("old Shutdown: %v", err)
	}
}

func TestTCPChainValidation(t *testing.T) {
	h := newEchoTCP("x")
	ca := newTestCA(t)
	tests := []struct {
		name string
		fc   FilterChain
		ok   bool
	}{
		{"both handlers", FilterChain{Name: "x", TCP: h, Handler: http.NotFoundHandler()}, false},
		{"passthrough by transport", FilterChain{Name: "x", TCP: h, Match: ChainMatch{TransportProtocol: "tls"}}, true},
		{"passthrough by sni", FilterChain{Name: "x", TCP: h, Match: ChainMatch{ServerNames: []string{"a"}}}, true},
		{"passthrough by alpn", FilterChain{Name: "x", TCP: h, Match: ChainMatch{ALPN: []string{"x"}}}, true},
		{"raw_buffer with sni", FilterChain{Name: "x", TCP: h, Match: ChainMatch{TransportProtocol: "raw_buffer", ServerNames: []string{"a"}}}, false},
		{"raw_buffer with TLS", FilterChain{Name: "x", TCP: h, TLS: ca.serverTLS(t, "a"), Match: ChainMatch{TransportProtocol: "raw_buffer"}}, false},
		{"http passthrough", FilterChain{Name: "x", Handler: http.NotFoundHandler(), Match: ChainMatch{ServerNames: []string{"a"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{Name: "l", Address: "127.0.0.1:0", FilterChains: []FilterChain{tt.fc}}
			err := cfg.Validate()
			if tt.ok != (err == nil) {
				t.Fatalf("Validate = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
		})
	}
}
