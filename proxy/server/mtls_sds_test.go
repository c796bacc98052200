package server_test

import (
	"bufio"
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

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
	"github.com/outrigger-mesh/outrigger/proxy/secret"
	"github.com/outrigger-mesh/outrigger/proxy/server"
	"github.com/outrigger-mesh/outrigger/xds/xdstest"
)

// Consul-style SPIFFE IDs of the two services.
const (
	spiffeWeb = "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web"
	spiffeAPI = "spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/api"
	apiSNI    = "api.default.dc1.internal.11111111-2222-3333-4444-555555555555.consul"
)

// spiffeCA is a test Connect CA.
type spiffeCA struct {
	name string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

var spiffeSerial atomic.Int64

func newSpiffeCA(t *testing.T, name string) *spiffeCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(spiffeSerial.Add(1)), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		URIs: []*url.URL{mustURL(t, "spiffe://11111111-2222-3333-4444-555555555555.consul")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &spiffeCA{name: name, cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pool: pool}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	must(t, err)
	return u
}

// leaf issues a Consul-style leaf for a SPIFFE ID: PEM chain and key, and
// the tls.Certificate.
func (ca *spiffeCA) leaf(t *testing.T, id string) (certPEM, keyPEM []byte, cert tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(spiffeSerial.Add(1)), Subject: pkix.Name{CommonName: id[strings.LastIndexByte(id, '/')+1:]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs:        []*url.URL{mustURL(t, id)},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	must(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	must(t, err)
	return certPEM, keyPEM, cert
}

func leafSecret(t *testing.T, name string, ca *spiffeCA, id string) *tlsv3.Secret {
	c, k, _ := ca.leaf(t, id)
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inlineBytes(c), PrivateKey: inlineBytes(k),
	}}}
}

func rootsSecret(name string, cas ...*spiffeCA) *tlsv3.Secret {
	var bundle []byte
	for _, ca := range cas {
		bundle = append(bundle, ca.pem...)
	}
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: inlineBytes(bundle),
	}}}
}

// protoYAML decodes YAML into m as Envoy would (protojson).
func protoYAML(t *testing.T, y string, m proto.Message) {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	must(t, err)
	if err := protojson.Unmarshal(js, m); err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
}

// sdsRef is an SdsSecretConfig over ADS.
func sdsRef(name string) string {
	return fmt.Sprintf("{name: %s, sds_config: {ads: {}, resource_api_version: V3}}", name)
}

// inboundListener is the api sidecar's public listener: mTLS with its
// certificate and the trust bundle from SDS, TLS 1.3 at least, only web's
// SPIFFE ID, only for connections that name the api's SNI.
func inboundListener(t *testing.T, name string, port int, certSecret string) *listenerv3.Listener {
	l := &listenerv3.Listener{}
	protoYAML(t, fmt.Sprintf(`name: %s
address: {socket_address: {address: 127.0.0.1, port_value: %d}}
filter_chains:
- filter_chain_match: {server_names: [%q]}
  filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: inbound
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
      route_config: {name: local, virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: local-app, timeout: 0s}}]}]}
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
      require_client_certificate: true
      common_tls_context:
        tls_params: {tls_minimum_protocol_version: TLSv1_3}
        tls_certificate_sds_secret_configs: [%s]
        combined_validation_context:
          default_validation_context:
            match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: %q}}]
          validation_context_sds_secret_config: %s
`, name, port, apiSNI, sdsRef(certSecret), spiffeWeb, sdsRef("roots")), l)
	return l
}

// outboundListener is the web sidecar's plaintext listener for its app.
func outboundListener(t *testing.T, port int) *listenerv3.Listener {
	l := &listenerv3.Listener{}
	protoYAML(t, fmt.Sprintf(`name: outbound
address: {socket_address: {address: 127.0.0.1, port_value: %d}}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: outbound
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
      route_config: {name: out, virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, route: {cluster: api, timeout: 0s}}]}]}
`, port), l)
	return l
}

func plainCluster(t *testing.T, name, addr string, extra string) *clusterv3.Cluster {
	h, p := hostPort(t, addr)
	c := &clusterv3.Cluster{}
	protoYAML(t, fmt.Sprintf(`name: %s
type: STATIC
connect_timeout: 1s
load_assignment: {cluster_name: %s, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %q, port_value: %s}}}}]}]}
%s`, name, name, h, p, extra), c)
	return c
}

// apiCluster is web's cluster for api: HTTP/2 over mTLS with web's
// certificate, checking api's SPIFFE ID, with SNI; a connection serves 25
// requests, so that load makes new handshakes.
func apiCluster(t *testing.T, addr string) *clusterv3.Cluster {
	return plainCluster(t, "api", addr, fmt.Sprintf(`typed_extension_protocol_options:
  envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
    "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
    explicit_http_config: {http2_protocol_options: {}}
    # New connections, so new handshakes, all through the rotation.
    common_http_protocol_options: {max_requests_per_connection: 25}
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
    "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
    sni: %q
    common_tls_context:
      tls_params: {tls_minimum_protocol_version: TLSv1_3}
      tls_certificate_sds_secret_configs: [%s]
      combined_validation_context:
        default_validation_context:
          match_typed_subject_alt_names: [{san_type: URI, matcher: {suffix: /svc/api}}]
        validation_context_sds_secret_config: %s
`, apiSNI, sdsRef("web-cert"), sdsRef("roots")))
}

// startSidecar runs a proxy whose listeners, clusters and secrets all
// come over ADS from xs, as node, and waits until it is ready.
func startSidecar(t *testing.T, xs *xdstest.Server, node string, delta bool) *server.Server {
	t.Helper()
	api := "GRPC"
	if delta {
		api = "DELTA_GRPC"
	}
	h, p := hostPort(t, xs.Addr())
	b, err := bootstrap.Load("", fmt.Sprintf(`node: {id: %s, cluster: %s}
dynamic_resources:
  ads_config:
    api_type: %s
    transport_api_version: V3
    grpc_services: [{envoy_grpc: {cluster_name: xds}}]
  lds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 20s}
  cds_config: {ads: {}, resource_api_version: V3, initial_fetch_timeout: 20s}
static_resources:
  clusters:
  - name: xds
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: {http2_protocol_options: {}}
    load_assignment:
      cluster_name: xds
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: %q, port_value: %s}}}}]}]
`, node, node, api, h, p))
	must(t, err)
	srv, err := server.New(server.Options{
		Logger:       hclog.New(&hclog.LoggerOptions{Name: node, Level: hclog.Warn, Output: testWriter{t}}),
		Bootstrap:    b,
		DrainTimeout: time.Second,
	})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s: Run: %v", node, err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("%s: Run did not return", node)
		}
	})
	waitFor(t, 10*time.Second, node+" ready", srv.Ready)
	return srv
}

// waitSecretsACK waits until node has accepted version of the secrets.
func waitSecretsACK(t *testing.T, xs *xdstest.Server, node, version string) {
	t.Helper()
	if _, err := xs.WaitRequest(10*time.Second, func(r xdstest.Request) bool {
		return r.Node.GetId() == node && r.TypeURL == resourcev3.SecretType && r.IsACK() && r.ResponseVersion == version
	}); err != nil {
		t.Fatalf("%s did not ACK secrets version %s: %v", node, version, err)
	}
}

// mtlsGet GETs https://addr/ with cert (nil: none), the given roots and
// TLS version cap, and returns the body or the error.
func mtlsGet(addr string, cert *tls.Certificate, roots *x509.CertPool, maxVersion uint16) (string, error) {
	cfg := &tls.Config{ServerName: apiSNI, RootCAs: roots, MaxVersion: maxVersion,
		// The server's certificate names a SPIFFE ID, not the SNI.
		InsecureSkipVerify: roots == nil}
	if roots != nil {
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots})
			return err
		}
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), err
}

// servedBy returns the CommonName of the issuer and the serial of the
// certificate addr serves (the client's TLS 1.3 handshake ends before the
// server looks at the client's certificate).
func servedBy(t *testing.T, addr string) (string, string) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: apiSNI, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer c.Close()
	leaf := c.ConnectionState().PeerCertificates[0]
	return leaf.Issuer.CommonName, leaf.SerialNumber.String()
}

// acceptedConns is the server's downstream_cx_total of a listener.
func acceptedConns(t *testing.T, srv *server.Server, listener string) float64 {
	t.Helper()
	mfs, err := srv.Metrics().Gatherer().Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "outrigger_downstream_cx_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "listener" && l.GetValue() == listener {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// meshApp answers "api" on / and a tick every 20 ms on /stream until the
// client goes away.
func meshApp(t *testing.T) string {
	return backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/stream" {
			_, _ = io.WriteString(w, "api")
			return
		}
		rc := http.NewResponseController(w)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := io.WriteString(w, "tick\n"); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-tick.C:
			}
		}
	}))
}

// TestMTLSBetweenSidecarsOverSDS runs two sidecars, web and api, whose
// listeners, clusters and certificates come over ADS from one
// go-control-plane server, as outrigger-cp serves them: web's app calls
// api through web's outbound listener, which speaks HTTP/2 over mTLS to
// api's inbound listener. The inbound listener refuses plaintext, other
// CAs, other SPIFFE IDs and TLS 1.2; a full CA rotation under load loses
// no request and keeps a long-lived stream up; a bad secret is NACKed and
// the last good one stays; a listener whose secret has not arrived waits.
func TestMTLSBetweenSidecarsOverSDS(t *testing.T) {
	for _, delta := range []bool{false, true} {
		name := "sotw"
		if delta {
			name = "delta"
		}
		t.Run(name, func(t *testing.T) { testMTLSOverSDS(t, delta) })
	}
}

func testMTLSOverSDS(t *testing.T, delta bool) {
	xs := xdstest.Start(t)
	app := meshApp(t)
	caOld, caNew, rogue := newSpiffeCA(t, "ca-old"), newSpiffeCA(t, "ca-new"), newSpiffeCA(t, "rogue")
	inPort, outPort := freePort(t), freePort(t)
	inAddr := fmt.Sprintf("127.0.0.1:%d", inPort)
	outAddr := fmt.Sprintf("127.0.0.1:%d", outPort)

	apiResources := func(leafCA *spiffeCA, roots []*spiffeCA, extra ...types.Resource) []types.Resource {
		return append([]types.Resource{
			inboundListener(t, "inbound", inPort, "api-cert"),
			plainCluster(t, "local-app", app, ""),
			leafSecret(t, "api-cert", leafCA, spiffeAPI),
			rootsSecret("roots", roots...),
		}, extra...)
	}
	webResources := func(leafCA *spiffeCA, roots []*spiffeCA) []types.Resource {
		return []types.Resource{
			outboundListener(t, outPort),
			apiCluster(t, inAddr),
			leafSecret(t, "web-cert", leafCA, spiffeWeb),
			rootsSecret("roots", roots...),
		}
	}
	set := func(node, version string, rs []types.Resource) {
		t.Helper()
		must(t, xs.Set(node, version, rs...))
	}
	set("api-1", "1", apiResources(caOld, []*spiffeCA{caOld}))
	set("web-1", "1", webResources(caOld, []*spiffeCA{caOld}))
	api := startSidecar(t, xs, "api-1", delta)
	startSidecar(t, xs, "web-1", delta)
	if got := api.Listeners()["inbound"]; got != inAddr {
		t.Fatalf("inbound listener at %q", got)
	}

	client := h1Client()
	waitBody(t, client, "http://"+outAddr+"/", "api")

	// The inbound port by hand: only web's identity from the mesh CA,
	// over TLS 1.3, gets through.
	_, _, webCert := caOld.leaf(t, spiffeWeb)
	_, _, apiCert := caOld.leaf(t, spiffeAPI)
	_, _, rogueWeb := rogue.leaf(t, spiffeWeb)
	if got, err := mtlsGet(inAddr, &webCert, caOld.pool, 0); err != nil || got != "api" {
		t.Fatalf("web's certificate: %q, %v", got, err)
	}
	for _, tt := range []struct {
		name string
		cert *tls.Certificate
		max  uint16
	}{
		{"no client certificate", nil, 0},
		{"certificate from another CA", &rogueWeb, 0},
		{"wrong SPIFFE ID", &apiCert, 0},
		{"TLS 1.2", &webCert, tls.VersionTLS12},
	} {
		if got, err := mtlsGet(inAddr, tt.cert, nil, tt.max); err == nil {
			t.Errorf("%s: served %q, want a refused handshake", tt.name, got)
		} else {
			t.Logf("%s: refused: %v", tt.name, err)
		}
	}
	if got := body(client, "http://"+inAddr+"/"); !strings.HasPrefix(got, "error:") {
		t.Errorf("plaintext client: %q, want a closed connection", got)
	}

	// Load and a long-lived stream through the rotation.
	stream, err := client.Get("http://" + outAddr + "/stream")
	must(t, err)
	defer stream.Body.Close()
	var ticks atomic.Int64
	streamErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stream.Body)
		for sc.Scan() {
			ticks.Add(1)
		}
		streamErr <- sc.Err()
	}()
	stop := make(chan struct{})
	var ok, failed atomic.Int64
	var firstFailure atomic.Value
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for i := 0; i < 5000; i++ { // bounded
				select {
				case <-stop:
					return
				default:
				}
				if got := body(client, "http://"+outAddr+"/"); got == "api" {
					ok.Add(1)
				} else {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, got)
				}
			}
		})
	}
	step := func(version string, leafCA *spiffeCA, roots ...*spiffeCA) {
		t.Helper()
		set("api-1", version, apiResources(leafCA, roots))
		set("web-1", version, webResources(leafCA, roots))
		waitSecretsACK(t, xs, "api-1", version)
		waitSecretsACK(t, xs, "web-1", version)
		// More requests than a connection serves: web makes a new
		// handshake with the secrets of this step.
		before := ok.Load()
		waitFor(t, 10*time.Second, "requests after step "+version, func() bool { return ok.Load() > before+30 })
	}
	_, serial1 := servedBy(t, inAddr)
	step("2", caOld, caOld) // new leaves from the same CA
	issuer, serial2 := servedBy(t, inAddr)
	if issuer != "ca-old" || serial2 == serial1 {
		t.Fatalf("after a new leaf: issuer %s serial %s (was %s)", issuer, serial2, serial1)
	}
	step("3", caOld, caOld, caNew) // a bundle of old and new roots
	step("4", caNew, caOld, caNew) // leaves from the new CA
	if issuer, _ := servedBy(t, inAddr); issuer != "ca-new" {
		t.Fatalf("after leaves from the new CA: served by %s", issuer)
	}
	connsBefore := acceptedConns(t, api, "inbound")
	step("5", caNew, caNew) // the new root only
	if n := acceptedConns(t, api, "inbound"); n <= connsBefore {
		t.Fatalf("no new connection from web after the last step (%v accepted)", n)
	}
	ticksAt := ticks.Load()
	waitFor(t, 5*time.Second, "stream ticks after the rotation", func() bool { return ticks.Load() > ticksAt+3 })
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed during the rotation; first: %v", n, n+ok.Load(), firstFailure.Load())
	}
	select {
	case err := <-streamErr:
		t.Fatalf("the long-lived stream ended during the rotation: %v", err)
	default:
	}
	t.Logf("rotation: %d requests, 0 failed; stream %d ticks", ok.Load(), ticks.Load())

	// The old CA is out: its certificates are refused, the new one's pass.
	_, _, newWeb := caNew.leaf(t, spiffeWeb)
	if got, err := mtlsGet(inAddr, &webCert, nil, 0); err == nil {
		t.Fatalf("a certificate of the retired CA: served %q", got)
	}
	if got, err := mtlsGet(inAddr, &newWeb, caNew.pool, 0); err != nil || got != "api" {
		t.Fatalf("a certificate of the new CA: %q, %v", got, err)
	}

	// A secret with a bad PEM is NACKed with the reason; the last good
	// one stays in force.
	_, serialGood := servedBy(t, inAddr)
	bad := &tlsv3.Secret{Name: "api-cert", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: inlineBytes([]byte("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")),
		PrivateKey:       inlineBytes([]byte("nope")),
	}}}
	rs := apiResources(caNew, []*spiffeCA{caNew})
	rs[2] = bad
	set("api-1", "6", rs)
	nack, err := xs.WaitRequest(10*time.Second, func(r xdstest.Request) bool {
		return r.Node.GetId() == "api-1" && r.TypeURL == resourcev3.SecretType && r.IsNACK()
	})
	if err != nil {
		t.Fatalf("no NACK of the bad secret: %v", err)
	}
	if msg := nack.ErrorDetail.GetMessage(); !strings.Contains(msg, `secret "api-cert"`) || !strings.Contains(msg, "bad certificate or key") {
		t.Fatalf("NACK detail %q", msg)
	}
	if _, serial := servedBy(t, inAddr); serial != serialGood {
		t.Fatalf("the bad secret replaced the good one")
	}
	if got, err := mtlsGet(inAddr, &newWeb, caNew.pool, 0); err != nil || got != "api" {
		t.Fatalf("after the NACK: %q, %v", got, err)
	}

	// Warming: a new listener waits for its certificate.
	port2 := freePort(t)
	set("api-1", "7", apiResources(caNew, []*spiffeCA{caNew}, inboundListener(t, "inbound-2", port2, "late-cert")))
	if _, err := xs.WaitRequest(10*time.Second, func(r xdstest.Request) bool {
		names := r.ResourceNames
		if r.Delta {
			names = r.Subscribe
		}
		return r.Node.GetId() == "api-1" && r.TypeURL == resourcev3.SecretType && strings.Contains(strings.Join(names, ","), "late-cert")
	}); err != nil {
		t.Fatalf("the client did not ask for late-cert: %v", err)
	}
	waitSecretsACK(t, xs, "api-1", "7")
	if _, ok := api.Listeners()["inbound-2"]; ok {
		t.Fatal("inbound-2 serves before its secret arrived")
	}
	set("api-1", "8", apiResources(caNew, []*spiffeCA{caNew},
		inboundListener(t, "inbound-2", port2, "late-cert"), leafSecret(t, "late-cert", caNew, spiffeAPI)))
	waitFor(t, 10*time.Second, "inbound-2", func() bool { _, ok := api.Listeners()["inbound-2"]; return ok })
	if got, err := mtlsGet(fmt.Sprintf("127.0.0.1:%d", port2), &newWeb, caNew.pool, 0); err != nil || got != "api" {
		t.Fatalf("inbound-2 after its secret came: %q, %v", got, err)
	}
}

// PeerURISAN is what filters read the caller's identity with.
func TestPeerURISANOfAVerifiedClient(t *testing.T) {
	ca := newSpiffeCA(t, "ca")
	_, _, web := ca.leaf(t, spiffeWeb)
	cs := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{web.Leaf}}
	if got := secret.PeerURISAN(cs); got != spiffeWeb {
		t.Fatalf("PeerURISAN = %q", got)
	}
}

func inlineBytes(b []byte) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}}
}
