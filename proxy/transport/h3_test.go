package transport

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

// h3Server serves h over HTTP/3 on loopback with a fresh self-signed
// certificate for 127.0.0.1; it returns the address and a client TLS
// config trusting it.
func h3Server(t *testing.T, h http.Handler) (string, *tls.Config) {
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
	l, err := h3.New(h3.Config{Name: "upstream", Address: "127.0.0.1:0", Handler: h,
		TLS: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go l.Serve(context.Background())
	t.Cleanup(func() { l.Close() })
	return l.Addr().String(), &tls.Config{RootCAs: pool}
}

func TestHTTP3Upstream(t *testing.T) {
	addr, clientTLS := h3Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "Grpc-Status")
		io.WriteString(w, r.Proto+" "+string(b))
		w.Header().Set("Grpc-Status", "0")
	}))
	cc := &connCounter{}
	tr := newTransport(t, Options{Protocol: HTTP3, TLS: clientTLS, Conns: cc})
	if tr.Scheme() != "https" || tr.Protocol().String() != "HTTP/3" || tr.For(nil) != nil {
		t.Fatalf("scheme %s protocol %s", tr.Scheme(), tr.Protocol())
	}
	for i := range 3 {
		req, _ := http.NewRequest("POST", "https://"+addr+"/", strings.NewReader("body"))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "HTTP/3.0 body" || resp.Trailer.Get("Grpc-Status") != "0" {
			t.Fatalf("request %d: %q trailers %v", i, b, resp.Trailer)
		}
	}
	if cc.opened.Load() != 1 {
		t.Fatalf("%d connections for 3 requests, want 1 reused", cc.opened.Load())
	}
	tr.Close()
	waitUntil(t, "connection closed", func() bool { return cc.active.Load() == 0 })
}

func TestHTTP3UpstreamErrors(t *testing.T) {
	if _, err := New(Options{Protocol: HTTP3}); err == nil {
		t.Fatal("HTTP/3 without TLS accepted")
	}

	// Nothing listens on the port: a connect failure (handshake timeout).
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	dead := pc.LocalAddr().String()
	pc.Close()
	cc := &connCounter{}
	tr := newTransport(t, Options{Protocol: HTTP3, TLS: &tls.Config{}, ConnectTimeout: 300 * time.Millisecond, Conns: cc})
	req, _ := http.NewRequest("GET", "https://"+dead+"/", nil)
	_, err := tr.RoundTrip(req)
	if KindOf(err) != KindConnect || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dead upstream: %v, want a connect failure that is not a route timeout", err)
	}
	if cc.failed.Load() != 1 {
		t.Fatalf("ConnectFailed called %d times", cc.failed.Load())
	}

	// An untrusted certificate: a connect failure in the TLS handshake
	// (a connect timeout a loaded machine cannot hit).
	addr, _ := h3Server(t, http.NotFoundHandler())
	tr = newTransport(t, Options{Protocol: HTTP3, TLS: &tls.Config{}, ConnectTimeout: 30 * time.Second})
	req, _ = http.NewRequest("GET", "https://"+addr+"/", nil)
	_, err = tr.RoundTrip(req)
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindConnect || !e.TLS {
		t.Fatalf("bad certificate: %v, want a TLS connect failure", err)
	}

	// The upstream resets the stream before answering: a reset.
	addr, clientTLS := h3Server(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }))
	tr = newTransport(t, Options{Protocol: HTTP3, TLS: clientTLS})
	req, _ = http.NewRequest("GET", "https://"+addr+"/", nil)
	if _, err = tr.RoundTrip(req); KindOf(err) != KindReset {
		t.Fatalf("reset stream: %v, want a reset", err)
	}

	// The route timeout ends the request: a timeout.
	addr, clientTLS = h3Server(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	tr = newTransport(t, Options{Protocol: HTTP3, TLS: clientTLS})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ = http.NewRequestWithContext(ctx, "GET", "https://"+addr+"/", nil)
	if _, err = tr.RoundTrip(req); KindOf(err) != KindTimeout {
		t.Fatalf("route timeout: %v, want a timeout", err)
	}
}
