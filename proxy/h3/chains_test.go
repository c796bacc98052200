package h3_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/h3"
)

// namedTLS is a certificate for names signed by a fresh CA, and the pool
// that trusts the CA.
func namedTLS(t *testing.T, names ...string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: names, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}, pool
}

func TestChainsBySNI(t *testing.T) {
	aTLS, aPool := namedTLS(t, "a.test")
	wTLS, wPool := namedTLS(t, "*.wild.test")
	deepTLS, deepPool := namedTLS(t, "x.deep.wild.test")
	fbTLS, fbPool := namedTLS(t, "fallback.test", "other.test")
	cfg := h3.Config{Name: "q", Address: "127.0.0.1:0", Chains: []h3.Chain{
		{Name: "a", ServerNames: []string{"a.test"}, TLS: aTLS, Handler: text("A")},
		{Name: "wild", ServerNames: []string{"*.wild.test"}, TLS: wTLS, Handler: text("W")},
		{Name: "deep", ServerNames: []string{"*.deep.wild.test"}, TLS: deepTLS, Handler: text("D")},
		{Name: "fallback", TLS: fbTLS, Handler: text("F")},
	}}
	l := serve(t, cfg)
	for _, tc := range []struct {
		sni  string
		pool *x509.CertPool
		want string
	}{
		{"a.test", aPool, "A"},
		{"A.TEST", aPool, "A"},
		{"b.wild.test", wPool, "W"},
		{"x.deep.wild.test", deepPool, "D"}, // the longest wildcard wins
		{"other.test", fbPool, "F"},
	} {
		t.Run(tc.sni, func(t *testing.T) {
			c, err := h3.NewClient(h3.ClientOptions{TLS: &tls.Config{RootCAs: tc.pool, ServerName: tc.sni}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			body, _, err := get(t, c, l.Addr().String())
			if err != nil {
				t.Fatalf("GET with SNI %s: %v", tc.sni, err)
			}
			if body != tc.want+" HTTP/3.0" {
				t.Fatalf("SNI %s served by %q, want chain %s", tc.sni, body, tc.want)
			}
		})
	}

	// Without a fallback chain a name no chain takes fails the handshake.
	cfg.Chains = cfg.Chains[:3]
	if err := l.Update(cfg); err != nil {
		t.Fatal(err)
	}
	c, _ := h3.NewClient(h3.ClientOptions{TLS: &tls.Config{RootCAs: fbPool, ServerName: "other.test"}, ConnectTimeout: 2 * time.Second})
	defer c.Close()
	_, _, err := get(t, c, l.Addr().String())
	var de *h3.DialError
	if !errors.As(err, &de) || !de.TLS {
		t.Fatalf("SNI no chain takes: %v, want a TLS handshake failure", err)
	}
}

func TestChainsWithEarlyData(t *testing.T) {
	// The chain picked at the handshake also serves 0-RTT requests, before
	// the handshake completes.
	aTLS, aPool := namedTLS(t, "a.test")
	bTLS, _ := namedTLS(t, "b.test")
	var served atomic.Int64
	l := serve(t, h3.Config{Name: "q", Address: "127.0.0.1:0", EarlyData: true, Chains: []h3.Chain{
		{Name: "b", ServerNames: []string{"b.test"}, TLS: bTLS, Handler: text("B")},
		{Name: "a", ServerNames: []string{"a.test"}, TLS: aTLS, Handler: counted(&served, text("A"))},
	}})
	cache := tls.NewLRUClientSessionCache(4)
	for i := range 2 {
		conn, cc := earlyClientSNI(t, l.Addr().String(), "a.test", cache, aPool)
		code, body := send(t, cc, "GET", "https://a.test/")
		if code != 200 || body != "A HTTP/3.0" {
			t.Fatalf("connection %d: %d %q, want chain a", i, code, body)
		}
		if i == 1 && !conn.ConnectionState().Used0RTT {
			t.Fatal("the second connection did not use 0-RTT")
		}
		conn.CloseWithError(0, "")
	}
	if served.Load() != 2 {
		t.Fatalf("chain a served %d requests, want 2", served.Load())
	}
}

func TestChainsValidate(t *testing.T) {
	tc, _ := namedTLS(t, "a.test")
	h := text("x")
	for _, tt := range []struct {
		name   string
		chains []h3.Chain
		want   string
	}{
		{"two fallbacks", []h3.Chain{{TLS: tc, Handler: h}, {TLS: tc, Handler: h}}, "a second chain without server_names"},
		{"duplicate name", []h3.Chain{{ServerNames: []string{"a.test"}, TLS: tc, Handler: h}, {ServerNames: []string{"A.test"}, TLS: tc, Handler: h}}, `"a.test" is also taken by chain 0`},
		{"bad wildcard", []h3.Chain{{ServerNames: []string{"a.*.test"}, TLS: tc, Handler: h}}, "want an exact name or *.suffix"},
		{"empty name", []h3.Chain{{ServerNames: []string{""}, TLS: tc, Handler: h}}, "want an exact name or *.suffix"},
		{"no handler", []h3.Chain{{Name: "n", TLS: tc}}, `chain 0 ("n"): no handler`},
		{"no certificate", []h3.Chain{{Name: "n", TLS: &tls.Config{}, Handler: h}}, "QUIC needs TLS with a certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := h3.Config{Name: "q", Address: "127.0.0.1:0", Chains: tt.chains}
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want %q", err, tt.want)
			}
			if _, err := h3.New(cfg, nil); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

// counted counts the requests h serves.
func counted(n *atomic.Int64, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h.ServeHTTP(w, r)
	})
}
