package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/internal/consultest"
	"github.com/outrigger-mesh/outrigger/proxy/server"
)

// holdingApp answers /hold only when released (or when the caller goes
// away) and counts the requests it holds; any other path is answered at
// once with its name.
type holdingApp struct {
	name string
	held atomic.Int32

	mu      sync.Mutex
	release chan struct{}
}

func (h *holdingApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/hold" {
		_, _ = io.WriteString(w, h.name)
		return
	}
	h.mu.Lock()
	ch := h.release
	h.mu.Unlock()
	h.held.Add(1)
	defer h.held.Add(-1)
	select {
	case <-ch:
	case <-r.Context().Done():
	}
	_, _ = io.WriteString(w, "released")
}

// releaseAll lets every held request go and holds the next ones again.
func (h *holdingApp) releaseAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.release)
	h.release = make(chan struct{})
}

// serve runs handler on a loopback port for the test's duration.
func serve(t *testing.T, handler http.Handler) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return lis.Addr().String()
}

// answer is one request's outcome.
type answer struct {
	status     int
	overloaded bool
	err        error
}

func get(c *http.Client, url string) answer {
	resp, err := c.Get(url)
	if err != nil {
		return answer{err: err}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return answer{status: resp.StatusCode, overloaded: resp.Header.Get("x-envoy-overloaded") == "true"}
}

// probeLimit holds two requests at the backend through the frontend's
// sidecar and sends a third. It reports "overloaded" when the sidecar
// answers the third at once with 503 and x-envoy-overloaded (a limit of 2
// in force), "admitted" when the third reaches the backend too (no such
// limit), and "unclear" when the attempt says neither (e.g. the first two
// did not both get through); every request is released before it returns.
func probeLimit(t *testing.T, c *http.Client, url string, h *holdingApp) string {
	t.Helper()
	answers := make(chan answer, 3)
	var wg sync.WaitGroup
	defer func() {
		h.releaseAll()
		wg.Wait()
	}()
	send := func() {
		wg.Add(1)
		go func() { defer wg.Done(); answers <- get(c, url) }()
	}
	// held waits until the backend holds n requests; false if a request
	// was answered first (it never reached the backend) or on timeout.
	held := func(n int32) (bool, answer) {
		deadline := time.Now().Add(3 * time.Second)
		for h.held.Load() < n {
			select {
			case a := <-answers:
				return false, a
			default:
			}
			if time.Now().After(deadline) {
				return false, answer{}
			}
			time.Sleep(2 * time.Millisecond)
		}
		return true, answer{}
	}
	for n := int32(1); n <= 2; n++ {
		send()
		if ok, a := held(n); !ok {
			t.Logf("probe: request %d not held at the backend: %+v", n, a)
			return "unclear"
		}
	}
	send()
	if ok, a := held(3); ok {
		return "admitted"
	} else if a.status == http.StatusServiceUnavailable && a.overloaded {
		return "overloaded"
	} else {
		t.Logf("probe: third request: %+v", a)
		return "unclear"
	}
}

// waitProbe repeats probeLimit until it answers want, failing after limit.
func waitProbe(t *testing.T, c *http.Client, url string, h *holdingApp, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	last := ""
	for time.Since(start) < limit {
		if last = probeLimit(t, c, url, h); last == want {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("probe of %s: %q after %v, want %q", url, last, limit, want)
	return 0
}

// hostFlags returns the health_flags of host addr in cluster, from the
// sidecar's /clusters text.
func hostFlags(clusters []byte, cluster, addr string) string {
	prefix := cluster + "::" + addr + "::health_flags::"
	for _, line := range strings.Split(string(clusters), "\n") {
		if strings.HasPrefix(line, prefix) {
			return strings.TrimPrefix(line, prefix)
		}
	}
	return ""
}

// TestUpstreamLimitsAndPassiveHealthCheck: the frontend's service-defaults
// UpstreamConfig reaches its sidecar's clusters through a real Consul and
// the control plane. Defaults.Limits.MaxConcurrentRequests = 2 makes the
// sidecar answer a third concurrent request to "slow" with 503 and
// x-envoy-overloaded (and stops once the entry is deleted); an override for
// "flaky" with a PassiveHealthCheck of MaxFailures 3 makes it eject the
// instance that starts answering 500 after exactly 3 failures, which
// /clusters then flags failed_outlier_check.
func TestUpstreamLimitsAndPassiveHealthCheck(t *testing.T) {
	start := time.Now()
	agent := consultest.Start(t)
	c := agent.Client
	writeEntry(t, c, &api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal, Config: map[string]any{"protocol": "http"}})
	cp := startControlPlane(t, c)

	slow := &holdingApp{name: "slow", release: make(chan struct{})}
	t.Cleanup(slow.releaseAll)
	good := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "good") }))
	var failing atomic.Bool
	bad := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			http.Error(w, "bad", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "bad")
	}))

	ps, pg, pb, pf := freePort(t), freePort(t), freePort(t), freePort(t)
	slowBind, flakyBind := freePort(t), freePort(t)
	register(t, c, "slow", "slow-1", portOf(t, serve(t, slow)), nil, ps)
	register(t, c, "flaky", "flaky-good", portOf(t, good), nil, pg)
	register(t, c, "flaky", "flaky-bad", portOf(t, bad), nil, pb)
	register(t, c, "frontend", "frontend-1", freePort(t), nil, pf,
		api.Upstream{DestinationName: "slow", LocalBindPort: slowBind},
		api.Upstream{DestinationName: "flaky", LocalBindPort: flakyBind})
	sidecar(t, cp, "slow-1-sidecar-proxy", "slow", true)
	sidecar(t, cp, "flaky-good-sidecar-proxy", "flaky", false)
	sidecar(t, cp, "flaky-bad-sidecar-proxy", "flaky", true)
	front := sidecar(t, cp, "frontend-1-sidecar-proxy", "frontend", false)

	hc := &http.Client{Timeout: 10 * time.Second}
	slowURL := fmt.Sprintf("http://127.0.0.1:%d/", slowBind)
	flakyURL := fmt.Sprintf("http://127.0.0.1:%d/", flakyBind)
	eventually(t, hc, slowURL, 15*time.Second, []string{"slow"})
	eventually(t, hc, flakyURL, 5*time.Second, []string{"good", "bad"})

	// No entry: no limit, so a third concurrent request is admitted.
	if got := probeLimit(t, hc, slowURL+"hold", slow); got != "admitted" {
		t.Fatalf("without an UpstreamConfig: third concurrent request %s, want admitted", got)
	}

	// Defaults.Limits: two concurrent requests per upstream cluster.
	limits := &api.UpstreamConfig{Limits: &api.UpstreamLimits{MaxConcurrentRequests: ptrTo(2)}}
	writeEntry(t, c, &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "frontend",
		UpstreamConfig: &api.UpstreamConfiguration{Defaults: limits}})
	took := waitProbe(t, hc, slowURL+"hold", slow, "overloaded", 5*time.Second)
	t.Logf("limit in force %v after the entry was written", took.Round(time.Millisecond))

	// Without a passive health check a failing instance keeps its share:
	// Consul's empty outlier_detection is Envoy's defaults, whose
	// max_ejection_percent of 10 ejects neither of two hosts.
	failing.Store(true)
	if got := tally(hc, flakyURL, 20); got["status 500"] == 0 || got["good"] == 0 {
		t.Fatalf("flaky failing without a passive health check: %v, want both instances answering", got)
	}
	failing.Store(false)
	eventually(t, hc, flakyURL, followWithin, []string{"good", "bad"}) // its successes reset its count

	// An override for flaky adds a passive health check of 3 failures (it
	// replaces only what it sets: the Defaults' limits stay, see
	// translate's TestUpstreamSettings). Wait for the frontend's sidecar to
	// accept the new clusters before the instance starts failing.
	const maxFailures = 3
	base := 30 * time.Second
	half := uint32(50)
	cds := accepted(t, front, clusterTypeURL)
	writeEntry(t, c, &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "frontend",
		UpstreamConfig: &api.UpstreamConfiguration{Defaults: limits, Overrides: []*api.UpstreamConfig{{
			Name:               "flaky",
			PassiveHealthCheck: &api.PassiveHealthCheck{Interval: time.Second, MaxFailures: maxFailures, MaxEjectionPercent: &half, BaseEjectionTime: &base},
		}}}})
	deadline := time.Now().Add(5 * time.Second)
	for accepted(t, front, clusterTypeURL) == cds {
		if time.Now().After(deadline) {
			t.Fatal("the frontend sidecar accepted no new clusters after the override was written")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// One request at a time: the failing instance answers exactly
	// MaxFailures of them (Envoy's default would be 5), then it is ejected
	// and the good one answers everything.
	failing.Store(true)
	failures, goodInARow := 0, 0
	for i := 0; i < 100 && goodInARow < 20; i++ {
		got := tally(hc, flakyURL, 1)
		switch {
		case got["good"] == 1:
			goodInARow++
		case got["status 500"] == 1:
			failures, goodInARow = failures+1, 0
		default:
			t.Fatalf("flaky answered %v", got)
		}
	}
	if goodInARow < 20 {
		t.Fatalf("the failing flaky instance was not ejected (%d failures seen)", failures)
	}
	if failures != maxFailures {
		t.Errorf("the failing instance answered %d requests before its ejection, want MaxFailures = %d", failures, maxFailures)
	}
	badSidecar := fmt.Sprintf("127.0.0.1:%d", pb)
	if flags := hostFlags(front.Clusters(), "flaky", badSidecar); !strings.Contains(flags, "/failed_outlier_check") {
		t.Errorf("frontend /clusters: flaky host %s health_flags %q, want /failed_outlier_check\n%s", badSidecar, flags, front.Clusters())
	}
	if flags := hostFlags(front.Clusters(), "flaky", fmt.Sprintf("127.0.0.1:%d", pg)); flags != "healthy" {
		t.Errorf("frontend /clusters: the good flaky host has health_flags %q, want healthy", flags)
	}
	if got := probeLimit(t, hc, slowURL+"hold", slow); got != "overloaded" {
		t.Errorf("slow after the override for flaky: %s, want the Defaults' limit still overloaded", got)
	}

	// Deleting the entry lifts the limit again (the agent also rewrites the
	// merged registration in the catalog; both must follow).
	deleteEntry(t, c, api.ServiceDefaults, "frontend")
	took = waitProbe(t, hc, slowURL+"hold", slow, "admitted", 10*time.Second)
	t.Logf("limit lifted %v after the entry was deleted", took.Round(time.Millisecond))
	t.Logf("whole test: %v", time.Since(start).Round(time.Millisecond))
}

func ptrTo[T any](v T) *T { return &v }

// clusterTypeURL is CDS's type in the sidecar's xDS status.
const clusterTypeURL = "type.googleapis.com/envoy.config.cluster.v3.Cluster"

// accepted is how many responses of typeURL the sidecar has accepted, from
// the xDS status in its /config_dump.
func accepted(t *testing.T, s *server.Server, typeURL string) uint64 {
	t.Helper()
	b, err := s.ConfigDump()
	if err != nil {
		t.Fatal(err)
	}
	var dump struct {
		Configs []struct {
			Types map[string]struct {
				Accepted uint64 `json:"accepted"`
			} `json:"types"`
		} `json:"configs"`
	}
	if err := json.Unmarshal(b, &dump); err != nil {
		t.Fatalf("config dump: %v", err)
	}
	for _, c := range dump.Configs {
		if ty, ok := c.Types[typeURL]; ok {
			return ty.Accepted
		}
	}
	return 0
}
