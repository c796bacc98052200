package healthcheck

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// waitTimeout bounds every wait for a condition; on a loaded 2-core box
// under -race a few checks at 20ms intervals take well under a second.
const waitTimeout = 10 * time.Second

func testLogger(t *testing.T) hclog.Logger {
	t.Helper()
	return hclog.New(&hclog.LoggerOptions{Name: t.Name(), Level: hclog.Info, Output: logWriter{t}})
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// event is one recorded result, with the host's flag right after it.
type event struct {
	host    *lb.Host
	cfg     int
	res     result
	st      CheckStatus
	healthy bool // lb.FailedActiveHC is clear
}

// recorder collects every result a Checker records.
type recorder struct {
	mu     sync.Mutex
	evs    []event
	notify chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) add(h *lb.Host, cfg int, res result, st CheckStatus) {
	r.mu.Lock()
	r.evs = append(r.evs, event{host: h, cfg: cfg, res: res, st: st, healthy: h.Flags()&lb.FailedActiveHC == 0})
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// events returns h's events so far (all hosts when h is nil).
func (r *recorder) events(h *lb.Host) []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event
	for _, e := range r.evs {
		if h == nil || e.host == h {
			out = append(out, e)
		}
	}
	return out
}

// waitFor waits until pred holds over h's events and returns them.
func (r *recorder) waitFor(t *testing.T, h *lb.Host, what string, pred func([]event) bool) []event {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		evs := r.events(h)
		if pred(evs) {
			return evs
		}
		select {
		case <-r.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("timed out waiting for %s; events: %s", what, describe(evs))
		}
	}
}

// waitN waits for at least n events of h.
func (r *recorder) waitN(t *testing.T, h *lb.Host, n int) []event {
	t.Helper()
	return r.waitFor(t, h, "results", func(evs []event) bool { return len(evs) >= n })
}

func describe(evs []event) string {
	var b strings.Builder
	for _, e := range evs {
		b.WriteString("\n  ")
		b.WriteString(outcomeName(e.res.outcome))
		if e.res.reason != "" {
			b.WriteString(" (" + e.res.reason + ")")
		}
		if e.healthy {
			b.WriteString(" -> healthy")
		} else {
			b.WriteString(" -> unhealthy")
		}
	}
	return b.String()
}

func outcomeName(o outcome) string {
	return [...]string{"passed", "failed", "retriable", "network", "timeout"}[o]
}

// start builds a Checker with a recorder hooked in, checks hosts and closes
// it at the end of the test.
func start(t *testing.T, cfgs []Config, opts Options, hosts ...*lb.Host) (*Checker, *recorder) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	c, err := New(cfgs, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	rec := newRecorder()
	c.onResult = rec.add
	t.Cleanup(c.Close)
	c.SetHosts(hosts)
	return c, rec
}

// fast is a Config checking every 20ms.
func fast(kind func(*Config)) Config {
	c := Config{
		Timeout:            2 * time.Second,
		Interval:           20 * time.Millisecond,
		UnhealthyThreshold: 2,
		HealthyThreshold:   2,
	}
	kind(&c)
	return c
}

func httpCheck(h HTTPCheck) func(*Config) { return func(c *Config) { c.HTTP = &h } }

func boolPtr(b bool) *bool { return &b }

// statusServer answers every request with the status it holds.
type statusServer struct {
	*httptest.Server
	status atomic.Int32
	reqs   atomic.Int64
}

func newStatusServer(t *testing.T, status int) *statusServer {
	t.Helper()
	s := &statusServer{}
	s.status.Store(int32(status))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.reqs.Add(1)
		w.WriteHeader(int(s.status.Load()))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *statusServer) addr() string { return s.Listener.Addr().String() }

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// testCert returns a certificate for 127.0.0.1 and a client TLS config
// trusting it, borrowed from httptest's TLS server.
func testCert(t *testing.T) (tls.Certificate, *tls.Config) {
	t.Helper()
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.StartTLS()
	cert := ts.TLS.Certificates[0]
	pool := x509.NewCertPool()
	pool.AddCert(ts.Certificate())
	ts.Close()
	return cert, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

func lastHealthy(evs []event) bool { return len(evs) > 0 && evs[len(evs)-1].healthy }
