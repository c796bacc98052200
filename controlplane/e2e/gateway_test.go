package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"golang.org/x/net/http2"

	"github.com/outrigger-mesh/outrigger/internal/consultest"
	"github.com/outrigger-mesh/outrigger/proxy/h3"
)

// issuer signs ES256 tokens and serves its key set.
type issuer struct {
	key *ecdsa.PrivateKey
	url string // the JWKS
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	coord := func(n *big.Int) string { return base64.RawURLEncoding.EncodeToString(n.FillBytes(make([]byte, 32))) }
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
		"x": coord(key.PublicKey.X), "y": coord(key.PublicKey.Y),
	}}})
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	return &issuer{key: key, url: "http://" + addr + "/jwks.json"}
}

// token is a signed JWT with claims.
func (is *issuer) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := enc(map[string]string{"alg": "ES256", "kid": "k1", "typ": "JWT"}) + "." + enc(claims)
	sum := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, is.key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// gatewayAnswer is one request through the gateway.
type gatewayAnswer struct {
	status int
	body   string
	proto  int
	header http.Header
}

func (a gatewayAnswer) String() string { return fmt.Sprintf("%d %q", a.status, a.body) }

func gatewayGet(t *testing.T, c *http.Client, url, host, token string) gatewayAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return gatewayAnswer{body: "error: " + err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return gatewayAnswer{status: resp.StatusCode, body: strings.TrimSpace(string(b)), proto: resp.ProtoMajor, header: resp.Header}
}

// waitGateway polls until ok accepts an answer.
func waitGateway(t *testing.T, limit time.Duration, what string, get func() gatewayAnswer, ok func(gatewayAnswer) bool) gatewayAnswer {
	t.Helper()
	start := time.Now()
	var last gatewayAnswer
	for deadline := start.Add(limit); time.Now().Before(deadline); time.Sleep(25 * time.Millisecond) {
		if last = get(); ok(last) {
			t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
			return last
		}
	}
	t.Fatalf("%s: not within %v; last answer %v", what, limit, last)
	return last
}

// TestIngressGateway: an outrigger configured as Consul's ingress gateway
// "edge" routes by Host to app's sidecar over mTLS with its own identity,
// checks JWTs against a provider whose keys it fetches from the test, speaks
// h2, obeys an intention edge -> app and rate-limits from the entry's meta.
func TestIngressGateway(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client
	cp := startControlPlane(t, c)
	is := newIssuer(t)

	appAddr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app user=%s auth=%q", r.Header.Get("X-User"), r.Header.Get("Authorization"))
	}))
	writeEntry(t, c, &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "app", Protocol: "http"})
	register(t, c, "app", "app-1", portOf(t, appAddr), nil, freePort(t))
	sidecar(t, cp, "app-1-sidecar-proxy", "app", false)

	writeEntry(t, c, &api.JWTProviderConfigEntry{Kind: api.JWTProvider, Name: "idp", Issuer: "https://idp.test",
		Audiences:     []string{"shop"},
		JSONWebKeySet: &api.JSONWebKeySet{Remote: &api.RemoteJWKS{URI: is.url, RequestTimeoutMs: 2000}}})
	gwPort := freePort(t)
	entry := &api.IngressGatewayConfigEntry{Kind: api.IngressGateway, Name: "edge",
		Meta: map[string]string{"outrigger.io/jwt-providers": "idp", "outrigger.io/jwt-claim-headers": "x-user=sub"},
		Listeners: []api.IngressListener{{Port: gwPort, Protocol: "http",
			Services: []api.IngressService{{Name: "app", Hosts: []string{"app.shop.test"}}}}}}
	writeEntry(t, c, entry)
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		Kind: api.ServiceKindIngressGateway, Name: "edge", ID: "edge-1", Address: "127.0.0.1", Port: freePort(t),
	}); err != nil {
		t.Fatal(err)
	}
	sidecar(t, cp, "edge-1", "edge", true)

	url := fmt.Sprintf("http://127.0.0.1:%d/orders", gwPort)
	hc := &http.Client{Timeout: 5 * time.Second}
	good := is.token(t, map[string]any{"iss": "https://idp.test", "aud": "shop", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	get := func(host, token string) func() gatewayAnswer {
		return func() gatewayAnswer { return gatewayGet(t, hc, url, host, token) }
	}

	// First traffic waits for both proxies' configuration and
	// certificates, and for the key set. With a valid token: app, with
	// the claim header and the token removed (forward is off).
	a := waitGateway(t, 20*time.Second, "gateway answers with a valid token", get("app.shop.test", good),
		func(a gatewayAnswer) bool { return a.status == http.StatusOK })
	if a.body != `app user=alice auth=""` {
		t.Errorf("with a valid token: %v", a)
	}
	// Without a token: 401.
	if a := gatewayGet(t, hc, url, "app.shop.test", ""); a.status != http.StatusUnauthorized || a.body != "Jwt is missing" {
		t.Errorf("without a token: %v, want 401 Jwt is missing", a)
	}
	// A client's own claim header does not pass.
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Host = "app.shop.test"
	req.Header.Set("Authorization", "Bearer "+good)
	req.Header.Set("X-User", "mallory")
	if resp, err := hc.Do(req); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != `app user=alice auth=""` {
			t.Errorf("with a forged x-user: %q", b)
		}
	}
	bad := is.token(t, map[string]any{"iss": "https://idp.test", "aud": "other", "sub": "bob", "exp": time.Now().Add(time.Hour).Unix()})
	if a := gatewayGet(t, hc, url, "app.shop.test", bad); a.status != http.StatusForbidden {
		t.Errorf("wrong audience: %v, want 403", a)
	}
	expired := is.token(t, map[string]any{"iss": "https://idp.test", "aud": "shop", "sub": "bob", "exp": time.Now().Add(-time.Hour).Unix()})
	if a := gatewayGet(t, hc, url, "app.shop.test", expired); a.status != http.StatusUnauthorized || a.body != "Jwt is expired" {
		t.Errorf("expired token: %v, want 401 Jwt is expired", a)
	}
	// Routing is by Host, with or without the port.
	if a := gatewayGet(t, hc, url, fmt.Sprintf("app.shop.test:%d", gwPort), good); a.status != http.StatusOK {
		t.Errorf("host with port: %v", a)
	}
	// Another host has no virtual host.
	if a := gatewayGet(t, hc, url, "other.test", good); a.status != http.StatusNotFound {
		t.Errorf("unknown host: %v, want 404", a)
	}

	// h2 (prior knowledge, as a TLS-terminating load balancer in front
	// would speak it) through the same listener.
	h2c := &http.Client{Timeout: 5 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}}
	if a := gatewayGet(t, h2c, url, "app.shop.test", good); a.status != http.StatusOK || a.proto != 2 {
		t.Errorf("h2: %v over HTTP/%d", a, a.proto)
	}

	// The gateway is "edge" to app's sidecar: a deny intention applies.
	writeEntry(t, c, &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: "app",
		Sources: []*api.SourceIntention{{Name: "edge", Action: api.IntentionActionDeny}}})
	waitGateway(t, followWithin, "deny edge -> app gives 403", get("app.shop.test", good),
		func(a gatewayAnswer) bool { return a.status == http.StatusForbidden })
	deleteEntry(t, c, api.ServiceIntentions, "app")
	waitGateway(t, followWithin, "intention deleted gives 200", get("app.shop.test", good),
		func(a gatewayAnswer) bool { return a.status == http.StatusOK })

	// A local rate limit from the entry's meta: 3 requests an hour.
	entry.Meta["outrigger.io/rate-limit"] = "3/h"
	writeEntry(t, c, entry)
	waitGateway(t, followWithin, "rate limit in force", get("app.shop.test", good),
		func(a gatewayAnswer) bool {
			return a.header.Get("X-Ratelimit-Limit") == "3" || a.status == http.StatusTooManyRequests
		})
	var statuses []int
	for range 4 {
		statuses = append(statuses, gatewayGet(t, hc, url, "app.shop.test", good).status)
	}
	if statuses[3] != http.StatusTooManyRequests {
		t.Errorf("statuses after the limit took effect: %v, want 429 at the latest on the 4th", statuses)
	}
	if a := gatewayGet(t, hc, url, "app.shop.test", good); a.status != http.StatusTooManyRequests || a.body != "local_rate_limited" {
		t.Errorf("over the limit: %v, want 429 local_rate_limited", a)
	}

	if n := cp.metric("outrigger_cp_xds_nacks_total"); n != 0 {
		t.Errorf("%v NACKs: %+v", n, cp.srv.Status().LastNACKs)
	}
}

// selfSigned writes a certificate for host (and 127.0.0.1) and its key to
// dir, and returns their paths and a pool trusting it.
func selfSigned(t *testing.T, dir, host string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host},
		DNSNames: []string{host}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestIngressGatewayTLSAndHTTP3: a TLS listener with a certificate from
// files (named in the entry's meta) serves HTTP/1.1 and h2 by ALPN,
// advertises HTTP/3 in alt-svc, and its QUIC twin on the same port number
// serves HTTP/3 with the same routes.
func TestIngressGatewayTLSAndHTTP3(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client
	cp := startControlPlane(t, c)
	const host = "app.shop.test"
	certFile, keyFile, pool := selfSigned(t, t.TempDir(), host)

	appAddr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "app") }))
	writeEntry(t, c, &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "app", Protocol: "http"})
	register(t, c, "app", "app-1", portOf(t, appAddr), nil, freePort(t))
	sidecar(t, cp, "app-1-sidecar-proxy", "app", false)

	gwPort := freePort(t)
	writeEntry(t, c, &api.IngressGatewayConfigEntry{Kind: api.IngressGateway, Name: "edge",
		TLS: api.GatewayTLSConfig{Enabled: true},
		Meta: map[string]string{"outrigger.io/http3": "true",
			"outrigger.io/tls-cert-file": certFile, "outrigger.io/tls-key-file": keyFile},
		Listeners: []api.IngressListener{{Port: gwPort, Protocol: "http",
			Services: []api.IngressService{{Name: "app", Hosts: []string{host}}}}}})
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		Kind: api.ServiceKindIngressGateway, Name: "edge", ID: "edge-1", Address: "127.0.0.1", Port: freePort(t),
	}); err != nil {
		t.Fatal(err)
	}
	sidecar(t, cp, "edge-1", "edge", false)

	url := fmt.Sprintf("https://127.0.0.1:%d/", gwPort)
	tlsConf := &tls.Config{RootCAs: pool, ServerName: host}
	h1 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
	h2 := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}}
	a := waitGateway(t, 20*time.Second, "gateway answers over TLS", func() gatewayAnswer { return gatewayGet(t, h1, url, host, "") },
		func(a gatewayAnswer) bool { return a.status == http.StatusOK })
	if a.body != "app" || a.proto != 1 {
		t.Errorf("HTTP/1.1 over TLS: %v over HTTP/%d", a, a.proto)
	}
	want := fmt.Sprintf(`h3=":%d"; ma=86400`, gwPort)
	if got := a.header.Get("Alt-Svc"); got != want {
		t.Errorf("alt-svc %q, want %q", got, want)
	}
	if a := gatewayGet(t, h2, url, host, ""); a.status != http.StatusOK || a.proto != 2 {
		t.Errorf("h2 over TLS: %v over HTTP/%d", a, a.proto)
	}

	h3c, err := h3.NewClient(h3.ClientOptions{TLS: tlsConf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h3c.Close() })
	if a := gatewayGet(t, &http.Client{Timeout: 5 * time.Second, Transport: h3c}, url, host, ""); a.status != http.StatusOK || a.proto != 3 || a.body != "app" {
		t.Errorf("HTTP/3: %v over HTTP/%d", a, a.proto)
	}
	if n := cp.metric("outrigger_cp_xds_nacks_total"); n != 0 {
		t.Errorf("%v NACKs: %+v", n, cp.srv.Status().LastNACKs)
	}
}
