package snapshot

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestUpstreamVerifyChain checks Envoy's upstream semantics on a real
// handshake: the chain is verified against trusted_ca, the host name is not.
func TestUpstreamVerifyChain(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	trusted := x509.NewCertPool()
	trusted.AddCert(srv.Certificate())
	for _, tt := range []struct {
		name    string
		roots   *x509.CertPool
		wantErr string
	}{
		{"trusted CA, other host name", trusted, ""},
		{"untrusted", x509.NewCertPool(), "certificate signed by unknown authority"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &tls.Config{ServerName: "not-in-the-cert.internal", InsecureSkipVerify: true, VerifyConnection: verifyChain(tt.roots)}
			conn, err := tls.Dial("tcp", strings.TrimPrefix(srv.URL, "https://"), cfg)
			if err == nil {
				conn.Close()
			}
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
