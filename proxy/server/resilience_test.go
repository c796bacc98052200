package server_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// metric reads one sample from the proxy's Prometheus text, e.g.
// metric(t, p, `outrigger_upstream_rq_total{cluster="up"}`); -1 if absent.
func metric(t *testing.T, p *proxy, series string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrapeText(t, p), "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			must(t, err)
			return v
		}
	}
	return -1
}

// killable is a backend whose Kill closes its listener and every
// connection, as a crashed process would.
type killable struct {
	addr string
	srv  *http.Server
	hits atomic.Int64
}

func killableBackend(t *testing.T, name string, h http.HandlerFunc) *killable {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	k := &killable{addr: l.Addr().String()}
	k.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.hits.Add(1)
		w.Header().Set("X-Backend", name)
		h(w, r)
	})}
	go k.srv.Serve(l)
	t.Cleanup(k.Kill)
	return k
}

func (k *killable) Kill() { k.srv.Close() }

// paced sends GETs at about rate per second for d from workers goroutines
// (a bounded, open-ish loop: each worker keeps its own schedule) and
// returns how many succeeded (2xx) and the failures seen.
func paced(c *http.Client, url string, rate int, d time.Duration, workers int, during func(elapsed time.Duration)) (ok int64, failures []string) {
	var okN atomic.Int64
	var mu sync.Mutex
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) * float64(workers) / float64(rate))
	start := time.Now()
	stop := start.Add(d)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			next := start.Add(interval * time.Duration(w) / time.Duration(workers))
			for next.Before(stop) {
				time.Sleep(time.Until(next))
				next = next.Add(interval)
				resp, err := c.Get(url)
				if err == nil {
					var body []byte
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode/100 != 2 {
						err = fmt.Errorf("status %d (backend %q, body %q)", resp.StatusCode, resp.Header.Get("X-Backend"), body)
					}
				}
				if err != nil {
					mu.Lock()
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				okN.Add(1)
			}
		}(w)
	}
	if during != nil {
		go during(0)
	}
	wg.Wait()
	return okN.Load(), failures
}

func firstFew(s []string) []string {
	if len(s) > 5 {
		return s[:5]
	}
	return s
}

// TestKilledBackendInvisibleWithRetries is the test (a): one of
// three backends killed during a 2,000 req/s run; idempotent requests with
// retries on see no error at all.
func TestKilledBackendInvisibleWithRetries(t *testing.T) {
	var backends []*killable
	var addrs []string
	for i := 0; i < 3; i++ {
		b := killableBackend(t, fmt.Sprintf("b%d", i), func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "ok")
		})
		backends = append(backends, b)
		addrs = append(addrs, b.addr)
	}
	p := startProxy(t, bs{
		VirtualHosts: vhostAll("up", `                    retry_policy:
                      retry_on: "5xx,reset,connect-failure"
                      num_retries: 3
                      retry_host_predicate:
                      - name: envoy.retry_host_predicates.previous_hosts
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
                      host_selection_retry_max_attempts: 3
`),
		// A killed host fails every request it holds at once: up to its
		// share of the 32 clients. The retry budget's reserve must cover
		// that burst (the default reserve of 3, like Envoy's default
		// max_retries of 3, would refuse some of them).
		Clusters: staticCluster("up", `    circuit_breakers:
      thresholds:
      - retry_budget: {budget_percent: {value: 20}, min_retry_concurrency: 16}
    outlier_detection:
      consecutive_5xx: 3
      consecutive_local_origin_failure: 3
      interval: 1s
      base_ejection_time: 30s
      max_ejection_percent: 50
`, addrs...),
	}.String())
	c := h1Client()
	url := "http://" + p.addr["ingress"] + "/"
	ok, failures := paced(c, url, 2000, 3*time.Second, 32, func(time.Duration) {
		time.Sleep(time.Second)
		backends[1].Kill()
	})
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed after a backend was killed, e.g. %v; retries %v, retry overflows %v", len(failures), int(ok)+len(failures), firstFew(failures),
			metric(t, p, `outrigger_upstream_rq_retry_total{cluster="up"}`), metric(t, p, `outrigger_upstream_rq_retry_overflow_total{cluster="up"}`))
	}
	if ok < 3000 {
		t.Fatalf("only %d requests completed: the load did not run", ok)
	}
	retries := metric(t, p, `outrigger_upstream_rq_retry_total{cluster="up"}`)
	t.Logf("%d requests, no errors; %v retries; killed backend got %d before dying", ok, retries, backends[1].hits.Load())
	c.CloseIdleConnections()
}

// TestHalfFailingBackendEjected is test (b): a backend answering 503 to
// every other request is ejected by outlier detection, and with retries the
// clients see at least 99.9 % success.
func TestHalfFailingBackendEjected(t *testing.T) {
	var addrs []string
	var bad *killable
	for i := 0; i < 3; i++ {
		var n atomic.Int64
		i := i
		b := killableBackend(t, fmt.Sprintf("b%d", i), func(w http.ResponseWriter, r *http.Request) {
			if i == 0 && n.Add(1)%2 == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, "ok")
		})
		if i == 0 {
			bad = b
		}
		addrs = append(addrs, b.addr)
	}
	p := startProxy(t, bs{
		VirtualHosts: vhostAll("up", `                    retry_policy:
                      retry_on: "5xx"
                      num_retries: 2
                      retry_host_predicate:
                      - name: envoy.retry_host_predicates.previous_hosts
                        typed_config:
                          "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
`),
		// The default retry budget (20 %, reserve 3) admits retries for
		// about 20 % of the requests; a host failing half of its third of
		// the traffic asks for 17 %, so noise at the start can overflow it
		// before the ejection. A cluster that wants every such request
		// saved raises the budget, as here.
		Clusters: staticCluster("up", `    circuit_breakers:
      thresholds:
      - retry_budget: {budget_percent: {value: 50}, min_retry_concurrency: 10}
    outlier_detection:
      interval: 0.2s
      base_ejection_time: 30s
      max_ejection_percent: 50
      failure_percentage_threshold: 30
      enforcing_failure_percentage: 100
      failure_percentage_minimum_hosts: 3
      failure_percentage_request_volume: 20
`, addrs...),
	}.String())
	c := h1Client()
	url := "http://" + p.addr["ingress"] + "/"
	ok, failures := paced(c, url, 1000, 2*time.Second, 16, nil)
	total := int(ok) + len(failures)
	if float64(ok) < 0.999*float64(total) {
		t.Fatalf("success %d/%d < 99.9 %%, e.g. %v; retries %v, retry overflows %v", ok, total, firstFew(failures), metric(t, p, `outrigger_upstream_rq_retry_total{cluster="up"}`), metric(t, p, `outrigger_upstream_rq_retry_overflow_total{cluster="up"}`))
	}
	if !strings.Contains(string(p.srv.Clusters()), bad.addr+"::health_flags::/failed_outlier_check") {
		t.Fatalf("the half-failing backend was not ejected:\n%s", p.srv.Clusters())
	}
	t.Logf("%d/%d succeeded; bad backend hits %d", ok, total, bad.hits.Load())
}

// TestGRPCUnavailableEjected: a gRPC backend answering trailers-only
// UNAVAILABLE (HTTP 200, grpc-status 14: what a sidecar answers for a
// dead app) counts as a 503 to outlier detection, as in Envoy, and is
// ejected by consecutive_5xx; the healthy one is not.
func TestGRPCUnavailableEjected(t *testing.T) {
	bad := killableBackend(t, "bad", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "14")
		w.Header().Set("Grpc-Message", "no healthy upstream")
	})
	good := killableBackend(t, "good", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		_, _ = w.Write([]byte{0, 0, 0, 0, 0})
		w.Header().Set("Grpc-Status", "0")
	})
	p := startProxy(t, bs{
		VirtualHosts: vhostAll("up", ""),
		Clusters: staticCluster("up", `    outlier_detection:
      interval: 0.1s
      consecutive_5xx: 3
      base_ejection_time: 30s
      max_ejection_percent: 50
`, bad.addr, good.addr),
	}.String())
	c := h1Client()
	url := "http://" + p.addr["ingress"] + "/grpc.Svc/Call"
	for i := 0; i < 20; i++ {
		req, err := http.NewRequest(http.MethodPost, url, strings.NewReader("\x00\x00\x00\x00\x00"))
		must(t, err)
		req.Header.Set("Content-Type", "application/grpc")
		resp, err := c.Do(req)
		must(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(string(p.srv.Clusters()), bad.addr+"::health_flags::/failed_outlier_check") {
		if time.Now().After(deadline) {
			t.Fatalf("the backend answering UNAVAILABLE was not ejected:\n%s", p.srv.Clusters())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(string(p.srv.Clusters()), good.addr+"::health_flags::/failed_outlier_check") {
		t.Fatalf("the healthy gRPC backend was ejected:\n%s", p.srv.Clusters())
	}
}

// TestTotalOutageDoesNotMultiplyLoad is test (c): with every backend
// failing, the default retry budget keeps upstream attempts within 1.2 ×
// the client requests plus the minimum retry concurrency, even though the
// route asks for 3 retries each.
func TestTotalOutageDoesNotMultiplyLoad(t *testing.T) {
	var addrs []string
	var hits []*killable
	for i := 0; i < 3; i++ {
		b := killableBackend(t, fmt.Sprintf("b%d", i), func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(2 * time.Millisecond)
			w.WriteHeader(http.StatusServiceUnavailable)
		})
		hits = append(hits, b)
		addrs = append(addrs, b.addr)
	}
	p := startProxy(t, bs{
		VirtualHosts: vhostAll("up", `                    retry_policy:
                      retry_on: "5xx"
                      num_retries: 3
                      retry_back_off: {base_interval: 0.001s, max_interval: 0.002s}
`),
		Clusters: staticCluster("up", "", addrs...),
	}.String())
	c := h1Client()
	url := "http://" + p.addr["ingress"] + "/"
	const clients, each = 20, 25
	var wg sync.WaitGroup
	var sent atomic.Int64
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				resp, err := c.Get(url)
				sent.Add(1)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	var attempts int64
	for _, b := range hits {
		attempts += b.hits.Load()
	}
	limit := 1.2*float64(sent.Load()) + 3
	t.Logf("%d client requests → %d upstream attempts (limit %.0f); retry overflow %v", sent.Load(), attempts, limit,
		metric(t, p, `outrigger_upstream_rq_retry_overflow_total{cluster="up"}`))
	if float64(attempts) > limit {
		t.Fatalf("%d client requests caused %d upstream attempts, more than 1.2× + 3 = %.0f", sent.Load(), attempts, limit)
	}
	if attempts <= sent.Load() {
		t.Fatalf("no retry happened at all (%d attempts for %d requests): the test proves nothing", attempts, sent.Load())
	}
}

// TestMaxRequestsOverflow is test (d): max_requests 10 and 100 concurrent
// slow requests → 90 answered at once with 503 and x-envoy-overloaded.
func TestMaxRequestsOverflow(t *testing.T) {
	release := make(chan struct{})
	var inside atomic.Int64
	b := killableBackend(t, "slow", func(w http.ResponseWriter, r *http.Request) {
		inside.Add(1)
		<-release
		io.WriteString(w, "ok")
	})
	p := startProxy(t, bs{
		VirtualHosts: vhostAll("up", ""),
		Clusters: staticCluster("up", `    circuit_breakers:
      thresholds:
      - max_requests: 10
`, b.addr),
	}.String())
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100, MaxConnsPerHost: 0}, Timeout: 20 * time.Second}
	url := "http://" + p.addr["ingress"] + "/"
	type result struct {
		status     int
		overloaded string
		err        error
	}
	results := make(chan result, 100)
	for i := 0; i < 100; i++ {
		go func() {
			resp, err := c.Get(url)
			if err != nil {
				results <- result{err: err}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			results <- result{status: resp.StatusCode, overloaded: resp.Header.Get("X-Envoy-Overloaded")}
		}()
	}
	// The 90 overflows come back while the 10 admitted are still held.
	overflow := 0
	for overflow < 90 {
		select {
		case r := <-results:
			if r.err != nil || r.status != http.StatusServiceUnavailable || r.overloaded != "true" {
				t.Fatalf("while 10 are held: got %+v, want 503 with x-envoy-overloaded: true", r)
			}
			overflow++
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d overflow replies came back while the backend held 10 requests", overflow)
		}
	}
	// The 10 admitted ones reach the backend on their own time (a busy
	// machine may answer the overflows first); never more than 10.
	for deadline := time.Now().Add(10 * time.Second); inside.Load() < 10 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if n := inside.Load(); n != 10 {
		t.Fatalf("%d requests reached the backend, want 10", n)
	}
	close(release)
	for i := 0; i < 10; i++ {
		if r := <-results; r.err != nil || r.status != 200 {
			t.Fatalf("an admitted request: %+v", r)
		}
	}
	if v := metric(t, p, `outrigger_upstream_rq_pending_overflow_total{cluster="up"}`); v != 90 {
		t.Fatalf("upstream_rq_pending_overflow = %v, want 90", v)
	}
}

// TestFaultInjection: envoy.filters.http.fault before the router aborts the
// requests its header matcher selects (HTTP and gRPC-shaped), delays by
// header when asked, and lets the rest through; the access-log flags and
// the counters show it.
func TestFaultInjection(t *testing.T) {
	b := killableBackend(t, "ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	p := startProxy(t, bs{
		Filters: `          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              headers:
              - name: x-chaos
                present_match: true
              abort:
                http_status: 503
                percentage: {numerator: 100}
          - name: envoy.filters.http.fault
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
              delay:
                header_delay: {}
                percentage: {numerator: 100}
`,
		VirtualHosts: vhostAll("up", ""),
		Clusters:     staticCluster("up", "", b.addr),
	}.String())
	c := h1Client()
	url := "http://" + p.addr["ingress"] + "/"

	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("X-Chaos", "1")
	resp, err := c.Do(req)
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("a selected request got %d, want the injected 503", resp.StatusCode)
	}
	if b.hits.Load() != 0 {
		t.Fatal("an aborted request reached the backend")
	}

	req, _ = http.NewRequest("GET", url, nil)
	req.Header.Set("X-Envoy-Fault-Delay-Request", "150")
	start := time.Now()
	resp, err = c.Do(req)
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("header-delayed request: %d after %v, want 200 after at least 150ms", resp.StatusCode, time.Since(start))
	}

	resp, err = c.Get(url)
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || b.hits.Load() != 2 {
		t.Fatalf("an unselected request: %d, backend hits %d", resp.StatusCode, b.hits.Load())
	}
}

// TestRingHashStickyThroughProxy is test (f) end to end: with RING_HASH and
// a header hash policy, a user's requests always reach the same backend,
// and the users spread over the backends.
func TestRingHashStickyThroughProxy(t *testing.T) {
	var addrs []string
	for i := 0; i < 4; i++ {
		b := killableBackend(t, fmt.Sprintf("b%d", i), func(w http.ResponseWriter, r *http.Request) {})
		addrs = append(addrs, b.addr)
	}
	p := startProxy(t, bs{
		VirtualHosts: vhostAll("up", `                    hash_policy:
                    - header: {header_name: x-user}
`),
		Clusters: staticCluster("up", "    lb_policy: RING_HASH\n", addrs...),
	}.String())
	c := h1Client()
	url := "http://" + p.addr["ingress"] + "/"
	owner := map[string]string{}
	used := map[string]bool{}
	for round := 0; round < 3; round++ {
		for u := 0; u < 40; u++ {
			user := fmt.Sprintf("user-%d", u)
			req, _ := http.NewRequest("GET", url, nil)
			req.Header.Set("X-User", user)
			resp, err := c.Do(req)
			must(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			got := resp.Header.Get("X-Backend")
			if prev, ok := owner[user]; ok && prev != got {
				t.Fatalf("%s went to %s, then to %s", user, prev, got)
			}
			owner[user] = got
			used[got] = true
		}
	}
	if len(used) < 3 {
		t.Fatalf("40 users landed on only %d of 4 backends: %v", len(used), used)
	}
}

// TestPeakEWMAAvoidsSlowHost is the end-to-end half of test (g): our
// latency-aware policy sends measurably less to a backend 30× slower than
// the others.
func TestPeakEWMAAvoidsSlowHost(t *testing.T) {
	var addrs []string
	var slow *killable
	for i := 0; i < 3; i++ {
		delay := time.Millisecond
		if i == 0 {
			delay = 30 * time.Millisecond
		}
		b := killableBackend(t, fmt.Sprintf("b%d", i), func(w http.ResponseWriter, r *http.Request) { time.Sleep(delay) })
		if i == 0 {
			slow = b
		}
		addrs = append(addrs, b.addr)
	}
	p := startProxy(t, bs{
		VirtualHosts: vhostAll("up", ""),
		Clusters: staticCluster("up", `    load_balancing_policy:
      policies:
      - typed_extension_config:
          name: outrigger.load_balancing_policies.peak_ewma
          typed_config:
            "@type": type.googleapis.com/xds.type.v3.TypedStruct
            type_url: outrigger.lb.v1.PeakEwma
            value: {decay: 10s, default_rtt: 5ms}
`, addrs...),
	}.String())
	c := h1Client()
	url := "http://" + p.addr["ingress"] + "/"
	const workers, each = 4, 60
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if resp, err := c.Get(url); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	share := float64(slow.hits.Load()) / float64(workers*each)
	t.Logf("slow backend got %.1f %% of %d requests (fair share 33 %%)", 100*share, workers*each)
	if share > 1.0/6 {
		t.Fatalf("the slow backend got %.1f %% of the requests, not less than half its fair share", 100*share)
	}
}

// TestActiveHealthCheckTakesHostOut: an HTTP health check that starts
// failing takes its host out of balancing (visible in /clusters and the
// metrics) and brings it back when it passes again.
func TestActiveHealthCheckTakesHostOut(t *testing.T) {
	var sick atomic.Bool
	var addrs []string
	for i := 0; i < 2; i++ {
		i := i
		b := killableBackend(t, fmt.Sprintf("b%d", i), func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" && i == 1 && sick.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		})
		addrs = append(addrs, b.addr)
	}
	p := startProxy(t, bs{
		VirtualHosts: vhostAll("up", ""),
		Clusters: staticCluster("up", `    health_checks:
    - timeout: 1s
      interval: 0.05s
      unhealthy_threshold: 1
      healthy_threshold: 1
      no_traffic_interval: 0.05s
      http_health_check: {path: /healthz}
`, addrs...),
	}.String())
	c := h1Client()
	url := "http://" + p.addr["ingress"] + "/"
	backendsSeen := func(n int) map[string]int {
		seen := map[string]int{}
		for i := 0; i < n; i++ {
			resp, err := c.Get(url)
			must(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			seen[resp.Header.Get("X-Backend")]++
		}
		return seen
	}
	healthy := func() float64 { return metric(t, p, `outrigger_health_check_healthy{cluster="up"}`) }
	waitFor(t, 5*time.Second, "both hosts healthy", func() bool { return healthy() == 2 })
	if seen := backendsSeen(10); seen["b0"] == 0 || seen["b1"] == 0 {
		t.Fatalf("healthy: traffic %v, want both", seen)
	}
	sick.Store(true)
	waitFor(t, 5*time.Second, "b1 failing its check", func() bool { return healthy() == 1 })
	if !strings.Contains(string(p.srv.Clusters()), addrs[1]+"::health_flags::/failed_active_hc") {
		t.Fatalf("/clusters does not show b1 failing active health checks:\n%s", p.srv.Clusters())
	}
	if seen := backendsSeen(10); seen["b1"] != 0 {
		t.Fatalf("b1 failing its health check still got traffic: %v", seen)
	}
	sick.Store(false)
	waitFor(t, 5*time.Second, "b1 back", func() bool { return healthy() == 2 })
	if seen := backendsSeen(10); seen["b1"] == 0 {
		t.Fatalf("b1 passing again got no traffic: %v", seen)
	}
}

// TestPriorityFailover: hosts of priority 0 failing their health checks
// send the traffic to priority 1 (Envoy's priority levels with the
// overprovisioning factor), and it comes back when they recover.
func TestPriorityFailover(t *testing.T) {
	var sick atomic.Bool
	health := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" && sick.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}
	p0a := killableBackend(t, "p0a", health)
	p0b := killableBackend(t, "p0b", health)
	p1 := killableBackend(t, "p1", func(w http.ResponseWriter, r *http.Request) {})
	ep := func(addr string) string {
		h, port, _ := net.SplitHostPort(addr)
		return fmt.Sprintf("        - endpoint: {address: {socket_address: {address: %q, port_value: %s}}}\n", h, port)
	}
	cluster := `  - name: up
    type: STATIC
    connect_timeout: 1s
    health_checks:
    - timeout: 1s
      interval: 0.05s
      unhealthy_threshold: 1
      healthy_threshold: 1
      no_traffic_interval: 0.05s
      http_health_check: {path: /healthz}
    load_assignment:
      cluster_name: up
      endpoints:
      - priority: 0
        lb_endpoints:
` + ep(p0a.addr) + ep(p0b.addr) + `      - priority: 1
        lb_endpoints:
` + ep(p1.addr)
	p := startProxy(t, bs{VirtualHosts: vhostAll("up", ""), Clusters: cluster}.String())
	c := h1Client()
	url := "http://" + p.addr["ingress"] + "/"
	spread := func() map[string]int {
		seen := map[string]int{}
		for i := 0; i < 20; i++ {
			resp, err := c.Get(url)
			must(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			seen[resp.Header.Get("X-Backend")]++
		}
		return seen
	}
	healthy := func() float64 { return metric(t, p, `outrigger_health_check_healthy{cluster="up"}`) }
	waitFor(t, 5*time.Second, "all hosts healthy", func() bool { return healthy() == 3 })
	if seen := spread(); seen["p1"] != 0 || seen["p0a"] == 0 || seen["p0b"] == 0 {
		t.Fatalf("priority 0 healthy: traffic %v, want all of it on p0a and p0b", seen)
	}
	sick.Store(true)
	waitFor(t, 5*time.Second, "priority 0 failing", func() bool { return healthy() == 1 })
	if seen := spread(); seen["p1"] != 20 {
		t.Fatalf("priority 0 down: traffic %v, want all of it on p1", seen)
	}
	sick.Store(false)
	waitFor(t, 5*time.Second, "priority 0 back", func() bool { return healthy() == 3 })
	if seen := spread(); seen["p1"] != 0 {
		t.Fatalf("priority 0 back: traffic %v, want none on p1", seen)
	}
}
