package e2e

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
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/internal/consultest"
)

// leafRotationLimit bounds the wait for the re-signed leaves after a roots
// change: Consul's agent re-signs each at a random point of a 30 s window
// (not configurable outside Consul's own tests).
const leafRotationLimit = 45 * time.Second

// twoServices is a Consul dev agent, the control plane and two services
// with outrigger sidecars: web (http), whose sidecar has api as an
// upstream on bind, and api (http) answering "api".
type twoServices struct {
	agent   *consultest.Agent
	c       *api.Client
	cp      *controlPlane
	apiPort int    // api's sidecar public_listener
	url     string // web's upstream listener for api
	hc      *http.Client
}

func startTwoServices(t *testing.T) *twoServices {
	t.Helper()
	agent := consultest.Start(t)
	c := agent.Client
	writeEntry(t, c, &api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal, Config: map[string]any{"protocol": "http"}})
	cp := startControlPlane(t, c)
	s := &twoServices{agent: agent, c: c, cp: cp, apiPort: freePort(t), hc: &http.Client{Timeout: 5 * time.Second}}
	bind := freePort(t)
	// api answers its name, and on /xfcc the x-forwarded-client-cert it got.
	apiApp := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/xfcc" {
			_, _ = io.WriteString(w, r.Header.Get("X-Forwarded-Client-Cert"))
			return
		}
		_, _ = io.WriteString(w, "api")
	}))
	register(t, c, "api", "api-1", portOf(t, apiApp), nil, s.apiPort)
	register(t, c, "web", "web-1", freePort(t), nil, freePort(t), api.Upstream{DestinationName: "api", LocalBindPort: bind})
	sidecar(t, cp, "api-1-sidecar-proxy", "api", false)
	sidecar(t, cp, "web-1-sidecar-proxy", "web", true)
	s.url = fmt.Sprintf("http://127.0.0.1:%d/", bind)
	// First traffic waits for the sidecars' first configuration, including
	// their certificates over SDS.
	eventually(t, s.hc, s.url, 20*time.Second, []string{"api"})
	return s
}

// roots is the Connect CA's current trust bundle.
func (s *twoServices) roots(t *testing.T) (*x509.CertPool, *api.CARootList) {
	t.Helper()
	list, _, err := s.c.Agent().ConnectCARoots(nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, r := range list.Roots {
		pool.AppendCertsFromPEM([]byte(r.RootCertPEM))
	}
	return pool, list
}

// leaf is service's current leaf certificate from the agent.
func (s *twoServices) leaf(t *testing.T, service string) (*api.LeafCert, tls.Certificate) {
	t.Helper()
	l, _, err := s.c.Agent().ConnectCALeaf(service, nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair([]byte(l.CertPEM), []byte(l.PrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return l, cert
}

// meshClient dials api's sidecar directly as a mesh peer would: TLS 1.3,
// Consul's SNI, the server's chain checked against roots (no host name:
// mesh certificates carry a SPIFFE URI), presenting certs.
func meshClient(roots *x509.CertPool, sni string, certs []tls.Certificate, seen func(tls.ConnectionState)) *http.Client {
	cfg := &tls.Config{
		ServerName:         sni,
		Certificates:       certs,
		MinVersion:         tls.VersionTLS13,
		InsecureSkipVerify: true, // replaced by VerifyConnection: no host name check
		VerifyConnection: func(cs tls.ConnectionState) error {
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			if _, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
				return err
			}
			if seen != nil {
				seen(cs)
			}
			return nil
		},
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
}

// TestMeshMTLS: web's sidecar reaches api's over mTLS with the identities
// Consul's CA issued; at api's public port, a plaintext client and a client
// whose certificate comes from another CA are refused, and a client with
// web's own leaf is served by a server proving api's SPIFFE ID.
func TestMeshMTLS(t *testing.T) {
	s := startTwoServices(t)
	pool, list := s.roots(t)
	sni := "api.default.dc1.internal." + list.TrustDomain
	public := fmt.Sprintf("https://127.0.0.1:%d/", s.apiPort)

	// Plaintext at the inbound port.
	if got := tally(s.hc, fmt.Sprintf("http://127.0.0.1:%d/", s.apiPort), 3); got["api"] != 0 {
		t.Errorf("plaintext client at api's public port: %v, want refused", got)
	}
	// TLS without a client certificate.
	if got := tally(meshClient(pool, sni, nil, nil), public, 3); got["api"] != 0 {
		t.Errorf("client without a certificate: %v, want refused", got)
	}
	// A certificate with web's SPIFFE ID from another CA.
	spiffeWeb := fmt.Sprintf("spiffe://%s/ns/default/dc/dc1/svc/web", list.TrustDomain)
	if got := tally(meshClient(pool, sni, []tls.Certificate{foreignCert(t, spiffeWeb)}, nil), public, 3); got["api"] != 0 {
		t.Errorf("client with another CA's certificate: %v, want refused", got)
	}
	// web's own leaf: served, by api's identity.
	_, webCert := s.leaf(t, "web")
	var mu sync.Mutex
	var peer *x509.Certificate
	var version uint16
	seen := func(cs tls.ConnectionState) {
		mu.Lock()
		defer mu.Unlock()
		peer, version = cs.PeerCertificates[0], cs.Version
	}
	if got := tally(meshClient(pool, sni, []tls.Certificate{webCert}, seen), public, 3); got["api"] != 3 {
		t.Fatalf("client with web's leaf: %v, want 3 answers from api", got)
	}
	mu.Lock()
	defer mu.Unlock()
	want := fmt.Sprintf("spiffe://%s/ns/default/dc/dc1/svc/api", list.TrustDomain)
	if peer == nil || len(peer.URIs) != 1 || peer.URIs[0].String() != want {
		t.Errorf("api's sidecar presented %v, want a certificate for %s", peer, want)
	}
	if version != tls.VersionTLS13 {
		t.Errorf("TLS version %x, want 1.3", version)
	}

	// api's app sees web's identity in x-forwarded-client-cert, and what
	// web's app tried to pass off as one was dropped by web's sidecar.
	req, _ := http.NewRequest(http.MethodGet, s.url+"xfcc", nil)
	req.Header.Set("X-Forwarded-Client-Cert", "By=spiffe://evil/svc/x;URI=spiffe://"+list.TrustDomain+"/ns/default/dc/dc1/svc/admin")
	resp, err := s.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	xfcc := string(b)
	byAPI := "By=spiffe://" + list.TrustDomain + "/ns/default/dc/dc1/svc/api"
	if !strings.HasPrefix(xfcc, byAPI+";") || !strings.Contains(xfcc, ";URI="+spiffeWeb) || strings.Contains(xfcc, "evil") ||
		strings.Contains(xfcc, "svc/admin") || strings.Count(xfcc, "By=") != 1 {
		t.Errorf("api's app got x-forwarded-client-cert %q, want one element %s...;URI=%s", xfcc, byAPI, spiffeWeb)
	}
}

// foreignCert is a certificate for spiffeID from a CA of its own.
func foreignCert(t *testing.T, spiffeID string) tls.Certificate {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(spiffeID)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), URIs: []*url.URL{u},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	cert, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestCARotationKeepsTraffic: a new root through Consul's CA configuration
// endpoint, then the agent's re-signed leaves, reach both sidecars while a
// bounded load loop runs through them: not one request fails.
func TestCARotationKeepsTraffic(t *testing.T) {
	s := startTwoServices(t)
	_, before := s.roots(t)
	oldAPI, _ := s.leaf(t, "api")
	oldWeb, _ := s.leaf(t, "web")

	var sent, failed atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	halt := func() { cancel(); wg.Wait() }
	t.Cleanup(halt)
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl := &http.Client{Timeout: 5 * time.Second}
		// Bounded: at most one request every 5 ms, until halted.
		for ctx.Err() == nil {
			got := tally(cl, s.url, 1)
			sent.Add(1)
			if got["api"] != 1 {
				failed.Add(1)
				t.Logf("during the CA rotation at %s: %v", time.Now().Format("15:04:05.000"), got)
			}
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	start := rotateCA(t, s.c)
	// Both leaves re-signed by the agent, then served by the sidecars:
	// api's sidecar presents its new certificate at its public port.
	deadline := time.Now().Add(leafRotationLimit)
	var newAPI, newWeb *api.LeafCert
	for newAPI == nil || newWeb == nil {
		if time.Now().After(deadline) {
			t.Fatalf("leaves not re-signed %v after the rotation (api %v, web %v)", leafRotationLimit, newAPI != nil, newWeb != nil)
		}
		if l, _ := s.leaf(t, "api"); l.SerialNumber != oldAPI.SerialNumber {
			newAPI = l
		}
		if l, _ := s.leaf(t, "web"); l.SerialNumber != oldWeb.SerialNumber {
			newWeb = l
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("both leaves re-signed %v after the CA configuration changed", time.Since(start).Round(time.Millisecond))
	pool, after := s.roots(t)
	if after.ActiveRootID == before.ActiveRootID || len(after.Roots) < 2 {
		t.Fatalf("roots after the rotation: active %s of %d, want a new active root and the old one", after.ActiveRootID, len(after.Roots))
	}
	_, webCert := s.leaf(t, "web")
	sni := "api.default.dc1.internal." + after.TrustDomain
	served := waitServed(t, meshClient(pool, sni, []tls.Certificate{webCert}, nil), s.apiPort, newAPI.SerialNumber, followWithin)
	t.Logf("api's sidecar serves its re-signed leaf %v after the agent issued it", served.Round(time.Millisecond))
	// Traffic on with the new leaves, then stop.
	time.Sleep(500 * time.Millisecond)
	halt()
	if n := sent.Load(); n < 50 {
		t.Errorf("only %d requests sent during the rotation", n)
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed during the CA rotation", n, sent.Load())
	}
	t.Logf("%d requests through the rotation, %d failed", sent.Load(), failed.Load())
}

// waitServed waits until api's sidecar presents the certificate with
// serial (Consul's colon-separated hex) and returns how long that took.
func waitServed(t *testing.T, c *http.Client, port int, serial string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var last string
	for time.Since(start) < limit {
		var got *big.Int
		tr := c.Transport.(*http.Transport).Clone()
		cfg := tr.TLSClientConfig.Clone()
		verify := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			got = cs.PeerCertificates[0].SerialNumber
			return verify(cs)
		}
		tr.TLSClientConfig = cfg
		resp, err := (&http.Client{Timeout: c.Timeout, Transport: tr}).Get(fmt.Sprintf("https://127.0.0.1:%d/", port))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if got != nil {
			last = consulSerial(got)
			if last == serial {
				return time.Since(start)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("api's sidecar still presents serial %s %v after its leaf %s was issued", last, limit, serial)
	return 0
}

// consulSerial formats a serial number as Consul does ("0a:1b:...").
func consulSerial(n *big.Int) string {
	b := n.Bytes()
	out := make([]byte, 0, 3*len(b))
	for i, x := range b {
		if i > 0 {
			out = append(out, ':')
		}
		out = append(out, fmt.Sprintf("%02x", x)...)
	}
	return string(out)
}

// rotateCA gives Consul's built-in CA provider a new private key, so it
// generates a new root, cross-signs it with the old one and signs new
// leaves with it. It returns when Consul has accepted the change.
func rotateCA(t *testing.T, c *api.Client) time.Time {
	t.Helper()
	conf, _, err := c.Connect().CAGetConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	conf.Config["PrivateKey"] = string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	conf.Config["RootCert"] = ""
	if _, err := c.Connect().CASetConfig(conf, nil); err != nil {
		t.Fatalf("CA rotation: %v", err)
	}
	return time.Now()
}
