package targets

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/loadgen"
	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWriteMeshCerts(t *testing.T) {
	dir := t.TempDir()
	mc, err := WriteMeshCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, mc.CAFile)
	if !ca.IsCA || len(ca.URIs) != 1 || ca.URIs[0].String() != "spiffe://"+MeshTrustDomain {
		t.Errorf("CA: IsCA %v, URIs %v", ca.IsCA, ca.URIs)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, l := range []MeshLeaf{mc.Client, mc.Server} {
		c := readCert(t, l.CertFile)
		if len(c.URIs) != 1 || c.URIs[0].String() != l.SpiffeID || l.SpiffeID != MeshSpiffeID(l.Service) {
			t.Errorf("%s: URIs %v, SPIFFE ID %s", l.Service, c.URIs, l.SpiffeID)
		}
		if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
			t.Errorf("%s: key %T, want ECDSA P-256", l.Service, c.PublicKey)
		}
		// A sidecar's leaf serves both directions.
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth} {
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("%s: %v", l.Service, err)
			}
		}
		if _, err := tls.LoadX509KeyPair(l.CertFile, l.KeyFile); err != nil {
			t.Errorf("%s: %v", l.Service, err)
		}
	}
	if mc.Client.SpiffeID == mc.Server.SpiffeID {
		t.Error("client and server share an identity")
	}
	if _, err := WriteMeshCerts(filepath.Join(dir, "missing")); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

// TestOutriggerMTLSBootstrapLoads checks that both sidecars' configs of the
// mTLS target load in the proxy's own loader, certificates included.
func TestOutriggerMTLSBootstrapLoads(t *testing.T) {
	dir := t.TempDir()
	mc, err := WriteMeshCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	server := Upstream{HTTP: "127.0.0.1:8081", GRPC: "127.0.0.1:8082"}
	client := Upstream{HTTP: "127.0.0.1:10001", GRPC: "127.0.0.1:10001"}
	for hop, tc := range map[int]struct {
		up   Upstream
		want []string
	}{
		1: {client, []string{"UpstreamTlsContext", "sni: \"" + MeshSNI(MeshServerService) + "\"", "exact: \"" + mc.Server.SpiffeID + "\"", "TLSv1_3", mc.Client.CertFile}},
		2: {server, []string{"DownstreamTlsContext", "require_client_certificate: true", "TLSv1_3", mc.Server.KeyFile, mc.CAFile}},
	} {
		conf, err := OutriggerBootstrapTLS(9901, 10000+hop, tc.up, meshHopTLS(mc, hop))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(conf, w) {
				t.Errorf("hop %d lacks %q", hop, w)
			}
		}
		if n := strings.Count(conf, "transport_socket:"); (hop == 1 && n != 2) || (hop == 2 && n != 1) {
			t.Errorf("hop %d has %d transport sockets", hop, n)
		}
		path := filepath.Join(dir, fmt.Sprintf("hop%d.yaml", hop))
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := bootstrap.Load(path, ""); err != nil {
			t.Fatalf("outrigger rejects hop %d of the mTLS target: %v\n%s", hop, err, conf)
		}
	}

	for name, tls := range map[string]HopTLS{
		"inbound without CA":       {Inbound: &MeshTLS{Leaf: mc.Server}},
		"inbound without leaf":     {Inbound: &MeshTLS{CAFile: mc.CAFile}},
		"outbound without SNI":     {Outbound: &MeshTLS{CAFile: mc.CAFile, Leaf: mc.Client, PeerSpiffeID: mc.Server.SpiffeID}},
		"outbound without peer":    {Outbound: &MeshTLS{CAFile: mc.CAFile, Leaf: mc.Client, SNI: "x"}},
		"outbound without leaf":    {Outbound: &MeshTLS{CAFile: mc.CAFile, PeerSpiffeID: "spiffe://x", SNI: "x"}},
		"bad upstream (valid TLS)": {Inbound: &MeshTLS{CAFile: mc.CAFile, Leaf: mc.Server}},
	} {
		up := server
		if strings.HasPrefix(name, "bad upstream") {
			up = Upstream{HTTP: "nohost", GRPC: "127.0.0.1:1"}
		}
		if _, err := OutriggerBootstrapTLS(1, 2, up, tls); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestStartOutriggerOptionErrors(t *testing.T) {
	for name, o := range map[string]OutriggerOptions{
		"mTLS on one hop":    {Binary: "/bin/false", Hops: 1, MTLS: true},
		"pprof beyond hops":  {Binary: "/bin/false", Hops: 2, PprofHop: 3, PprofAddr: "127.0.0.1:1"},
		"pprof on a hop < 1": {Binary: "/bin/false", Hops: 1, PprofHop: -1, PprofAddr: "127.0.0.1:1"},
	} {
		if tg, err := StartOutrigger(context.Background(), t.TempDir(), Upstream{HTTP: "127.0.0.1:1", GRPC: "127.0.0.1:1"}, o); err == nil {
			tg.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseCounter(t *testing.T) {
	stats := "outrigger_downstream_cx_total{listener=\"a\"}: 3\noutrigger_downstream_cx_total{listener=\"b\"}: 4\noutrigger_downstream_cx_total_other: 9\n"
	if n, err := parseCounter(strings.NewReader(stats), "outrigger_downstream_cx_total"); err != nil || n != 7 {
		t.Errorf("got %d, %v; want 7", n, err)
	}
	if n, err := parseCounter(strings.NewReader("x: 5\n"), "x"); err != nil || n != 5 {
		t.Errorf("unlabelled: %d, %v", n, err)
	}
	if _, err := parseCounter(strings.NewReader("y: 1\n"), "x"); err == nil {
		t.Error("missing counter accepted")
	}
	if _, err := parseCounter(strings.NewReader("x: many\n"), "x"); err == nil {
		t.Error("bad value accepted")
	}
}

func TestDownstreamConns(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path != "/stats":
			http.NotFound(w, r)
		case r.URL.Query().Get("filter") == "":
			http.Error(w, "no filter", http.StatusBadRequest)
		default:
			fmt.Fprint(w, "outrigger_downstream_cx_total{listener=\"bench\"}: 12\n")
		}
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if n, err := DownstreamConns(context.Background(), addr); err != nil || n != 12 {
		t.Errorf("got %d, %v", n, err)
	}
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer broken.Close()
	if _, err := DownstreamConns(context.Background(), strings.TrimPrefix(broken.URL, "http://")); err == nil {
		t.Error("503 accepted")
	}
	ports, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DownstreamConns(context.Background(), loopback(ports[0])); err == nil {
		t.Error("a closed port answered")
	}
}

// testMTLS sends each protocol through the mTLS target tg, checks that the
// sidecars reuse their connection, and that the server sidecar refuses a
// plaintext caller and a TLS caller without a client certificate.
func testMTLS(t *testing.T, tg *Target) {
	t.Helper()
	if len(tg.Admin) != 2 || len(tg.PIDs()) != 2 {
		t.Fatalf("admin %v, pids %v", tg.Admin, tg.PIDs())
	}
	send := func() {
		for _, lt := range []loadgen.Target{
			{Protocol: loadgen.HTTP1, Addr: tg.Endpoints.HTTP1, Path: "/?size=10"},
			{Protocol: loadgen.H2C, Addr: tg.Endpoints.H2C, Path: "/?size=10"},
			{Protocol: loadgen.GRPC, Addr: tg.Endpoints.GRPC, ResponseSize: 10},
		} {
			sendThree(t, lt, tg.Name)
		}
	}
	send()
	first, err := DownstreamConns(context.Background(), tg.Admin[1])
	if err != nil {
		t.Fatal(err)
	}
	if first < 1 {
		t.Errorf("server sidecar accepted %d connections after traffic", first)
	}
	send()
	if again, err := DownstreamConns(context.Background(), tg.Admin[1]); err != nil || again != first {
		t.Errorf("server sidecar connections %d then %d (%v): the sidecars do not reuse their connections", first, again, err)
	}

	// The server sidecar's listener is the second socket address of hop2.yaml.
	conf, err := os.ReadFile(filepath.Join(filepath.Dir(tg.Procs[1].LogPath), "hop2.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ports := regexp.MustCompile(`port_value: (\d+)`).FindAllStringSubmatch(string(conf), -1)
	if len(ports) < 2 {
		t.Fatalf("no listener port in hop2.yaml")
	}
	server := "127.0.0.1:" + ports[1][1]
	raw, err := net.DialTimeout("tcp", server, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprint(raw, "GET /?size=10 HTTP/1.1\r\nHost: x\r\n\r\n")
	if line, err := bufio.NewReader(raw).ReadString('\n'); err == nil && strings.HasPrefix(line, "HTTP/") {
		t.Errorf("plaintext caller answered: %q", line)
	}

	caPEM, err := os.ReadFile(filepath.Join(filepath.Dir(tg.Procs[1].LogPath), "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	// The server's identity is checked (its SPIFFE ID, as the client
	// sidecar does); only the client certificate is missing.
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: time.Second}, "tcp", server, &tls.Config{
		ServerName: MeshSNI(MeshServerService), NextProtos: []string{"http/1.1"}, MinVersion: tls.VersionTLS13,
		InsecureSkipVerify: true, // the SAN is a URI: verified below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool}); err != nil {
				return err
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != MeshSpiffeID(MeshServerService) {
				return fmt.Errorf("server identity %v", leaf.URIs)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatalf("TLS to the server sidecar: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprint(c, "GET /?size=10 HTTP/1.1\r\nHost: x\r\n\r\n")
	// TLS 1.3: the server's refusal of a missing certificate arrives after
	// the client's side of the handshake ends, on the first read.
	if line, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		t.Errorf("caller without a client certificate answered: %q", line)
	}
}
