package h3_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/h3"
)

// testTLS is a self-signed certificate for 127.0.0.1 and the pool that
// trusts it.
func testTLS(t *testing.T) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
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

func serve(t *testing.T, cfg h3.Config) *h3.Listener {
	t.Helper()
	l, err := h3.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = l.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return after Close")
		}
	})
	return l
}

func text(s string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Done")
		io.WriteString(w, s+" "+r.Proto)
		w.Header().Set("X-Done", "yes")
	})
}

func get(t *testing.T, c *h3.Client, addr string) (string, http.Header, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/", nil)
	resp, err := c.RoundTrip(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.Trailer, err
}

func TestServeAndRoundTrip(t *testing.T) {
	srvTLS, pool := testTLS(t)
	l := serve(t, h3.Config{Name: "q", Address: "127.0.0.1:0", TLS: srvTLS, Handler: text("one")})
	c, err := h3.NewClient(h3.ClientOptions{TLS: &tls.Config{RootCAs: pool}, ConnectTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body, tr, err := get(t, c, l.Addr().String())
	if err != nil || body != "one HTTP/3.0" || tr.Get("X-Done") != "yes" {
		t.Fatalf("got %q trailers %v err %v", body, tr, err)
	}
	if st := l.Stats(); st.DownstreamCxTotal != 1 || st.DownstreamCxActive != 1 {
		t.Fatalf("stats %+v, want one connection open", st)
	}

	// Update reaches new connections; the open one keeps its handler.
	cfg := h3.Config{Name: "q", Address: "127.0.0.1:0", TLS: srvTLS, Handler: text("two")}
	if err := l.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if body, _, _ := get(t, c, l.Addr().String()); body != "one HTTP/3.0" {
		t.Fatalf("open connection after Update: %q", body)
	}
	c.CloseIdleConnections()
	c2, _ := h3.NewClient(h3.ClientOptions{TLS: &tls.Config{RootCAs: pool}})
	defer c2.Close()
	if body, _, _ := get(t, c2, l.Addr().String()); body != "two HTTP/3.0" {
		t.Fatalf("new connection after Update: %q", body)
	}
	cfg.EarlyData = true
	if err := l.Update(cfg); !errors.Is(err, h3.ErrRebind) {
		t.Fatalf("Update enabling 0-RTT: %v, want ErrRebind", err)
	}
}

func TestConfigErrors(t *testing.T) {
	srvTLS, _ := testTLS(t)
	for name, cfg := range map[string]h3.Config{
		"no name":    {Address: "127.0.0.1:0", TLS: srvTLS, Handler: text("x")},
		"no tls":     {Name: "q", Address: "127.0.0.1:0", Handler: text("x")},
		"no cert":    {Name: "q", Address: "127.0.0.1:0", TLS: &tls.Config{}, Handler: text("x")},
		"no handler": {Name: "q", Address: "127.0.0.1:0", TLS: srvTLS},
		"bad addr":   {Name: "q", Address: "127.0.0.1:99999", TLS: srvTLS, Handler: text("x")},
	} {
		if _, err := h3.New(cfg, nil); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := h3.NewClient(h3.ClientOptions{}); err == nil {
		t.Error("NewClient without TLS succeeded")
	}
}

func TestDialErrors(t *testing.T) {
	// Nothing listens: the handshake times out as a DialError.
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	dead := pc.LocalAddr().String()
	pc.Close()
	_, pool := testTLS(t)
	c, _ := h3.NewClient(h3.ClientOptions{TLS: &tls.Config{RootCAs: pool}, ConnectTimeout: 300 * time.Millisecond})
	defer c.Close()
	var de *h3.DialError
	if _, _, err := get(t, c, dead); !errors.As(err, &de) || de.TLS {
		t.Fatalf("dead port: %v, want a non-TLS DialError", err)
	}

	// An untrusted certificate fails the TLS part of the handshake.
	srvTLS, _ := testTLS(t)
	l := serve(t, h3.Config{Name: "q", Address: "127.0.0.1:0", TLS: srvTLS, Handler: text("x")})
	if _, _, err := get(t, c, l.Addr().String()); !errors.As(err, &de) || !de.TLS {
		t.Fatalf("bad certificate: %v, want a TLS DialError", err)
	}
}

func TestShutdownSendsGoawayAndWaits(t *testing.T) {
	srvTLS, pool := testTLS(t)
	release := make(chan struct{})
	started := make(chan struct{})
	l, err := h3.New(h3.Config{Name: "q", Address: "127.0.0.1:0", TLS: srvTLS, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "finished")
	})}, nil)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- l.Serve(context.Background()) }()
	c, _ := h3.NewClient(h3.ClientOptions{TLS: &tls.Config{RootCAs: pool}})
	defer c.Close()
	got := make(chan string, 1)
	go func() { b, _, err := get(t, c, l.Addr().String()); got <- b + errString(err) }()
	<-started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- l.Shutdown(ctx)
	}()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond): // still waiting, as it should
	}
	close(release)
	if b := <-got; b != "finished" {
		t.Fatalf("in-flight request: %q", b)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	// The socket is gone: a new client cannot connect.
	c2, _ := h3.NewClient(h3.ClientOptions{TLS: &tls.Config{RootCAs: pool}, ConnectTimeout: 300 * time.Millisecond})
	defer c2.Close()
	if _, _, err := get(t, c2, l.Addr().String()); err == nil {
		t.Fatal("request after Shutdown succeeded")
	}
}

func TestShutdownDeadlineClosesLeftovers(t *testing.T) {
	srvTLS, pool := testTLS(t)
	started := make(chan struct{})
	l := serve(t, h3.Config{Name: "q", Address: "127.0.0.1:0", TLS: srvTLS, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})})
	c, _ := h3.NewClient(h3.ClientOptions{TLS: &tls.Config{RootCAs: pool}})
	defer c.Close()
	got := make(chan error, 1)
	go func() { _, _, err := get(t, c, l.Addr().String()); got <- err }()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := l.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want the deadline", err)
	}
	if err := <-got; err == nil || strings.Contains(err.Error(), "finished") {
		t.Fatalf("stuck request ended with %v, want an error", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return " error: " + err.Error()
}
