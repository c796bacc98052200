package backend

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quic-go/quic-go/http3"
)

// writeCert writes a throwaway self-signed certificate for 127.0.0.1.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestH3AndTCPSource(t *testing.T) {
	cert, key := writeCert(t)
	s := start(t, Config{PayloadSize: 10, H3Addr: "127.0.0.1:0", CertFile: cert, KeyFile: key, TCPSourceAddr: "127.0.0.1:0"})

	tr := &http3.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // #nosec G402 -- test against its own certificate
	defer tr.Close()
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + s.H3Addr() + "/?size=77")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(body) != 77 || resp.Proto != "HTTP/3.0" {
		t.Fatalf("status %d proto %s body %d bytes, err %v", resp.StatusCode, resp.Proto, len(body), err)
	}

	// Two connections to the source, each reads more than one write's worth;
	// one is left open for Close to end.
	for range 2 {
		conn, err := net.Dial("tcp", s.TCPSourceAddr())
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := io.ReadFull(conn, make([]byte, 1<<20)); err != nil || n != 1<<20 {
			t.Fatalf("read %d bytes: %v", n, err)
		}
		t.Cleanup(func() { conn.Close() })
	}
}

func TestNoExtras(t *testing.T) {
	s := start(t, Config{PayloadSize: 10})
	if s.H3Addr() != "" || s.TCPSourceAddr() != "" {
		t.Errorf("h3 %q tcp source %q, want none", s.H3Addr(), s.TCPSourceAddr())
	}
}

func TestExtrasStartErrors(t *testing.T) {
	cert, key := writeCert(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyUDP, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busyUDP.Close()
	for name, tc := range map[string]struct {
		cfg  Config
		want string
	}{
		"missing certificate": {Config{H3Addr: "127.0.0.1:0", CertFile: cert + ".missing", KeyFile: key}, "h3 certificate"},
		"h3 port taken":       {Config{H3Addr: busyUDP.LocalAddr().String(), CertFile: cert, KeyFile: key}, "listen h3"},
		"source port taken":   {Config{H3Addr: "127.0.0.1:0", CertFile: cert, KeyFile: key, TCPSourceAddr: busy.Addr().String()}, "listen tcp source"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.cfg.HTTPAddr, tc.cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
			s, err := Start(tc.cfg, hclog.NewNullLogger())
			if err == nil {
				s.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}
