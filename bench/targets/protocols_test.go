package targets

import (
	"context"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/bench/backend"
	"github.com/outrigger-mesh/outrigger/bench/loadgen"
	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
)

// fullBackend starts a backend serving every protocol the bench uses,
// HTTP/3 and the bulk TCP source included, with a fresh certificate.
func fullBackend(t *testing.T) Upstream {
	t.Helper()
	dir := t.TempDir()
	cert, key, err := WriteSelfSignedCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	be, err := backend.Start(backend.Config{
		HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", PayloadSize: 10,
		H3Addr: "127.0.0.1:0", CertFile: cert, KeyFile: key, TCPSourceAddr: "127.0.0.1:0",
	}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return Upstream{HTTP: be.HTTPAddr(), GRPC: be.GRPCAddr(), H3: be.H3Addr(), TCP: be.TCPSourceAddr(), CertFile: cert, KeyFile: key}
}

// plainBackend starts a backend with HTTP/1.1, h2c and gRPC only.
func plainBackend(t *testing.T) Upstream {
	t.Helper()
	be, err := backend.Start(backend.Config{HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", PayloadSize: 10}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = be.Close() })
	return Upstream{HTTP: be.HTTPAddr(), GRPC: be.GRPCAddr()}
}

// sendH3AndTCP sends three h3 GETs (after the UDP listener first answers)
// and reads three bulk chunks through whichever of the two the target serves.
func sendH3AndTCP(t *testing.T, tg *Target) {
	t.Helper()
	var lts []loadgen.Target
	if tg.Endpoints.H3 != "" {
		lts = append(lts, loadgen.Target{Protocol: loadgen.H3, Addr: tg.Endpoints.H3, Path: "/?size=10", Timeout: time.Second})
	}
	if tg.Endpoints.TCP != "" {
		lts = append(lts, loadgen.Target{Protocol: loadgen.TCPBulk, Addr: tg.Endpoints.TCP})
	}
	for _, lt := range lts {
		sendThree(t, lt, tg.Name)
	}
}

// sendThree sends three requests (or reads three chunks) to lt, after a
// first answer for HTTP/3 (a UDP listener cannot be probed by
// connecting), and wants all three to succeed.
func sendThree(t *testing.T, lt loadgen.Target, via string) {
	t.Helper()
	c, err := loadgen.NewClient(lt)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if lt.Protocol == loadgen.H3 {
		waitFirstOK(t, c)
	}
	res, err := loadgen.Run(context.Background(), c, loadgen.Options{Mode: loadgen.ClosedLoop, Duration: 5 * time.Second, MaxRequests: 3, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK != 3 {
		t.Errorf("%s via %s (%s): ok %d (%s), want 3", lt.Protocol, via, lt.Addr, res.OK, res.ErrorSummary())
	}
}

// outriggerBin is the built outrigger (bin/outrigger at the repository
// root, or $OUTRIGGER_BIN); the test is skipped when there is none.
func outriggerBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("OUTRIGGER_BIN")
	if bin == "" {
		bin, _ = filepath.Abs("../../bin/outrigger")
	}
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no outrigger binary at %s: build it with `go build -o bin/outrigger ./proxy/cmd/outrigger`", bin)
	}
	return bin
}

// waitFirstOK polls until one request succeeds: a UDP listener cannot be
// probed by connecting.
func waitFirstOK(t *testing.T, c loadgen.Client) {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.Do(context.Background())
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no successful request in 5 s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestWriteSelfSignedCert(t *testing.T) {
	cert, key, err := WriteSelfSignedCert(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := pair.Leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := pair.Leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if _, _, err := WriteSelfSignedCert(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing directory accepted")
	}
}

func TestFreeUDPPort(t *testing.T) {
	p, err := FreeUDPPort()
	if err != nil || p <= 0 {
		t.Fatalf("port %d, err %v", p, err)
	}
}

func TestOutriggerBootstrapExtraLoads(t *testing.T) {
	dir := t.TempDir()
	cert, key, err := WriteSelfSignedCert(dir)
	if err != nil {
		t.Fatal(err)
	}
	up := Upstream{HTTP: "127.0.0.1:8081", GRPC: "127.0.0.1:8082", H3: "127.0.0.1:8083", TCP: "127.0.0.1:8084", CertFile: cert, KeyFile: key}
	conf, err := OutriggerBootstrapExtra(9901, 10000, ExtraPorts{H3: 10001, TCP: 10002}, up)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"codec_type: HTTP3", "envoy.filters.network.tcp_proxy", "port_value: 8084"} {
		if !strings.Contains(conf, want) {
			t.Errorf("bootstrap lacks %q", want)
		}
	}
	path := filepath.Join(dir, "bootstrap.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := bootstrap.Load(path, ""); err != nil {
		t.Fatalf("outrigger rejects the bench bootstrap: %v\n%s", err, conf)
	}

	for name, tc := range map[string]struct {
		extra ExtraPorts
		up    Upstream
	}{
		"h3 without certificate": {ExtraPorts{H3: 1}, Upstream{HTTP: up.HTTP, GRPC: up.GRPC}},
		"tcp with bad upstream":  {ExtraPorts{TCP: 1}, Upstream{HTTP: up.HTTP, GRPC: up.GRPC, TCP: "nohost"}},
	} {
		if _, err := OutriggerBootstrapExtra(1, 2, tc.extra, tc.up); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
