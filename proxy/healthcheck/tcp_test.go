package healthcheck

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// tcpServer accepts on loopback and runs serve on each connection.
type tcpServer struct {
	ln    net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
}

func newTCPServer(t *testing.T, cert *tls.Certificate, serve func(net.Conn)) *tcpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cert != nil {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{*cert}})
	}
	s := &tcpServer{ln: ln}
	var mu sync.Mutex
	var open []net.Conn
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *tcpServer) addr() string { return s.ln.Addr().String() }

func echo(c net.Conn) { io.Copy(c, c) }

func tcpCheck(tc TCPCheck) func(*Config) { return func(c *Config) { c.TCP = &tc } }

func TestTCPConnectOnly(t *testing.T) {
	srv := newTCPServer(t, nil, func(c net.Conn) { io.Copy(io.Discard, c) })
	h := lb.NewHost(srv.addr(), 1)
	_, rec := start(t, []Config{fast(tcpCheck(TCPCheck{}))}, Options{}, h)
	evs := rec.waitN(t, h, 3)
	if !evs[0].healthy || evs[0].res.outcome != passed {
		t.Fatalf("connect-only check: %s", describe(evs))
	}
	// Connect-only never keeps its connection, reuse or not (as Envoy).
	waitUntil(t, "one connection per connect-only check", func() bool { return srv.conns.Load() >= 3 })

	down := lb.NewHost(closedAddr(t), 1)
	_, rec = start(t, []Config{fast(tcpCheck(TCPCheck{}))}, Options{}, down)
	if e := rec.waitN(t, down, 1)[0]; e.res.outcome != network || e.healthy || !strings.Contains(e.res.reason, "refused") {
		t.Fatalf("closed port: %s (%s)", outcomeName(e.res.outcome), e.res.reason)
	}
}

func TestTCPSendReceive(t *testing.T) {
	echoSrv := newTCPServer(t, nil, echo)
	// liar answers with something else and hangs up.
	liar := newTCPServer(t, nil, func(c net.Conn) {
		buf := make([]byte, 4)
		io.ReadFull(c, buf)
		c.Write([]byte("nope"))
	})
	tests := []struct {
		name    string
		addr    string
		check   TCPCheck
		want    outcome
		timeout time.Duration
	}{
		{"match", echoSrv.addr(), TCPCheck{Send: []byte("ping-pong"), Receive: [][]byte{[]byte("ping"), []byte("pong")}}, passed, 0},
		{"fuzzy match", echoSrv.addr(), TCPCheck{Send: []byte("aXbYc"), Receive: [][]byte{[]byte("a"), []byte("c")}}, passed, 0},
		{"out of order never matches: timeout", echoSrv.addr(), TCPCheck{Send: []byte("ping-pong"), Receive: [][]byte{[]byte("pong"), []byte("ping")}}, timedOut, 100 * time.Millisecond},
		{"closed before a match: network", liar.addr(), TCPCheck{Send: []byte("ping"), Receive: [][]byte{[]byte("pong")}}, network, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := lb.NewHost(tt.addr, 1)
			cfg := fast(tcpCheck(tt.check))
			if tt.timeout > 0 {
				cfg.Timeout = tt.timeout
			}
			_, rec := start(t, []Config{cfg}, Options{}, h)
			if e := rec.waitN(t, h, 1)[0]; e.res.outcome != tt.want {
				t.Fatalf("outcome %s (%s), want %s", outcomeName(e.res.outcome), e.res.reason, outcomeName(tt.want))
			}
		})
	}
}

// A server speaking first (a banner) is matched without Send.
func TestTCPBanner(t *testing.T) {
	srv := newTCPServer(t, nil, func(c net.Conn) {
		c.Write([]byte("220 ready\r\n"))
		io.Copy(io.Discard, c)
	})
	h := lb.NewHost(srv.addr(), 1)
	cfg := fast(tcpCheck(TCPCheck{Receive: [][]byte{[]byte("220")}}))
	cfg.ReuseConnection = boolPtr(false)
	_, rec := start(t, []Config{cfg}, Options{}, h)
	if e := rec.waitN(t, h, 1)[0]; e.res.outcome != passed {
		t.Fatalf("banner check: %s (%s)", outcomeName(e.res.outcome), e.res.reason)
	}
}

func TestTCPConnectionReuse(t *testing.T) {
	for _, tt := range []struct {
		name  string
		reuse *bool
		want  func(conns int64) bool
	}{
		{"default reuses", nil, func(n int64) bool { return n == 1 }},
		{"off", boolPtr(false), func(n int64) bool { return n >= 4 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := newTCPServer(t, nil, echo)
			h := lb.NewHost(srv.addr(), 1)
			cfg := fast(tcpCheck(TCPCheck{Send: []byte("hc"), Receive: [][]byte{[]byte("hc")}}))
			cfg.ReuseConnection = tt.reuse
			c, rec := start(t, []Config{cfg}, Options{}, h)
			evs := rec.waitN(t, h, 4)
			c.Close()
			for _, e := range evs {
				if e.res.outcome != passed {
					t.Fatalf("a check failed: %s", describe(evs))
				}
			}
			if n := srv.conns.Load(); !tt.want(n) {
				t.Errorf("%d connections for %d checks", n, len(rec.events(h)))
			}
		})
	}
}

// TCP checks run over the cluster's TLS, as Envoy's run over its transport
// socket.
func TestTCPOverTLS(t *testing.T) {
	cert, clientTLS := testCert(t)
	srv := newTCPServer(t, &cert, echo)
	h := lb.NewHost(srv.addr(), 1)
	_, rec := start(t, []Config{fast(tcpCheck(TCPCheck{Send: []byte("hello"), Receive: [][]byte{[]byte("hello")}}))}, Options{TLS: clientTLS}, h)
	if e := rec.waitN(t, h, 1)[0]; e.res.outcome != passed {
		t.Fatalf("TCP over TLS: %s (%s)", outcomeName(e.res.outcome), e.res.reason)
	}
	// A failed handshake is a network failure, connect-only included.
	h2 := lb.NewHost(srv.addr(), 1)
	_, rec = start(t, []Config{fast(tcpCheck(TCPCheck{}))}, Options{TLS: &tls.Config{}}, h2)
	if e := rec.waitN(t, h2, 1)[0]; e.res.outcome != network || !strings.Contains(e.res.reason, "TLS handshake") {
		t.Fatalf("untrusted TLS: %s (%s)", outcomeName(e.res.outcome), e.res.reason)
	}
}

// faultyConn fails its writes or reads with a non-timeout error.
type faultyConn struct {
	net.Conn
	failWrite, failRead bool
}

var errFault = errors.New("injected fault")

func (c faultyConn) Write(p []byte) (int, error) {
	if c.failWrite {
		return 0, errFault
	}
	return c.Conn.Write(p)
}

func (c faultyConn) Read(p []byte) (int, error) {
	if c.failRead {
		return 0, errFault
	}
	return c.Conn.Read(p)
}

func TestTCPIOErrors(t *testing.T) {
	srv := newTCPServer(t, nil, echo)
	for _, tt := range []struct {
		name       string
		conn       func(net.Conn) net.Conn
		wantReason string
	}{
		{"write", func(c net.Conn) net.Conn { return faultyConn{Conn: c, failWrite: true} }, "writing: injected fault"},
		{"read", func(c net.Conn) net.Conn { return faultyConn{Conn: c, failRead: true} }, "reading: injected fault"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
				var d net.Dialer
				c, err := d.DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return tt.conn(c), nil
			}
			h := lb.NewHost(srv.addr(), 1)
			_, rec := start(t, []Config{fast(tcpCheck(TCPCheck{Send: []byte("x"), Receive: [][]byte{[]byte("x")}}))}, Options{Dial: dial}, h)
			if e := rec.waitN(t, h, 1)[0]; e.res.outcome != network || e.res.reason != tt.wantReason {
				t.Fatalf("outcome %s (%s), want network (%s)", outcomeName(e.res.outcome), e.res.reason, tt.wantReason)
			}
		})
	}
}

// A response that grows past maxTCPResponse without a match fails before
// the timeout.
func TestTCPResponseTooLong(t *testing.T) {
	srv := newTCPServer(t, nil, func(c net.Conn) {
		junk := bytes.Repeat([]byte("z"), 4096)
		for {
			if _, err := c.Write(junk); err != nil {
				return
			}
		}
	})
	h := lb.NewHost(srv.addr(), 1)
	cfg := fast(tcpCheck(TCPCheck{Receive: [][]byte{[]byte("never")}}))
	cfg.Timeout = time.Minute
	_, rec := start(t, []Config{cfg}, Options{}, h)
	if e := rec.waitN(t, h, 1)[0]; e.res.outcome != network || !strings.Contains(e.res.reason, "no match in the first") {
		t.Fatalf("endless response: %s (%s)", outcomeName(e.res.outcome), e.res.reason)
	}
}
