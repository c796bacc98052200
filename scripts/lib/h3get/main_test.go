package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// selfSigned returns a certificate for 127.0.0.1 and its PEM file.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "h3get test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, file
}

// TestRunGetsOverHTTP3 runs one GET against a real HTTP/3 server on
// loopback and checks what was sent and what is printed.
func TestRunGetsOverHTTP3(t *testing.T) {
	cert, caFile := selfSigned(t)
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 1)
	srv := &http3.Server{
		TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}}),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen <- r.Host + " " + r.Header.Get("Authorization") + " " + r.URL.Path
			http.Error(w, "no such user", http.StatusNotFound)
		}),
	}
	go func() { _ = srv.Serve(conn) }()
	t.Cleanup(func() { _ = srv.Close(); _ = conn.Close() })

	var out strings.Builder
	url := "https://" + conn.LocalAddr().String() + "/users/x"
	if err := run([]string{"-ca", caFile, "-token", "tok", "-host", "shop.demo", url}, &out); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "HTTP/3.0 404 (13 bytes)\n"; got != want {
		t.Errorf("printed %q, want %q", got, want)
	}
	if got, want := <-seen, "shop.demo Bearer tok /users/x"; got != want {
		t.Errorf("server saw %q, want %q", got, want)
	}
}

func TestRunErrors(t *testing.T) {
	_, caFile := selfSigned(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A UDP port that nothing answers on: bound here, never read.
	silent, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"https://127.0.0.1:1/"}, "usage"},
		{[]string{"-ca", filepath.Join(t.TempDir(), "missing.pem"), "https://127.0.0.1:1/"}, "no such file"},
		{[]string{"-ca", notPEM, "https://127.0.0.1:1/"}, "no PEM certificate"},
		{[]string{"-ca", caFile, "-timeout", "300ms", "https://" + silent.LocalAddr().String() + "/"}, "over HTTP/3"},
		{[]string{"-ca", caFile, "://bad"}, "missing protocol scheme"},
		{[]string{"-nope"}, "not defined"},
	} {
		err := run(tc.args, &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
