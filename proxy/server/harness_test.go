package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/internal/freeport"
	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
	"github.com/outrigger-mesh/outrigger/proxy/server"
)

// proxy is a running server under test.
type proxy struct {
	srv    *server.Server
	addr   map[string]string
	admin  string
	cancel context.CancelFunc
	done   chan error
}

// startProxy runs a bootstrap (YAML with %s-free placeholders already
// filled) and stops it at the end of the test.
func startProxy(t *testing.T, yaml string) *proxy {
	t.Helper()
	b, err := bootstrap.Load("", yaml)
	if err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, yaml)
	}
	srv, err := server.New(server.Options{
		Logger:       hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}}),
		Bootstrap:    b,
		DrainTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &proxy{srv: srv, addr: srv.Listeners(), admin: srv.AdminAddr(), cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- srv.Run(ctx) }()
	t.Cleanup(func() { p.stop(t) })
	waitFor(t, 5*time.Second, "proxy ready", srv.Ready)
	return p
}

func (p *proxy) stop(t *testing.T) {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("Run did not return after cancel")
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
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

// freePort reserves nothing: it only finds a port that was free a moment
// ago, for configs that must name one before binding (admin).
// freeAddr is a loopback address to name before something binds it
// (below the ephemeral range: see internal/freeport).
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// bootstrapYAML renders a one-listener bootstrap: the listener on
// 127.0.0.1:0, the given HCM extras, routes and clusters (YAML fragments
// indented for their place).
type bs struct {
	HCMExtra     string // lines at HCM level, 14 spaces
	Filters      string // http_filters entries before the router, 10 spaces
	VirtualHosts string // lines under route_config.virtual_hosts, 16 spaces
	Clusters     string // lines under static_resources.clusters, 4 spaces
	Transport    string // listener filter chain transport_socket, 8 spaces
	Admin        bool
}

func (b bs) String() string {
	var sb strings.Builder
	if b.Admin {
		sb.WriteString("admin:\n  address:\n    socket_address: {address: 127.0.0.1, port_value: 0}\n")
	}
	sb.WriteString(`static_resources:
  listeners:
  - name: ingress
    address:
      socket_address: {address: 127.0.0.1, port_value: 0}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
`)
	sb.WriteString(b.HCMExtra)
	sb.WriteString("          http_filters:\n")
	sb.WriteString(b.Filters)
	sb.WriteString(`          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            name: local
            virtual_hosts:
`)
	sb.WriteString(b.VirtualHosts)
	sb.WriteString(b.Transport)
	sb.WriteString("  clusters:\n")
	sb.WriteString(b.Clusters)
	return sb.String()
}

// staticCluster renders a STATIC cluster over addresses ("ip:port" or
// "ip:port@weight"). extra lines are at cluster level (6 spaces).
func staticCluster(name string, extra string, addrs ...string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "  - name: %s\n    type: STATIC\n    connect_timeout: 1s\n", name)
	sb.WriteString(extra)
	fmt.Fprintf(&sb, "    load_assignment:\n      cluster_name: %s\n      endpoints:\n      - lb_endpoints:\n", name)
	for _, a := range addrs {
		w := ""
		if i := strings.IndexByte(a, '@'); i >= 0 {
			a, w = a[:i], a[i+1:]
		}
		h, p, _ := net.SplitHostPort(a)
		fmt.Fprintf(&sb, "        - endpoint:\n            address:\n              socket_address: {address: %q, port_value: %s}\n", h, p)
		if w != "" {
			fmt.Fprintf(&sb, "          load_balancing_weight: %s\n", w)
		}
	}
	return sb.String()
}

// h2cOptions makes a cluster speak h2c prior knowledge upstream.
const h2cOptions = `    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
`

// vhostAll routes everything under "/" to cluster.
func vhostAll(cluster string, routeExtra string) string {
	return fmt.Sprintf(`              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/"}
                  route:
                    cluster: %s
%s`, cluster, routeExtra)
}

// testCert is a self-signed CA and a leaf for names, written to dir.
type testCert struct {
	certFile, keyFile, caFile string
	pool                      *x509.CertPool
	tls                       tls.Certificate
}

func makeCert(t *testing.T, dir string, cn string, names ...string) *testCert {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn + " CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: names, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	c := &testCert{
		certFile: filepath.Join(dir, cn+".crt"), keyFile: filepath.Join(dir, cn+".key"), caFile: filepath.Join(dir, cn+"-ca.crt"),
		pool: x509.NewCertPool(),
	}
	c.pool.AddCert(ca)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	must(t, os.WriteFile(c.certFile, certPEM, 0o600))
	must(t, os.WriteFile(c.keyFile, keyPEM, 0o600))
	must(t, os.WriteFile(c.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	c.tls, err = tls.X509KeyPair(certPEM, keyPEM)
	must(t, err)
	return c
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// backend is an HTTP/1.1 + h2c test upstream on loopback.
func backend(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: h, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// h1Client is a keep-alive HTTP/1.1 client.
func h1Client() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}, Timeout: 30 * time.Second}
}

// h2cClient speaks h2c prior knowledge.
func h2cClient() *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}
