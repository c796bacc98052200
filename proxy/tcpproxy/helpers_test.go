package tcpproxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
)

// testLogger writes to the test log.
func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}

// serveTCP accepts on a loopback port and runs handle on each connection
// (which it closes afterwards) until the test ends.
func serveTCP(t testing.TB, handle func(c *net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		wg.Wait()
	})
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
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().String()
}

// echo copies its input back and half-closes at the end of it.
func echo(c *net.TCPConn) {
	_, _ = io.Copy(c, c)
	_ = c.CloseWrite()
	_, _ = io.Copy(io.Discard, c)
}

// greeter writes its name, then echoes.
func greeter(name string) func(c *net.TCPConn) {
	return func(c *net.TCPConn) {
		_, _ = c.Write([]byte(name))
		echo(c)
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// clusters builds a cluster manager over static configs.
func clusters(t testing.TB, cfgs ...cluster.Config) *cluster.Manager {
	t.Helper()
	m := cluster.NewManager(testLogger(t))
	t.Cleanup(m.Close)
	for i := range cfgs {
		if cfgs[i].ConnectTimeout == 0 {
			cfgs[i].ConnectTimeout = 2 * time.Second
		}
	}
	if err := m.Update(cfgs); err != nil {
		t.Fatal(err)
	}
	return m
}

// static is a STATIC cluster over addrs.
func static(name string, addrs ...string) cluster.Config {
	c := cluster.Config{Name: name, Discovery: cluster.Static}
	for _, a := range addrs {
		c.Endpoints = append(c.Endpoints, cluster.Endpoint{Address: a})
	}
	return c
}

// front is a loopback listener that hands every connection to p, the way
// proxy/listener does, possibly wrapped (TLS, a peeked prefix).
type front struct {
	addr   string
	cancel context.CancelFunc
	served chan struct{} // one value per ServeConn that returned
}

func startFront(t testing.TB, p *Proxy, wrap func(c *net.TCPConn) net.Conn) *front {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &front{addr: ln.Addr().String(), cancel: cancel, served: make(chan struct{}, 1024)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		wg.Wait()
	})
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
				var dc net.Conn = c
				if wrap != nil {
					dc = wrap(c.(*net.TCPConn))
				}
				p.ServeConn(ctx, dc)
				f.served <- struct{}{}
			}()
		}
	}()
	return f
}

// dial connects to the front with a deadline for the whole test.
func (f *front) dial(t testing.TB) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

// waitServed waits for n ServeConn calls to return.
func (f *front) waitServed(t *testing.T, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		select {
		case <-f.served:
		case <-time.After(10 * time.Second):
			t.Fatalf("ServeConn %d of %d did not return", i+1, n)
		}
	}
}

func newProxy(t testing.TB, cfg Config, deps Deps) *Proxy {
	t.Helper()
	if deps.Logger == nil {
		deps.Logger = testLogger(t)
	}
	p, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

// roundTrip writes msg and reads len(msg) bytes back.
func roundTrip(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(buf)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkNoGoroutineLeak records the goroutine count now and, at cleanup
// (registered first so it runs last), waits for it to come back.
func checkNoGoroutineLeak(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// testTLS is a self-signed server config for 127.0.0.1 and the pool that
// trusts it.
func testTLS(t testing.TB) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "backend"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"backend"},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

// prefixed is a downstream connection whose first bytes were already read,
// as proxy/listener hands over a connection it peeked at.
type prefixed struct {
	*net.TCPConn
	prefix []byte
	raw    bool // Raw was called
}

func (p *prefixed) Raw() (net.Conn, []byte) {
	p.raw = true
	b := p.prefix
	p.prefix = nil
	return p.TCPConn, b
}
