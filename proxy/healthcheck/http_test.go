package healthcheck

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// A status outside expected and retriable statuses fails the host at once,
// whatever unhealthy_threshold says; healthy_threshold successes bring it
// back.
func TestHTTPNonRetriableStatusFailsAtOnce(t *testing.T) {
	srv := newStatusServer(t, 200)
	h := lb.NewHost(srv.addr(), 1)
	cfg := fast(httpCheck(HTTPCheck{Path: "/healthz"}))
	cfg.UnhealthyThreshold = 5
	cfg.HealthyThreshold = 2
	_, rec := start(t, []Config{cfg}, Options{}, h)

	rec.waitFor(t, h, "healthy", lastHealthy)
	srv.status.Store(503)
	evs := rec.waitFor(t, h, "unhealthy", func(evs []event) bool { return len(evs) > 0 && !evs[len(evs)-1].healthy })
	last := evs[len(evs)-1]
	if last.res.outcome != failed || last.st.ConsecutiveFailures != 1 || last.res.reason != "HTTP status 503" {
		t.Fatalf("went unhealthy on %s after %d failures, want at once on the first 503", outcomeName(last.res.outcome), last.st.ConsecutiveFailures)
	}
	if h.HealthString() != "/failed_active_hc" {
		t.Errorf("HealthString = %q", h.HealthString())
	}

	n := len(evs)
	srv.status.Store(200)
	evs = rec.waitFor(t, h, "healthy again", func(evs []event) bool { return lastHealthy(evs) })
	recovered := evs[n:]
	// The flag clears on the second consecutive success, not the first.
	succ := 0
	for _, e := range recovered {
		if e.res.outcome == passed {
			succ++
		}
		if e.healthy && succ < 2 {
			t.Fatalf("healthy after %d successes, want healthy_threshold 2: %s", succ, describe(recovered))
		}
	}
	if !h.Available() {
		t.Error("host not available after recovery")
	}
}

// A retriable status counts towards unhealthy_threshold.
func TestHTTPRetriableStatusCountsToThreshold(t *testing.T) {
	srv := newStatusServer(t, 200)
	h := lb.NewHost(srv.addr(), 1)
	cfg := fast(httpCheck(HTTPCheck{Path: "/", RetriableStatuses: []StatusRange{{500, 600}}}))
	cfg.UnhealthyThreshold = 3
	_, rec := start(t, []Config{cfg}, Options{}, h)

	rec.waitFor(t, h, "healthy", lastHealthy)
	srv.status.Store(503)
	evs := rec.waitFor(t, h, "unhealthy", func(evs []event) bool { return !lastHealthy(evs) })
	fails := 0
	for _, e := range evs {
		if e.res.outcome == retriable {
			fails++
			if e.healthy != (fails < 3) {
				t.Fatalf("after %d retriable failures healthy=%v: %s", fails, e.healthy, describe(evs))
			}
		}
	}
	if fails != 3 {
		t.Fatalf("unhealthy after %d retriable failures, want 3", fails)
	}
}

func TestHTTPExpectedStatuses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if code == 302 {
			http.Redirect(w, r, "/200", http.StatusFound)
			return
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name      string
		status    int
		expected  []StatusRange
		retriable []StatusRange
		want      outcome
	}{
		{"default 200", 200, nil, nil, passed},
		{"default rejects 204", 204, nil, nil, failed},
		{"2xx range", 204, []StatusRange{{200, 300}}, nil, passed},
		{"half-open end", 300, []StatusRange{{200, 300}}, nil, failed},
		{"second range", 404, []StatusRange{{200, 201}, {404, 405}}, nil, passed},
		{"retriable", 503, nil, []StatusRange{{503, 504}}, retriable},
		{"expected wins over retriable", 200, nil, []StatusRange{{200, 600}}, passed},
		{"redirect not followed", 302, nil, nil, failed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := lb.NewHost(srv.Listener.Addr().String(), 1)
			cfg := fast(httpCheck(HTTPCheck{Path: "/" + strconv.Itoa(tt.status), ExpectedStatuses: tt.expected, RetriableStatuses: tt.retriable}))
			_, rec := start(t, []Config{cfg}, Options{}, h)
			if got := rec.waitN(t, h, 1)[0].res; got.outcome != tt.want {
				t.Fatalf("status %d: outcome %s (%s), want %s", tt.status, outcomeName(got.outcome), got.reason, outcomeName(tt.want))
			}
		})
	}
}

// The request is Envoy's: method, path with query, Host defaulting to the
// cluster's name, Envoy/HC user agent, added headers.
func TestHTTPRequest(t *testing.T) {
	type seen struct{ method, uri, host, ua, extra string }
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, seen{r.Method, r.RequestURI, r.Host, r.UserAgent(), strings.Join(r.Header.Values("X-Check"), ",")})
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	last := func() seen {
		mu.Lock()
		defer mu.Unlock()
		return got[len(got)-1]
	}

	h := lb.NewHost(addr, 1)
	cfg := fast(httpCheck(HTTPCheck{Path: "/health?deep=1", Method: "POST",
		RequestHeaders: []Header{{"X-Check", "a"}, {"X-Check", "b"}}}))
	_, rec := start(t, []Config{cfg}, Options{ClusterName: "backend"}, h)
	rec.waitN(t, h, 1)
	if s := last(); s != (seen{"POST", "/health?deep=1", "backend", "Envoy/HC", "a,b"}) {
		t.Errorf("request = %+v", s)
	}

	h2 := lb.NewHost(addr, 1)
	cfg = fast(httpCheck(HTTPCheck{Path: "/", Host: "health.internal", UserAgent: "outrigger-hc"}))
	_, rec = start(t, []Config{cfg}, Options{ClusterName: "backend"}, h2)
	rec.waitN(t, h2, 1)
	if s := last(); s.host != "health.internal" || s.ua != "outrigger-hc" || s.method != "GET" {
		t.Errorf("request = %+v, want host health.internal, user agent outrigger-hc, GET", s)
	}

	// Without a cluster name the address stands in.
	h3 := lb.NewHost(addr, 1)
	_, rec = start(t, []Config{fast(httpCheck(HTTPCheck{Path: "/"}))}, Options{}, h3)
	rec.waitN(t, h3, 1)
	if s := last(); s.host != addr {
		t.Errorf("Host = %q, want the address %q", s.host, addr)
	}
}

// A host that stops listening fails with network failures, which count
// towards unhealthy_threshold.
func TestHTTPHostStopsListening(t *testing.T) {
	srv := newStatusServer(t, 200)
	h := lb.NewHost(srv.addr(), 1)
	cfg := fast(httpCheck(HTTPCheck{Path: "/"}))
	cfg.UnhealthyThreshold = 2
	c, rec := start(t, []Config{cfg}, Options{}, h)
	rec.waitFor(t, h, "healthy", lastHealthy)
	srv.Close()
	evs := rec.waitFor(t, h, "unhealthy", func(evs []event) bool { return !lastHealthy(evs) })
	var netFails []event
	for _, e := range evs {
		if e.res.outcome == network {
			netFails = append(netFails, e)
		}
	}
	if len(netFails) != 2 || !netFails[0].healthy || netFails[1].healthy {
		t.Fatalf("want healthy after 1 network failure and unhealthy after 2: %s", describe(netFails))
	}
	if st := c.Stats(); st.NetworkFailure < 2 || st.Failure < st.NetworkFailure {
		t.Errorf("stats = %+v, want >= 2 network failures", st)
	}
	if st := c.Host(h); st.Healthy || st.LastFailure == "" || st.Checks[0].ConsecutiveFailures < 2 {
		t.Errorf("HostStatus = %+v", st)
	}
}

// A handler that hangs fails the check at Timeout, as a timeout.
func TestHTTPTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	h := lb.NewHost(srv.Listener.Addr().String(), 1)
	cfg := fast(httpCheck(HTTPCheck{Path: "/"}))
	cfg.Timeout = 100 * time.Millisecond
	t0 := time.Now()
	c, rec := start(t, []Config{cfg}, Options{}, h)
	ev := rec.waitN(t, h, 1)[0]
	if ev.res.outcome != timedOut || !strings.Contains(ev.res.reason, "100ms timeout") {
		t.Fatalf("outcome %s (%s), want a timeout", outcomeName(ev.res.outcome), ev.res.reason)
	}
	// Bounded by Timeout, not by the handler (which never returns on its own).
	if d := time.Since(t0); d > 5*time.Second {
		t.Errorf("the check took %v", d)
	}
	if st := c.Stats(); st.NetworkFailure != 1 || st.Failure != 1 {
		t.Errorf("stats = %+v, want the timeout counted as a network failure", st)
	}
}

func TestHTTP2Cleartext(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 2 {
			w.WriteHeader(505)
		}
	})
	srv := httptest.NewServer(h2c.NewHandler(handler, &http2.Server{}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	h := lb.NewHost(addr, 1)
	_, rec := start(t, []Config{fast(httpCheck(HTTPCheck{Path: "/", Protocol: HTTP2}))}, Options{}, h)
	if ev := rec.waitN(t, h, 1)[0]; ev.res.outcome != passed {
		t.Fatalf("h2c check: %s (%s)", outcomeName(ev.res.outcome), ev.res.reason)
	}
	// The same server over HTTP/1.1 answers 505: the protocol is the one asked for.
	h1 := lb.NewHost(addr, 1)
	_, rec = start(t, []Config{fast(httpCheck(HTTPCheck{Path: "/"}))}, Options{}, h1)
	if ev := rec.waitN(t, h1, 1)[0]; ev.res.reason != "HTTP status 505" {
		t.Fatalf("HTTP/1.1 check: %s (%s), want status 505", outcomeName(ev.res.outcome), ev.res.reason)
	}
}

func TestHTTPOverTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Proto", r.Proto)
		if r.TLS == nil || r.TLS.ServerName != "" {
			w.WriteHeader(500) // plaintext, or SNI sent for an IP host
			return
		}
		if r.URL.Path == "/h2" && r.ProtoMajor != 2 || r.URL.Path == "/h1" && r.ProtoMajor != 1 {
			w.WriteHeader(505)
		}
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted case's handshake error
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, clientTLS := testCert(t)
	// The cluster's config may carry NextProtos for its own protocol; the
	// check sets its own.
	clientTLS.NextProtos = []string{"h2", "http/1.1"}
	for _, tt := range []struct {
		path  string
		proto HTTPProtocol
	}{{"/h1", HTTP1}, {"/h2", HTTP2}} {
		t.Run(tt.proto.String(), func(t *testing.T) {
			h := lb.NewHost(srv.Listener.Addr().String(), 1)
			_, rec := start(t, []Config{fast(httpCheck(HTTPCheck{Path: tt.path, Protocol: tt.proto}))}, Options{TLS: clientTLS}, h)
			if ev := rec.waitN(t, h, 1)[0]; ev.res.outcome != passed {
				t.Fatalf("check over TLS: %s (%s)", outcomeName(ev.res.outcome), ev.res.reason)
			}
		})
	}
	// An untrusted server certificate is a network failure.
	h := lb.NewHost(srv.Listener.Addr().String(), 1)
	_, rec := start(t, []Config{fast(httpCheck(HTTPCheck{Path: "/h1"}))}, Options{TLS: &tls.Config{}}, h)
	if ev := rec.waitN(t, h, 1)[0]; ev.res.outcome != network || !strings.Contains(ev.res.reason, "certificate") {
		t.Fatalf("untrusted certificate: %s (%s), want a network failure", outcomeName(ev.res.outcome), ev.res.reason)
	}
}

// ReuseConnection (the default) keeps one connection; off, every check
// opens its own.
func TestHTTPConnectionReuse(t *testing.T) {
	for _, tt := range []struct {
		name  string
		reuse *bool
		want  func(conns int64) bool
	}{
		{"default reuses", nil, func(n int64) bool { return n == 1 }},
		{"off", boolPtr(false), func(n int64) bool { return n >= 4 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var conns atomic.Int64
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.Start()
			t.Cleanup(srv.Close)
			h := lb.NewHost(srv.Listener.Addr().String(), 1)
			cfg := fast(httpCheck(HTTPCheck{Path: "/"}))
			cfg.ReuseConnection = tt.reuse
			c, rec := start(t, []Config{cfg}, Options{}, h)
			rec.waitN(t, h, 4)
			c.Close()
			if n := conns.Load(); !tt.want(n) {
				t.Errorf("%d connections for %d checks", n, len(rec.events(h)))
			}
		})
	}
}

var errTestDial = errors.New("test dialer refuses")

// Options.Dial carries every connection; its error is a network failure.
func TestDialOption(t *testing.T) {
	srv := newStatusServer(t, 200)
	var dials atomic.Int64
	fail := atomic.Bool{}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		if fail.Load() {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errTestDial}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	h := lb.NewHost(srv.addr(), 1)
	cfg := fast(httpCheck(HTTPCheck{Path: "/"}))
	cfg.ReuseConnection = boolPtr(false)
	_, rec := start(t, []Config{cfg}, Options{Dial: dial}, h)
	rec.waitFor(t, h, "healthy", lastHealthy)
	if dials.Load() == 0 {
		t.Fatal("Options.Dial not used")
	}
	fail.Store(true)
	evs := rec.waitFor(t, h, "a dial failure", func(evs []event) bool {
		return len(evs) > 0 && strings.Contains(evs[len(evs)-1].res.reason, errTestDial.Error())
	})
	if e := evs[len(evs)-1]; e.res.outcome != network {
		t.Errorf("dial error outcome %s, want network", outcomeName(e.res.outcome))
	}
}

// A response cut short is a network failure.
func TestHTTPTruncatedBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
		buf.Flush()
		conn.Close()
	}))
	t.Cleanup(srv.Close)
	h := lb.NewHost(srv.Listener.Addr().String(), 1)
	_, rec := start(t, []Config{fast(httpCheck(HTTPCheck{Path: "/"}))}, Options{}, h)
	if e := rec.waitN(t, h, 1)[0]; e.res.outcome != network || !strings.Contains(e.res.reason, "reading the response body") {
		t.Fatalf("truncated body: %s (%s), want a network failure", outcomeName(e.res.outcome), e.res.reason)
	}
}

// A request that cannot be built (Validate keeps such configs out) fails
// the check instead of panicking.
func TestHTTPUnbuildableRequest(t *testing.T) {
	cfg := fast(httpCheck(HTTPCheck{Path: "/", Method: "BAD METHOD"})).withDefaults()
	p := newHTTPProber(&cfg, "127.0.0.1:1", &Options{})
	defer p.close()
	if r := p.probe(context.Background()); r.outcome != failed || !strings.Contains(r.reason, "building the request") {
		t.Fatalf("probe = %+v", r)
	}
}
