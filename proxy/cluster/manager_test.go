package cluster

import (
	"io"
	"net/http"
	"runtime"
	"testing"
	"time"
)

func TestUpdateKeepsState(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	m := newManager(t)
	update(t, m, Config{Name: "web", Endpoints: []Endpoint{{Address: a}}})
	c := m.Get("web")
	for i := 0; i < 3; i++ {
		if _, _, err := do(t, c, t.Context(), 1); err != nil {
			t.Fatal(err)
		}
	}
	hostA := c.Hosts()[0]

	// New weights and a new endpoint: same cluster, same host A with its
	// counters, same pool (no new connection to A).
	update(t, m, Config{Name: "web", Endpoints: []Endpoint{{Address: a, Weight: 3}, {Address: b}}})
	if m.Get("web") != c {
		t.Fatal("Update replaced a cluster whose name stayed")
	}
	if c.Hosts()[0] != hostA || hostA.Weight() != 3 || hostA.Stats.RqTotal.Load() != 3 {
		t.Fatalf("host A not kept: weight %d rq_total %d", hostA.Weight(), hostA.Stats.RqTotal.Load())
	}
	for i := 0; i < 8; i++ {
		if _, _, err := do(t, c, t.Context(), 1); err != nil {
			t.Fatal(err)
		}
	}
	if got := hostA.Stats.CxTotal.Load(); got != 1 {
		t.Fatalf("host A opened %d connections across the update, want 1", got)
	}
	if got := hostA.Stats.RqTotal.Load(); got != 3+6 {
		t.Fatalf("host A rq_total %d, want 9 (3 before, 6 of 8 at weight 3:1)", got)
	}

	// Removing and adding another cluster leaves this one alone.
	update(t, m, Config{Name: "web", Endpoints: []Endpoint{{Address: a, Weight: 3}, {Address: b}}},
		Config{Name: "other", Endpoints: []Endpoint{{Address: b}}})
	update(t, m, Config{Name: "web", Endpoints: []Endpoint{{Address: a, Weight: 3}, {Address: b}}})
	if m.Get("other") != nil || m.Get("web") != c {
		t.Fatal("cluster set wrong after add and remove")
	}
}

func TestTransportChangeLetsInFlightFinish(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	})
	srv := startServer(t, slow)
	m := newManager(t)
	update(t, m, Config{Name: "web", Endpoints: []Endpoint{{Address: srv}}})
	c := m.Get("web")
	h, _ := c.Pick(nil)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://x/slow", nil)
	resp, err := c.RoundTrip(req, h)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	<-started

	// A transport setting changes while the request streams its body.
	update(t, m, Config{Name: "web", ConnectTimeout: time.Second, Endpoints: []Endpoint{{Address: srv}}})
	if _, body, err := do(t, c, t.Context(), 1); err != nil || body != "done" {
		t.Fatalf("request on the new transport: %q, %v", body, err)
	}
	close(release)
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "done" {
		t.Fatalf("in-flight body %q, %v", b, err)
	}
	resp.Body.Close()
	if got := c.Stats().CxTotal.Load(); got != 2 {
		t.Fatalf("cx_total %d, want 2 (old and new transport)", got)
	}
	// The old transport closes its connection once its request is done.
	waitFor(t, "old connection closed", func() bool { return c.Stats().CxActive.Load() == 1 })
}

func TestCloseLeaksNoGoroutines(t *testing.T) {
	plain := backend(t, "plain")
	secure, tlsCfg := tlsBackend(t, "tls", nil)
	base := runtime.NumGoroutine()

	m := NewManager(testLogger(t))
	update(t, m,
		Config{Name: "h1", Endpoints: []Endpoint{{Address: plain}}},
		Config{Name: "h2c", Protocol: HTTP2, Endpoints: []Endpoint{{Address: plain}}},
		Config{Name: "h2", Protocol: HTTP2, TLS: tlsCfg, Endpoints: []Endpoint{{Address: secure}}},
		Config{Name: "dns", Discovery: StrictDNS, DNSRefreshRate: 10 * time.Millisecond, DNSFamily: DNSV4Only,
			Endpoints: []Endpoint{{Address: "localhost:1"}}},
	)
	if err := m.WaitReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"h1", "h2c", "h2"} {
		if _, _, err := do(t, m.Get(name), t.Context(), 1); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if runtime.NumGoroutine() <= base {
		t.Fatal("expected the manager to be running goroutines")
	}
	m.Close()
	if m.Get("h1") != nil {
		t.Fatal("Get after Close returned a cluster")
	}
	if err := m.Update(nil); err == nil {
		t.Fatal("Update after Close succeeded")
	}
	waitFor(t, "goroutines back to baseline", func() bool { return runtime.NumGoroutine() <= base })
}
