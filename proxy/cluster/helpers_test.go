package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func testLogger(t *testing.T) hclog.Logger {
	t.Helper()
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Warn, Output: hclogWriter{t}})
}

type hclogWriter struct{ t *testing.T }

func (w hclogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newManager(t *testing.T, opts ...Option) *Manager {
	t.Helper()
	m := NewManager(testLogger(t), opts...)
	t.Cleanup(m.Close)
	return m
}

func update(t *testing.T, m *Manager, cfgs ...Config) {
	t.Helper()
	if err := m.Update(cfgs); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// backend starts an HTTP/1.1 + h2c server answering with its name and the
// protocol it saw.
func backend(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: nameHandler(name), Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func nameHandler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Trailer")
		io.WriteString(w, name+" "+r.Proto)
		w.Header().Set("X-Trailer", name)
	})
}

// tlsBackend starts an HTTPS server (ALPN h2 and http/1.1), returns its
// address and a config trusting its certificate (valid for example.com and
// 127.0.0.1), and reports each SNI it sees on sni.
func tlsBackend(t *testing.T, name string, sni chan<- string) (string, *tls.Config) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nameHandler(name))
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		select {
		case sni <- hello.ServerName:
		default:
		}
		return nil, nil
	}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return strings.TrimPrefix(srv.URL, "https://"), &tls.Config{RootCAs: pool}
}

// do picks a host and sends a GET through c, returning the body.
func do(t *testing.T, c *Cluster, ctx context.Context, protoMajor int) (*http.Response, string, error) {
	t.Helper()
	h, err := c.Pick(nil)
	if err != nil {
		return nil, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://placeholder/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if protoMajor == 2 {
		req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/2.0", 2, 0
	}
	resp, err := c.RoundTrip(req, h)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startServer serves h over HTTP/1.1 on loopback.
func startServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
