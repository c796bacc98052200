package secret

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// echoServer serves TLS with cfg on loopback: each connection echoes
// lines and, first, writes the peer's URI SAN line.
func echoServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				tc := c.(*tls.Conn)
				_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
				if err := tc.Handshake(); err != nil {
					return
				}
				cs := tc.ConnectionState()
				fmt.Fprintf(tc, "peer=%s\n", PeerURISAN(&cs))
				_, _ = io.Copy(tc, tc)
			}()
		}
	}()
	return ln.Addr().String()
}

// dial handshakes with cfg and reads the server's first line; TLS 1.3
// servers refuse a client certificate after the client's handshake
// completes, so the refusal shows on that read.
func dial(addr string, cfg *tls.Config) (*tls.Conn, string, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return nil, "", err
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		c.Close()
		return nil, "", err
	}
	return c, strings.TrimSpace(line), nil
}

func TestMutualTLSBySlots(t *testing.T) {
	ca, other := newCA(t, "ca"), newCA(t, "other")
	s := NewStore(Options{})
	serverCert := Key{SourceADS, "api-cert"}
	serverCA := Key{SourceADS, "roots"}
	s.Set(serverCert, &Secret{Certificate: ca.leaf(t, apiID)})
	s.Set(serverCA, &Secret{Validation: &Validation{Roots: ca.pool}})
	// The server takes web only; its SAN rule is static, its roots from SDS.
	onlyWeb := &Validation{SANs: []SANMatcher{{SANURI, StringMatcher{Value: webID}}}}
	base := &tls.Config{MinVersion: tls.VersionTLS13, MaxVersion: tls.VersionTLS13}
	srv := ServerConfig(base, Certs{Slots: []*Slot{s.Slot(serverCert)}},
		NewValidator(onlyWeb, s.Slot(serverCA), x509.ExtKeyUsageClientAuth), RequireClientCert)
	addr := echoServer(t, srv)

	clientCfg := func(cert *Secret, roots *x509.CertPool, san string) *tls.Config {
		cs := NewStore(Options{})
		cs.Set(Key{SourceADS, "c"}, cert)
		var sans []SANMatcher
		if san != "" {
			sans = []SANMatcher{{SANURI, StringMatcher{Value: san}}}
		}
		cs.Set(Key{SourceADS, "r"}, &Secret{Validation: &Validation{Roots: roots, SANs: sans}})
		var certs Certs
		if cert != nil {
			certs.Slots = []*Slot{cs.Slot(Key{SourceADS, "c"})}
		}
		return ClientConfig(&tls.Config{MinVersion: tls.VersionTLS13}, certs,
			NewValidator(nil, cs.Slot(Key{SourceADS, "r"}), x509.ExtKeyUsageServerAuth))
	}
	web := &Secret{Certificate: ca.leaf(t, webID)}
	for _, tt := range []struct {
		name    string
		cfg     *tls.Config
		wantErr string
	}{
		{"web with the right server", clientCfg(web, ca.pool, apiID), ""},
		{"server SAN mismatch", clientCfg(web, ca.pool, webID), "match none of"},
		{"server from an unknown CA", clientCfg(web, other.pool, ""), "unknown authority"},
		{"client of another CA", clientCfg(&Secret{Certificate: other.leaf(t, webID)}, ca.pool, apiID), "bad certificate"},
		{"client with the wrong SPIFFE ID", clientCfg(&Secret{Certificate: ca.leaf(t, apiID)}, ca.pool, apiID), "bad certificate"},
		{"no client certificate", clientCfg(nil, ca.pool, apiID), "certificate required"},
		{"client certificate secret missing", clientCfg(&Secret{}, ca.pool, apiID), "holds no tls_certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, line, err := dial(addr, tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				defer c.Close()
				if line != "peer="+webID {
					t.Fatalf("server saw %q", line)
				}
				if got := PeerURISAN(ptr(c.ConnectionState())); got != apiID {
					t.Fatalf("client saw server %q", got)
				}
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("connected, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestRotation: a new leaf, then a bundle of old and new roots, then the
// new root only, each for new handshakes; a connection made before keeps
// working throughout.
func TestRotation(t *testing.T) {
	oldCA, newCA := newCA(t, "old"), newCA(t, "new")
	s := NewStore(Options{})
	certK, rootsK := Key{SourceADS, "cert"}, Key{SourceADS, "roots"}
	s.Set(certK, &Secret{Certificate: oldCA.leaf(t, apiID)})
	s.Set(rootsK, &Secret{Validation: &Validation{Roots: oldCA.pool}})
	srv := ServerConfig(&tls.Config{MinVersion: tls.VersionTLS13}, Certs{Slots: []*Slot{s.Slot(certK)}},
		NewValidator(nil, s.Slot(rootsK), x509.ExtKeyUsageClientAuth), RequireClientCert)
	addr := echoServer(t, srv)

	cs := NewStore(Options{})
	cs.Set(certK, &Secret{Certificate: oldCA.leaf(t, webID)})
	cs.Set(rootsK, &Secret{Validation: &Validation{Roots: oldCA.pool}})
	client := ClientConfig(&tls.Config{MinVersion: tls.VersionTLS13}, Certs{Slots: []*Slot{cs.Slot(certK)}},
		NewValidator(nil, cs.Slot(rootsK), x509.ExtKeyUsageServerAuth))

	long, _, err := dial(addr, client)
	if err != nil {
		t.Fatal(err)
	}
	defer long.Close()
	ping := func(step string) {
		t.Helper()
		_ = long.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(long, "%s\n", step); err != nil {
			t.Fatalf("%s: long-lived write: %v", step, err)
		}
		line, err := bufio.NewReader(long).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != step {
			t.Fatalf("%s: long-lived read %q, %v", step, line, err)
		}
	}
	handshake := func(step string, wantIssuer string) {
		t.Helper()
		c, _, err := dial(addr, client)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		defer c.Close()
		if got := c.ConnectionState().PeerCertificates[0].Issuer.CommonName; got != wantIssuer {
			t.Fatalf("%s: server certificate issued by %q, want %q", step, got, wantIssuer)
		}
	}
	ping("start")
	handshake("start", "old")

	both := oldCA.pool.Clone()
	both.AddCert(newCA.cert)
	s.Set(rootsK, &Secret{Validation: &Validation{Roots: both}})
	cs.Set(rootsK, &Secret{Validation: &Validation{Roots: both}})
	handshake("bundle old+new", "old")
	s.Set(certK, &Secret{Certificate: newCA.leaf(t, apiID)})
	cs.Set(certK, &Secret{Certificate: newCA.leaf(t, webID)})
	handshake("new leaves", "new")
	ping("new leaves")
	s.Set(rootsK, &Secret{Validation: &Validation{Roots: newCA.pool}})
	cs.Set(rootsK, &Secret{Validation: &Validation{Roots: newCA.pool}})
	handshake("new root only", "new")
	ping("new root only")

	// A client still on the old leaf is refused now.
	stale := NewStore(Options{})
	stale.Set(certK, &Secret{Certificate: oldCA.leaf(t, webID)})
	old := ClientConfig(&tls.Config{MinVersion: tls.VersionTLS13}, Certs{Slots: []*Slot{stale.Slot(certK)}}, nil)
	if c, _, err := dial(addr, old); err == nil {
		c.Close()
		t.Fatal("a client certificate of the retired CA was accepted")
	}
}

func TestUnavailableSecrets(t *testing.T) {
	ca := newCA(t, "ca")
	s := NewStore(Options{})
	srv := ServerConfig(&tls.Config{}, Certs{Slots: []*Slot{s.Slot(Key{SourceADS, "later"})}}, nil, NoClientCert)
	addr := echoServer(t, srv)
	if c, _, err := dial(addr, &tls.Config{InsecureSkipVerify: true}); err == nil {
		c.Close()
		t.Fatal("served without a certificate")
	}
	s.Set(Key{SourceADS, "later"}, &Secret{Certificate: ca.leaf(t, apiID)})
	c, line, err := dial(addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("after the secret arrived: %v", err)
	}
	c.Close()
	if line != "peer=" {
		t.Fatalf("line %q", line)
	}

	// Validation secrets: missing, of the wrong kind, without roots.
	v := NewValidator(nil, s.Slot(Key{SourceADS, "roots"}), x509.ExtKeyUsageServerAuth)
	leaf := ca.leaf(t, apiID).Leaf
	for _, tt := range []struct {
		set     *Secret
		chain   []*x509.Certificate
		wantErr string
	}{
		{nil, []*x509.Certificate{leaf}, "not available yet"},
		{&Secret{Certificate: ca.leaf(t)}, []*x509.Certificate{leaf}, "holds no validation_context"},
		{&Secret{Validation: &Validation{}}, []*x509.Certificate{leaf}, "no trusted CA"},
		{&Secret{Validation: &Validation{Roots: ca.pool}}, nil, "no certificate"},
		{&Secret{Validation: &Validation{Roots: ca.pool}}, []*x509.Certificate{leaf}, ""},
	} {
		s.Set(Key{SourceADS, "roots"}, tt.set)
		err := v.Verify(tt.chain)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("Verify with %+v: %v, want %q", tt.set, err, tt.wantErr)
		}
	}
	var se *SANError
	v2 := NewValidator(&Validation{Roots: ca.pool, SANs: []SANMatcher{{SANDNS, StringMatcher{Value: "x"}}}}, nil, x509.ExtKeyUsageServerAuth)
	if err := v2.Verify([]*x509.Certificate{ca.leaf(t, webID, "a.example", "a@example.com", "10.1.1.1").Leaf}); !errors.As(err, &se) ||
		!strings.Contains(err.Error(), "URI:"+webID) || !strings.Contains(err.Error(), "IP:10.1.1.1") {
		t.Fatalf("SAN mismatch error: %v", err)
	}
}

func TestPeerURISAN(t *testing.T) {
	ca := newCA(t, "ca")
	for _, tt := range []struct {
		cs   *tls.ConnectionState
		want string
	}{
		{nil, ""},
		{&tls.ConnectionState{}, ""},
		{&tls.ConnectionState{PeerCertificates: []*x509.Certificate{ca.leaf(t, "dns.only").Leaf}}, ""},
		{&tls.ConnectionState{PeerCertificates: []*x509.Certificate{ca.leaf(t, webID, "dns.too").Leaf}}, webID},
	} {
		if got := PeerURISAN(tt.cs); got != tt.want {
			t.Errorf("PeerURISAN = %q, want %q", got, tt.want)
		}
	}
}
