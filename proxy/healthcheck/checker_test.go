package healthcheck

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// A new host is out of rotation from SetHosts on, before any check.
func TestNewHostFailedUntilFirstCheck(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	h := lb.NewHost(srv.Listener.Addr().String(), 1)
	c, rec := start(t, []Config{fast(httpCheck(HTTPCheck{Path: "/"}))}, Options{}, h)
	if h.Flags() != lb.FailedActiveHC || h.Available() {
		t.Fatalf("flags right after SetHosts = %q, want /failed_active_hc", h.HealthString())
	}
	if st := c.Host(h); !st.Known || st.Healthy || st.Checks[0].Checked {
		t.Errorf("HostStatus before the first result = %+v", st)
	}
	close(release)
	rec.waitFor(t, h, "healthy", lastHealthy)
	if !h.Available() {
		t.Error("host still unavailable after its first check passed")
	}
}

// Envoy: a host's first passing check makes it healthy at once; after a
// failed first check, healthy_threshold applies.
func TestFirstCheckRule(t *testing.T) {
	t.Run("first check passes", func(t *testing.T) {
		srv := newStatusServer(t, 200)
		h := lb.NewHost(srv.addr(), 1)
		cfg := fast(httpCheck(HTTPCheck{Path: "/"}))
		cfg.HealthyThreshold = 3
		_, rec := start(t, []Config{cfg}, Options{}, h)
		if e := rec.waitN(t, h, 1)[0]; !e.healthy {
			t.Fatal("first passing check did not make the host healthy")
		}
	})
	t.Run("first check fails", func(t *testing.T) {
		srv := newStatusServer(t, 503)
		h := lb.NewHost(srv.addr(), 1)
		cfg := fast(httpCheck(HTTPCheck{Path: "/"}))
		cfg.HealthyThreshold = 3
		_, rec := start(t, []Config{cfg}, Options{}, h)
		rec.waitN(t, h, 1)
		srv.status.Store(200)
		evs := rec.waitFor(t, h, "healthy", lastHealthy)
		if e := evs[len(evs)-1]; e.st.ConsecutiveSuccesses != 3 {
			t.Fatalf("healthy after %d successes, want 3: %s", e.st.ConsecutiveSuccesses, describe(evs))
		}
	})
}

func TestReady(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	releaseAll := func() { once.Do(func() { close(release) }) }
	t.Cleanup(releaseAll)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)
	fastSrv := newStatusServer(t, 200)

	a := lb.NewHost(fastSrv.addr(), 1)
	b := lb.NewHost(slow.Listener.Addr().String(), 1)
	c, rec := start(t, []Config{fast(httpCheck(HTTPCheck{Path: "/"}))}, Options{}, a, b)
	rec.waitN(t, a, 1)
	select {
	case <-c.Ready():
		t.Fatal("Ready before the slow host's first result")
	default:
	}
	// A host added later does not hold Ready back.
	late := lb.NewHost(slow.Listener.Addr().String(), 1)
	c.SetHosts([]*lb.Host{a, b, late})
	releaseAll()
	select {
	case <-c.Ready():
	case <-time.After(waitTimeout):
		t.Fatal("Ready not closed after every first result")
	}

	// No hosts at the first SetHosts: ready at once.
	empty, err := New([]Config{fast(httpCheck(HTTPCheck{Path: "/"}))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	select {
	case <-empty.Ready():
		t.Fatal("Ready before any SetHosts")
	default:
	}
	empty.SetHosts(nil)
	select {
	case <-empty.Ready():
	default:
		t.Fatal("Ready not closed after an empty first SetHosts")
	}
}

// A host removed before its first result no longer holds Ready back, and
// Close releases Ready too.
func TestReadyRemovalAndClose(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hang.Close)
	h := lb.NewHost(hang.Listener.Addr().String(), 1)
	cfg := fast(httpCheck(HTTPCheck{Path: "/"}))
	cfg.Timeout = time.Minute
	c, _ := start(t, []Config{cfg}, Options{}, h)
	select {
	case <-c.Ready():
		t.Fatal("Ready while the only host hangs")
	default:
	}
	c.SetHosts(nil)
	select {
	case <-c.Ready():
	default:
		t.Fatal("Ready not closed when the waited-for host was removed")
	}

	c2, _ := start(t, []Config{cfg}, Options{}, lb.NewHost(hang.Listener.Addr().String(), 1))
	c2.Close()
	select {
	case <-c2.Ready():
	default:
		t.Fatal("Ready not closed by Close")
	}
}

// Removing a host ends its goroutine and its checks; a kept host keeps its
// state.
func TestSetHostsRemovesAndKeeps(t *testing.T) {
	gone := newStatusServer(t, 200)
	kept := newStatusServer(t, 200)
	g := lb.NewHost(gone.addr(), 1)
	k := lb.NewHost(kept.addr(), 1)
	c, rec := start(t, []Config{fast(httpCheck(HTTPCheck{Path: "/"}))}, Options{}, g, k)
	rec.waitFor(t, g, "healthy", lastHealthy)
	rec.waitFor(t, k, "healthy", lastHealthy)
	if n := c.live.Load(); n != 2 {
		t.Fatalf("%d session goroutines, want 2", n)
	}

	c.SetHosts([]*lb.Host{k})
	waitUntil(t, "the removed host's goroutine to end", func() bool { return c.live.Load() == 1 })
	if st := c.Host(g); st.Known {
		t.Errorf("removed host still known: %+v", st)
	}
	if !k.Available() || !c.Host(k).Healthy {
		t.Error("kept host lost its health across SetHosts")
	}
	// No more checks reach the removed host while the kept one is checked.
	before := gone.reqs.Load()
	n := len(rec.events(k))
	rec.waitN(t, k, n+3)
	if after := gone.reqs.Load(); after != before {
		t.Errorf("removed host checked %d more times", after-before)
	}
}

// While HasTraffic reports false, no_traffic_interval replaces interval.
func TestNoTrafficInterval(t *testing.T) {
	srv := newStatusServer(t, 200)
	t.Run("no traffic", func(t *testing.T) {
		h := lb.NewHost(srv.addr(), 1)
		cfg := fast(httpCheck(HTTPCheck{Path: "/"}))
		cfg.Interval = time.Hour
		cfg.NoTrafficInterval = 20 * time.Millisecond
		var asked atomic.Int64
		_, rec := start(t, []Config{cfg}, Options{HasTraffic: func() bool { asked.Add(1); return false }}, h)
		rec.waitN(t, h, 3) // would take hours at interval
		if asked.Load() == 0 {
			t.Error("HasTraffic never asked")
		}
	})
	t.Run("no_traffic_healthy_interval", func(t *testing.T) {
		h := lb.NewHost(srv.addr(), 1)
		cfg := fast(httpCheck(HTTPCheck{Path: "/"}))
		cfg.Interval = time.Hour
		cfg.NoTrafficInterval = time.Hour
		cfg.NoTrafficHealthyInterval = 20 * time.Millisecond
		_, rec := start(t, []Config{cfg}, Options{HasTraffic: func() bool { return false }}, h)
		rec.waitN(t, h, 3)
	})
	t.Run("traffic", func(t *testing.T) {
		h := lb.NewHost(srv.addr(), 1)
		cfg := fast(httpCheck(HTTPCheck{Path: "/"}))
		cfg.NoTrafficInterval = time.Hour
		_, rec := start(t, []Config{cfg}, Options{HasTraffic: func() bool { return true }}, h)
		rec.waitN(t, h, 3) // would take hours at no_traffic_interval
	})
}

// Several Configs: a host is healthy only while every one passes.
func TestMultipleConfigs(t *testing.T) {
	var bad atomic.Bool
	bad.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/deep" && bad.Load() {
			w.WriteHeader(503)
		}
	}))
	t.Cleanup(srv.Close)
	h := lb.NewHost(srv.Listener.Addr().String(), 1)
	cfgs := []Config{
		fast(httpCheck(HTTPCheck{Path: "/shallow"})),
		fast(httpCheck(HTTPCheck{Path: "/deep"})),
		fast(tcpCheck(TCPCheck{})),
	}
	c, rec := start(t, cfgs, Options{}, h)
	rec.waitFor(t, h, "a result from every check", func(evs []event) bool {
		seen := map[int]bool{}
		for _, e := range evs {
			seen[e.cfg] = true
		}
		return len(seen) == 3
	})
	st := c.Host(h)
	if st.Healthy || h.Available() || !st.Checks[0].Healthy || st.Checks[1].Healthy || !st.Checks[2].Healthy {
		t.Fatalf("with /deep failing: %+v", st)
	}
	if st.Checks[0].Kind != "http" || st.Checks[2].Kind != "tcp" || st.LastFailure != "HTTP status 503" {
		t.Errorf("HostStatus = %+v", st)
	}
	if s := c.Stats(); s.Healthy != 0 {
		t.Errorf("healthy gauge %d, want 0", s.Healthy)
	}
	bad.Store(false)
	rec.waitFor(t, h, "healthy", lastHealthy)
	if s := c.Stats(); s.Healthy != 1 {
		t.Errorf("healthy gauge %d, want 1", s.Healthy)
	}
}

func TestStats(t *testing.T) {
	srv := newStatusServer(t, 200)
	up := lb.NewHost(srv.addr(), 1)
	down := lb.NewHost(closedAddr(t), 1)
	c, rec := start(t, []Config{fast(httpCheck(HTTPCheck{Path: "/"}))}, Options{}, up, down)
	rec.waitN(t, up, 3)
	rec.waitN(t, down, 3)
	c.Close()
	s := c.Stats()
	evs := rec.events(nil)
	var succ, fail uint64
	for _, e := range evs {
		if e.res.outcome == passed {
			succ++
		} else {
			fail++
		}
	}
	if s.Success != succ || s.Failure != fail || s.NetworkFailure != fail {
		t.Errorf("stats %+v, want success %d, failure = network_failure = %d", s, succ, fail)
	}
	// Every attempt has a result, but Close may cut the last ones short.
	if s.Attempt < succ+fail || s.Attempt > succ+fail+2 {
		t.Errorf("attempt %d for %d results", s.Attempt, succ+fail)
	}
	m := s.Map()
	for _, name := range []string{"attempt", "success", "failure", "network_failure", "passive_failure", "verify_cluster", "healthy", "degraded"} {
		if _, ok := m["health_check."+name]; !ok {
			t.Errorf("Map lacks health_check.%s", name)
		}
	}
	if m["health_check.success"] != s.Success {
		t.Errorf("Map success %d, want %d", m["health_check.success"], s.Success)
	}
}

// One log line per transition, naming the host and the reason.
func TestTransitionLogs(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: lockedWriter{&mu, &buf}})
	srv := newStatusServer(t, 200)
	h := lb.NewHost(srv.addr(), 1)
	_, rec := start(t, []Config{fast(httpCheck(HTTPCheck{Path: "/"}))}, Options{Logger: log}, h)
	rec.waitFor(t, h, "healthy", lastHealthy)
	srv.status.Store(500)
	rec.waitFor(t, h, "unhealthy", func(evs []event) bool { return !lastHealthy(evs) })
	srv.status.Store(200)
	n := len(rec.events(h))
	rec.waitFor(t, h, "healthy and two more checks", func(evs []event) bool { return len(evs) > n+3 && lastHealthy(evs) })

	mu.Lock()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	mu.Unlock()
	if len(lines) != 3 {
		t.Fatalf("%d log lines, want 3 (healthy, unhealthy, healthy):\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if !strings.Contains(lines[1], "unhealthy") || !strings.Contains(lines[1], h.Address) || !strings.Contains(lines[1], `reason="HTTP status 500"`) {
		t.Errorf("unhealthy line = %q", lines[1])
	}
	if !strings.Contains(lines[2], "upstream host healthy") || !strings.Contains(lines[2], h.Address) {
		t.Errorf("healthy line = %q", lines[2])
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Close stops every kind of check and leaves no goroutine behind.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	httpSrv := newStatusServer(t, 200)
	grpcSrv := newGRPCBackend(t, nil)
	tcpSrv := newTCPServer(t, nil, echo)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hang.Close)
	// Let the servers' own goroutines settle before counting.
	runtime.Gosched()
	base := runtime.NumGoroutine()

	// One Checker per kind, the HTTP one also stuck on a hanging host.
	type run struct {
		cfg   Config
		hosts []*lb.Host
	}
	runs := []run{
		{fast(httpCheck(HTTPCheck{Path: "/"})), []*lb.Host{lb.NewHost(httpSrv.addr(), 1), lb.NewHost(hang.Listener.Addr().String(), 1)}},
		{fast(grpcCheck(GRPCCheck{})), []*lb.Host{lb.NewHost(grpcSrv.addr, 1)}},
		{fast(tcpCheck(TCPCheck{Send: []byte("x"), Receive: [][]byte{[]byte("x")}})), []*lb.Host{lb.NewHost(tcpSrv.addr(), 1)}},
	}
	var checkers []*Checker
	for _, r := range runs {
		c, err := New([]Config{r.cfg}, Options{Logger: hclog.NewNullLogger()})
		if err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		c.onResult = rec.add
		c.SetHosts(r.hosts)
		checkers = append(checkers, c)
		rec.waitFor(t, r.hosts[0], "two passing checks", func(evs []event) bool { return len(evs) >= 2 })
	}
	if runtime.NumGoroutine() <= base {
		t.Fatal("no goroutine started: the test proves nothing")
	}
	for i, c := range checkers {
		c.Close()
		c.Close() // idempotent
		c.SetHosts(runs[i].hosts)
		if n := c.live.Load(); n != 0 {
			t.Fatalf("%d sessions alive after Close", n)
		}
	}
	waitUntil(t, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= base })
}

func TestHostUnknown(t *testing.T) {
	c, err := New([]Config{fast(tcpCheck(TCPCheck{}))}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := c.Host(lb.NewHost("127.0.0.1:1", 1)); st.Known || st.Healthy || st.Checks != nil {
		t.Errorf("unknown host status = %+v", st)
	}
}

// A nil host and a host listed twice are checked once.
func TestSetHostsDuplicates(t *testing.T) {
	srv := newTCPServer(t, nil, func(c net.Conn) {})
	h := lb.NewHost(srv.addr(), 1)
	c, rec := start(t, []Config{fast(tcpCheck(TCPCheck{}))}, Options{}, h, nil, h)
	rec.waitN(t, h, 1)
	if n := c.live.Load(); n != 1 {
		t.Errorf("%d sessions for one host", n)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
