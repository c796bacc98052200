// Package e2e runs the whole mesh in one test process: a real Consul agent,
// the control plane (watcher, translator, xDS server) and real outrigger
// proxies as sidecars in front of real HTTP and gRPC apps, all on loopback.
package e2e

import (
	"github.com/outrigger-mesh/outrigger/controlplane/sidecarboot"

	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/outrigger-mesh/outrigger/controlplane/consul"
	"github.com/outrigger-mesh/outrigger/controlplane/model"
	cpserver "github.com/outrigger-mesh/outrigger/controlplane/server"
	"github.com/outrigger-mesh/outrigger/internal/consultest"
	"github.com/outrigger-mesh/outrigger/internal/freeport"
	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
	"github.com/outrigger-mesh/outrigger/proxy/server"
)

// followWithin is the bound for Consul changes reaching traffic.
const followWithin = 2 * time.Second

// controlPlane runs the watcher and the xDS server in-process on a fixed
// address, and can be stopped and started again there.
type controlPlane struct {
	t      *testing.T
	client *api.Client
	addr   string

	mu     sync.Mutex
	srv    *cpserver.Server
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan struct{}
}

func startControlPlane(t *testing.T, client *api.Client) *controlPlane {
	cp := &controlPlane{t: t, client: client, addr: "127.0.0.1:0"}
	cp.start()
	t.Cleanup(cp.stop)
	return cp
}

func (cp *controlPlane) start() {
	t := cp.t
	var lis net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if lis, err = net.Listen("tcp", cp.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("control plane listen %s: %v", cp.addr, err)
	}
	cp.addr = lis.Addr().String()
	log := hclog.New(&hclog.LoggerOptions{Name: "cp", Level: hclog.Info, Output: testWriter{t}})
	reg := prometheus.NewRegistry()
	srv := cpserver.New(cpserver.Options{Logger: log, Registry: reg})
	w := consul.NewWatcher(cp.client, consul.Options{Logger: log.Named("consul"), WaitTime: 2 * time.Second,
		RequestTimeout: time.Second, Debounce: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() {
		defer wg.Done()
		_ = w.Run(ctx, func(m *model.Mesh) { srv.Update(m); srv.SetConsulUp(w.Up()) })
	}()
	go func() {
		defer wg.Done()
		_ = srv.Run(ctx, lis)
	}()
	go func() {
		defer wg.Done()
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			srv.SetConsulUp(w.Up())
			select {
			case <-ctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	go func() { wg.Wait(); close(done) }()
	cp.mu.Lock()
	cp.srv, cp.reg, cp.cancel, cp.done = srv, reg, cancel, done
	cp.mu.Unlock()
}

func (cp *controlPlane) stop() {
	cp.mu.Lock()
	cancel, done := cp.cancel, cp.done
	cp.cancel = nil
	cp.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cp.t.Errorf("control plane did not stop")
	}
}

// metric sums a counter or gauge family's samples whose labels contain
// every given pair.
func (cp *controlPlane) metric(name string, labels ...string) float64 {
	cp.mu.Lock()
	reg := cp.reg
	cp.mu.Unlock()
	mfs, err := reg.Gather()
	if err != nil {
		cp.t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return total
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			found = found || (l.GetName() == kv[i] && l.GetValue() == kv[i+1])
		}
		if !found {
			return false
		}
	}
	return true
}

// app is a named HTTP backend on a loopback port.
func app(t *testing.T, name string) string {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, name)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return lis.Addr().String()
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Port() // below the ephemeral range
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func portOf(t *testing.T, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	fmt.Sscanf(p, "%d", &n)
	return n
}

// register puts a service instance with a Connect sidecar in Consul. The
// sidecar's health is one TTL check ("ttl:<id>", passing) the test flips.
// Consul's default sidecar checks are left out on purpose: a TCP check
// races the sidecar's first listener (Consul clamps its interval to 1 s and
// syncs the result later still), and the alias check adds Consul's own
// latency — both would measure Consul, not the mesh.
func register(t *testing.T, c *api.Client, service, id string, port int, meta map[string]string, sidecarPort int, upstreams ...api.Upstream) {
	t.Helper()
	reg := &api.AgentServiceRegistration{
		Name: service, ID: id, Address: "127.0.0.1", Port: port, Meta: meta,
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Port:   sidecarPort,
			Proxy:  &api.AgentServiceConnectProxyConfig{Upstreams: upstreams},
			Checks: api.AgentServiceChecks{{CheckID: "ttl:" + id, Name: "ttl", TTL: "10m", Status: api.HealthPassing}},
		}},
	}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

func writeEntry(t *testing.T, c *api.Client, e api.ConfigEntry) {
	t.Helper()
	if ok, _, err := c.ConfigEntries().Set(e, nil); err != nil || !ok {
		t.Fatalf("write %s %s: ok=%v err=%v", e.GetKind(), e.GetName(), ok, err)
	}
}

func deleteEntry(t *testing.T, c *api.Client, kind, name string) {
	t.Helper()
	if _, err := c.ConfigEntries().Delete(kind, name, nil); err != nil {
		t.Fatalf("delete %s %s: %v", kind, name, err)
	}
}

// sidecar runs an outrigger proxy for Consul proxy ID id, configured only
// by the control plane at cpAddr.
func sidecar(t *testing.T, cp *controlPlane, id, service string, delta bool) *server.Server {
	t.Helper()
	// No admin listener: binding port 0 here could take a port freePort
	// handed out for a listener the control plane has yet to configure.
	b := sidecarBootstrap(t, sidecarboot.Options{ID: id, Service: service, XDSAddr: cp.addr, Delta: delta})
	srv, err := server.New(server.Options{
		Logger:       hclog.New(&hclog.LoggerOptions{Name: id, Level: proxyLogLevel(), Output: testWriter{t}}),
		Bootstrap:    b,
		DrainTimeout: time.Second,
	})
	if err != nil {
		t.Fatalf("sidecar %s: %v", id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("sidecar %s: %v", id, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("sidecar %s did not stop", id)
		}
	})
	return srv
}

// proxyLogLevel is warn, or $E2E_PROXY_LOG (e.g. debug) to follow the
// sidecars' xDS exchanges.
func proxyLogLevel() hclog.Level {
	if l := hclog.LevelFromString(os.Getenv("E2E_PROXY_LOG")); l != hclog.NoLevel {
		return l
	}
	return hclog.Warn
}

// tally sends n GETs with the given headers and counts the answers.
func tally(c *http.Client, url string, n int, hdr ...string) map[string]int {
	out := map[string]int{}
	for i := 0; i < n; i++ {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		for j := 0; j+1 < len(hdr); j += 2 {
			req.Header.Set(hdr[j], hdr[j+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			out["error"]++
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			out[fmt.Sprintf("status %d", resp.StatusCode)]++
			continue
		}
		out[string(b)]++
	}
	return out
}

// sameSet reports whether got's keys are exactly want.
func sameSet(got map[string]int, want ...string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		if got[w] == 0 {
			return false
		}
	}
	return true
}

// eventually waits until n requests are all answered by exactly the want
// set, and returns how long that took; it fails the test after limit.
func eventually(t *testing.T, c *http.Client, url string, limit time.Duration, want []string, hdr ...string) time.Duration {
	t.Helper()
	start := time.Now()
	var last map[string]int
	for time.Since(start) < limit {
		if last = tally(c, url, 20, hdr...); sameSet(last, want...) {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("GET %s %v: answers %v after %v, want exactly %v", url, hdr, last, limit, want)
	return 0
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestMesh drives traffic through a frontend sidecar to two payments
// instances behind their own sidecars while Consul changes: every kind of
// config entry, health, registration, a configuration the proxy refuses, and
// the outages of Consul and of the control plane. State of the world and
// delta must behave the same.
func TestMesh(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "sotw", true: "delta"}[delta], func(t *testing.T) { testMesh(t, delta) })
	}
}

func testMesh(t *testing.T, delta bool) {
	agent := consultest.Start(t)
	c := agent.Client
	writeEntry(t, c, &api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal, Config: map[string]any{"protocol": "http"}})
	cp := startControlPlane(t, c)

	v1, v2 := app(t, "v1"), app(t, "v2")
	p1, p2, pf, bind := freePort(t), freePort(t), freePort(t), freePort(t)
	register(t, c, "payments", "payments-1", portOf(t, v1), map[string]string{"version": "v1"}, p1)
	register(t, c, "payments", "payments-2", portOf(t, v2), map[string]string{"version": "v2"}, p2)
	register(t, c, "frontend", "frontend-1", freePort(t), nil, pf, api.Upstream{DestinationName: "payments", LocalBindPort: bind})
	sidecar(t, cp, "payments-1-sidecar-proxy", "payments", delta)
	sidecar(t, cp, "payments-2-sidecar-proxy", "payments", delta)
	front := sidecar(t, cp, "frontend-1-sidecar-proxy", "frontend", delta)

	hc := &http.Client{Timeout: 5 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/", bind)
	// First traffic waits for the sidecars' health checks to pass.
	eventually(t, hc, url, 20*time.Second, []string{"v1", "v2"})
	if !front.Ready() {
		t.Errorf("frontend sidecar serves but is not ready")
	}

	took := map[string]time.Duration{}
	// Resolver subsets and a splitter: canary steps.
	writeEntry(t, c, &api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: "payments", DefaultSubset: "v1",
		Subsets: map[string]api.ServiceResolverSubset{"v1": {Filter: "Service.Meta.version == v1"}, "v2": {Filter: "Service.Meta.version == v2"}}})
	took["resolver default subset"] = eventually(t, hc, url, followWithin, []string{"v1"})
	writeEntry(t, c, &api.ServiceSplitterConfigEntry{Kind: api.ServiceSplitter, Name: "payments",
		Splits: []api.ServiceSplit{{Weight: 50, ServiceSubset: "v1"}, {Weight: 50, ServiceSubset: "v2"}}})
	took["splitter 50/50"] = eventually(t, hc, url, followWithin, []string{"v1", "v2"})
	writeEntry(t, c, &api.ServiceSplitterConfigEntry{Kind: api.ServiceSplitter, Name: "payments",
		Splits: []api.ServiceSplit{{Weight: 0, ServiceSubset: "v1"}, {Weight: 100, ServiceSubset: "v2"}}})
	took["splitter 0/100"] = eventually(t, hc, url, followWithin, []string{"v2"})

	// A router: a header picks the subset, the rest follows the splitter.
	writeEntry(t, c, &api.ServiceRouterConfigEntry{Kind: api.ServiceRouter, Name: "payments", Routes: []api.ServiceRoute{{
		Match:       &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{Header: []api.ServiceRouteHTTPMatchHeader{{Name: "x-version", Exact: "v1"}}}},
		Destination: &api.ServiceRouteDestination{ServiceSubset: "v1"},
	}}})
	took["router header"] = eventually(t, hc, url, followWithin, []string{"v1"}, "x-version", "v1")
	eventually(t, hc, url, followWithin, []string{"v2"})
	deleteEntry(t, c, api.ServiceRouter, "payments")
	deleteEntry(t, c, api.ServiceSplitter, "payments")
	deleteEntry(t, c, api.ServiceResolver, "payments")
	took["entries deleted"] = eventually(t, hc, url, followWithin, []string{"v1", "v2"})

	// Health: a failing instance leaves the endpoints, and comes back.
	if err := c.Agent().UpdateTTL("ttl:payments-2", "failing on purpose", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	took["health check fails"] = eventually(t, hc, url, followWithin, []string{"v1"})
	if err := c.Agent().UpdateTTL("ttl:payments-2", "", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	took["health check passes"] = eventually(t, hc, url, followWithin, []string{"v1", "v2"})

	// Registration: deregister one, register a new one.
	if err := c.Agent().ServiceDeregister("payments-2"); err != nil {
		t.Fatal(err)
	}
	took["deregister"] = eventually(t, hc, url, followWithin, []string{"v1"})
	v3, p3 := app(t, "v3"), freePort(t)
	register(t, c, "payments", "payments-3", portOf(t, v3), map[string]string{"version": "v3"}, p3)
	sidecar(t, cp, "payments-3-sidecar-proxy", "payments", delta)
	took["register (incl. sidecar start and first health check)"] = eventually(t, hc, url, 10*time.Second, []string{"v1", "v3"})

	// A configuration Consul and the control plane pass on but the proxy
	// does not implement (the envoy-ratelimited retry condition): it NACKs
	// with the reason, the control plane counts it, traffic goes on.
	nacks := cp.metric("outrigger_cp_xds_nacks_total")
	writeEntry(t, c, &api.ServiceRouterConfigEntry{Kind: api.ServiceRouter, Name: "payments", Routes: []api.ServiceRoute{{
		Match:       &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathPrefix: "/"}},
		Destination: &api.ServiceRouteDestination{Service: "payments", NumRetries: 1, RetryOn: []string{"envoy-ratelimited"}},
	}}})
	deadline := time.Now().Add(5 * time.Second)
	for cp.metric("outrigger_cp_xds_nacks_total") == nacks {
		if time.Now().After(deadline) {
			t.Fatalf("no NACK counted by the control plane for an unsupported retry condition")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := tally(hc, url, 20); !sameSet(got, "v1", "v3") {
		t.Errorf("after a NACK: answers %v, want the last good config (v1, v3)", got)
	}
	sawNACK := false
	for _, n := range cp.srv.Status().LastNACKs {
		sawNACK = sawNACK || (n.Node == "frontend-1-sidecar-proxy" && strings.Contains(n.Error, "envoy-ratelimited"))
	}
	if !sawNACK {
		t.Errorf("control plane status does not show the frontend's NACK naming the retry condition: %+v", cp.srv.Status().LastNACKs)
	}
	deleteEntry(t, c, api.ServiceRouter, "payments")
	eventually(t, hc, url, followWithin, []string{"v1", "v3"})

	// A config entry Consul accepts but that cannot become valid Envoy
	// config (an RE2-invalid regex): the control plane logs and counts it
	// and keeps the previous good configuration for the proxies it touches.
	bad := cp.metric("outrigger_cp_translate_errors_total")
	writeEntry(t, c, &api.ServiceRouterConfigEntry{Kind: api.ServiceRouter, Name: "payments", Routes: []api.ServiceRoute{{
		Match:       &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathRegex: "/(unclosed"}},
		Destination: &api.ServiceRouteDestination{Service: "payments"},
	}}})
	deadline = time.Now().Add(5 * time.Second)
	for cp.metric("outrigger_cp_translate_errors_total") == bad {
		if time.Now().After(deadline) {
			t.Fatalf("no translation error counted for an invalid router regex")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := tally(hc, url, 20); !sameSet(got, "v1", "v3") {
		t.Errorf("after an untranslatable config entry: answers %v, want the last good config (v1, v3)", got)
	}
	deleteEntry(t, c, api.ServiceRouter, "payments")

	// Outages, with traffic flowing the whole time: no request may fail.
	var failed, sent atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var stopOnce sync.Once
	halt := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	t.Cleanup(halt) // a failed check must not leave the loop running
	wg.Add(1)
	go func() {
		defer wg.Done()
		cl := &http.Client{Timeout: 5 * time.Second}
		for {
			select {
			case <-stop:
				return
			default:
			}
			got := tally(cl, url, 1)
			sent.Add(1)
			if got["v1"]+got["v3"] != 1 {
				failed.Add(1)
				t.Logf("during outages at %s: %v", time.Now().Format("15:04:05.000"), got)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	// Consul frozen (SIGSTOP: connections accepted, never answered — what a
	// partition or a hung server looks like): the control plane notices,
	// says so, and keeps serving the last state.
	if err := agent.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(15 * time.Second)
	for cp.metric("outrigger_cp_consul_up") != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("consul_up still 1 with Consul frozen")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // traffic with Consul down
	cp.stop()
	time.Sleep(300 * time.Millisecond) // traffic with Consul and the control plane down
	if err := agent.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	cp.start()
	deadline = time.Now().Add(15 * time.Second)
	// payments-2's sidecar still runs but was deregistered: it is refused.
	for cp.metric("outrigger_cp_xds_streams") < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("proxies did not reconnect to the restarted control plane: %v streams", cp.metric("outrigger_cp_xds_streams"))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A change after the restart still reaches traffic.
	writeEntry(t, c, &api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: "payments", DefaultSubset: "v3",
		Subsets: map[string]api.ServiceResolverSubset{"v3": {Filter: "Service.Meta.version == v3"}}})
	took["change after control plane restart"] = eventually(t, hc, url, 10*time.Second, []string{"v3"})
	halt()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d requests failed across the Consul and control plane outages", n, sent.Load())
	}
	for what, d := range took {
		t.Logf("followed %-55s in %v", what, d.Round(time.Millisecond))
	}
}

// sidecarBootstrap is the bootstrap outrigger-cp's bootstrap command writes
// (sidecarboot), loaded as the proxy loads it.
func sidecarBootstrap(t *testing.T, o sidecarboot.Options) *bootstrap.Bootstrap {
	t.Helper()
	bs, err := sidecarboot.Config(o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bootstrap.FromProto(bs)
	if err != nil {
		t.Fatalf("bootstrap for %s: %v", o.ID, err)
	}
	return b
}
