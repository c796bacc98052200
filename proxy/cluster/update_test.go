package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/healthcheck"
)

// TestHealthCheckChangeKeepsHealthyHosts: changing a cluster's health
// checks (here only the interval) must not take every host out of rotation
// until its first new check: traffic would fail over to a lower priority
// (or into panic) on every such update. Found in review.
func TestHealthCheckChangeKeepsHealthyHosts(t *testing.T) {
	slowHealth := func(name string) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/health" {
				time.Sleep(300 * time.Millisecond) // the new checker's first result is late
			}
			io.WriteString(w, name)
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return ln.Addr().String()
	}
	a, b := slowHealth("a"), slowHealth("b")
	hc := func(iv time.Duration) []healthcheck.Config {
		return []healthcheck.Config{{Timeout: 2 * time.Second, Interval: iv, UnhealthyThreshold: 2, HealthyThreshold: 1,
			HTTP: &healthcheck.HTTPCheck{Path: "/health"}}}
	}
	cfg := Config{Name: "c", Endpoints: []Endpoint{{Address: a, Priority: 0}, {Address: b, Priority: 1}}, HealthChecks: hc(5 * time.Second)}
	m := newManager(t)
	update(t, m, cfg)
	c := m.Get("c")
	deadline := time.Now().Add(5 * time.Second)
	for c.Hosts()[0].Flags() != 0 || c.Hosts()[1].Flags() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("hosts never healthy")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cfg2 := cfg
	cfg2.HealthChecks = hc(6 * time.Second)
	update(t, m, cfg2)
	for i := 0; i < 100; i++ {
		h, err := c.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		if h.Address == b {
			t.Fatalf("after a health-check interval change, a pick went to the priority-1 host (P0 host: %s)", c.Hosts()[0].HealthString())
		}
	}
}

// TestReconvertedMTLSKeepsTransport: an update that rebuilds an identical
// upstream TLS config with a VerifyConnection callback (every xDS push
// re-converts every cluster) keeps the cluster's transport and pools.
func TestReconvertedMTLSKeepsTransport(t *testing.T) {
	roots := x509.NewCertPool()
	mk := func() *tls.Config {
		return &tls.Config{ServerName: "x", RootCAs: roots, InsecureSkipVerify: true,
			VerifyConnection: func(tls.ConnectionState) error { return nil }}
	}
	cfg := Config{Name: "c", Endpoints: []Endpoint{{Address: "127.0.0.1:1"}}, TLS: mk(), TLSVerifyKey: "k"}
	m := newManager(t)
	update(t, m, cfg)
	c := m.Get("c")
	g := c.gen.Load()
	cfg2 := cfg
	cfg2.TLS = mk()
	update(t, m, cfg2)
	if c.gen.Load() != g {
		t.Fatal("an identical mTLS config rebuilt the transport")
	}
	cfg3 := cfg2
	cfg3.TLS = mk()
	cfg3.TLSVerifyKey = ""
	update(t, m, cfg3)
	if c.gen.Load() == g {
		t.Fatal("a callback without a key was taken as unchanged")
	}
}
