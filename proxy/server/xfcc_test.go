package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// meshCA issues SPIFFE leaves from one CA, the way Consul's Connect CA does.
type meshCA struct {
	t      *testing.T
	dir    string
	key    *ecdsa.PrivateKey
	cert   *x509.Certificate
	caFile string
	pool   *x509.CertPool
	serial int64
}

func newMeshCA(t *testing.T) *meshCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Mesh CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, _ := x509.ParseCertificate(der)
	ca := &meshCA{t: t, dir: t.TempDir(), key: key, cert: cert, pool: x509.NewCertPool(), serial: 1}
	ca.pool.AddCert(cert)
	ca.caFile = filepath.Join(ca.dir, "ca.crt")
	must(t, os.WriteFile(ca.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	return ca
}

// leaf issues a certificate for service with its SPIFFE ID as URI SAN,
// usable by both sides, and writes it as <service>.crt/.key.
func (ca *meshCA) leaf(service string) (certFile, keyFile string, c tls.Certificate, spiffe string) {
	t := ca.t
	ca.serial++
	spiffe = "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/" + service
	u, _ := url.Parse(spiffe)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.serial), Subject: pkix.Name{CommonName: service, Organization: []string{"Mesh, Inc"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{u}, DNSNames: []string{service + ".internal"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	must(t, err)
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	certFile, keyFile = filepath.Join(ca.dir, service+".crt"), filepath.Join(ca.dir, service+".key")
	must(t, os.WriteFile(certFile, certPEM, 0o600))
	must(t, os.WriteFile(keyFile, keyPEM, 0o600))
	c, err = tls.X509KeyPair(certPEM, keyPEM)
	must(t, err)
	return certFile, keyFile, c, spiffe
}

// mtlsTransport is a downstream TLS context asking for client
// certificates from the mesh CA.
func mtlsTransport(certFile, keyFile, caFile string) string {
	return fmt.Sprintf(`      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: %s
          common_tls_context:
            tls_certificates:
            - certificate_chain: {filename: %q}
              private_key: {filename: %q}
            validation_context:
              trusted_ca: {filename: %q}
`, "true", certFile, keyFile, caFile)
}

// x-forwarded-client-cert: what the app sees for each
// forward_client_cert_details mode, from a caller with a certificate and
// from one without; a client's own XFCC is never trusted unless the mode
// says so.
func TestForwardClientCert(t *testing.T) {
	ca := newMeshCA(t)
	srvCert, srvKey, _, srvID := ca.leaf("api")
	_, _, webCert, webID := ca.leaf("web")
	sum := sha256.Sum256(webCert.Leaf.Raw)
	hash := hex.EncodeToString(sum[:])

	seen := make(chan []string, 1)
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Values("X-Forwarded-Client-Cert")
	}))
	const spoof = "By=spiffe://evil;Hash=00;URI=spiffe://evil/svc/admin"
	for _, tc := range []struct {
		mode, details string
		optional      bool // the client may come without a certificate
		noCert        bool
		want          string // "" = header absent
	}{
		{mode: "SANITIZE", want: ""},
		{mode: "FORWARD_ONLY", want: spoof},
		{mode: "FORWARD_ONLY", optional: true, noCert: true, want: ""},
		{mode: "ALWAYS_FORWARD_ONLY", optional: true, noCert: true, want: spoof},
		{mode: "SANITIZE_SET", details: "{uri: true}", want: "By=" + srvID + ";Hash=" + hash + ";URI=" + webID},
		{mode: "SANITIZE_SET", optional: true, noCert: true, want: ""},
		{mode: "APPEND_FORWARD", details: "{subject: true, dns: true}",
			want: spoof + ",By=" + srvID + ";Hash=" + hash + `;Subject="CN=web,O=Mesh\, Inc";DNS=web.internal`},
	} {
		name := tc.mode + tc.details
		if tc.noCert {
			name += " without a client certificate"
		}
		t.Run(name, func(t *testing.T) {
			extra := "          forward_client_cert_details: " + tc.mode + "\n"
			if tc.details != "" {
				extra += "          set_current_client_cert_details: " + tc.details + "\n"
			}
			transport := mtlsTransport(srvCert, srvKey, ca.caFile)
			if tc.optional {
				transport = strings.Replace(transport, "require_client_certificate: true", "require_client_certificate: false", 1)
			}
			p := startProxy(t, bs{HCMExtra: extra, VirtualHosts: vhostAll("app", ""), Transport: transport,
				Clusters: staticCluster("app", "", up)}.String())
			cfg := &tls.Config{RootCAs: ca.pool, ServerName: "api.internal"}
			if !tc.noCert {
				cfg.Certificates = []tls.Certificate{webCert}
			}
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
			req := mustReq(t, "GET", "https://"+p.addr["ingress"]+"/")
			req.Header.Set("X-Forwarded-Client-Cert", spoof)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got := strings.Join(<-seen, ",")
			if got != tc.want {
				t.Errorf("XFCC upstream:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
