package e2e

import (
	"github.com/outrigger-mesh/outrigger/controlplane/sidecarboot"

	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/controlplane/dashboard"
	cpserver "github.com/outrigger-mesh/outrigger/controlplane/server"
	"github.com/outrigger-mesh/outrigger/internal/consultest"
	"github.com/outrigger-mesh/outrigger/proxy/server"
)

// dashboardAppearsWithin bounds how long a newly registered service takes
// to show in the dashboard's state (Consul read + the 1 s refresh).
const dashboardAppearsWithin = 5 * time.Second

// registerWithAdmin registers a service instance and its sidecar, whose
// registration carries the sidecar's admin address in the dashboard's
// meta key (the convention the dashboard scrapes by).
func registerWithAdmin(t *testing.T, c *api.Client, service, id string, port, sidecarPort int, admin string, upstreams ...api.Upstream) {
	t.Helper()
	reg := &api.AgentServiceRegistration{
		Name: service, ID: id, Address: "127.0.0.1", Port: port,
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Port:   sidecarPort,
			Meta:   map[string]string{dashboard.AdminMetaKey: admin},
			Proxy:  &api.AgentServiceConnectProxyConfig{Upstreams: upstreams},
			Checks: api.AgentServiceChecks{{CheckID: "ttl:" + id, Name: "ttl", TTL: "10m", Status: api.HealthPassing}},
		}},
	}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

// adminSidecar is sidecar with an admin listener on admin, where the
// dashboard scrapes /stats/prometheus.
func adminSidecar(t *testing.T, cp *controlPlane, id, service, admin string) *server.Server {
	t.Helper()
	b := sidecarBootstrap(t, sidecarboot.Options{ID: id, Service: service, XDSAddr: cp.addr, AdminAddr: admin})
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

// dashboardState reads /api/state.
func dashboardState(t *testing.T, base string) dashboard.State {
	t.Helper()
	resp, err := http.Get(base + "/api/state")
	if err != nil {
		t.Fatalf("GET %s/api/state: %v", base, err)
	}
	defer resp.Body.Close()
	var st dashboard.State
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/api/state: %s", base, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("decode /api/state: %v", err)
	}
	return st
}

func findService(st dashboard.State, name string) *dashboard.ServiceState {
	for i := range st.Services {
		if st.Services[i].Name == name {
			return &st.Services[i]
		}
	}
	return nil
}

// waitState polls /api/state until ok holds, failing after limit.
func waitState(t *testing.T, base, what string, limit time.Duration, ok func(dashboard.State) bool) (dashboard.State, time.Duration) {
	t.Helper()
	start := time.Now()
	var st dashboard.State
	for time.Since(start) < limit {
		if st = dashboardState(t, base); ok(st) {
			return st, time.Since(start)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := json.MarshalIndent(st, "", "  ")
	t.Fatalf("dashboard: %s not seen within %v; last state:\n%s", what, limit, b)
	return st, 0
}

// TestDashboard runs the dashboard against real Consul, the control plane
// and outrigger sidecars: it shows services with health, the connected
// proxies with their ACKed versions, a newly registered service within a
// bound, and traffic through the sidecars as a rate and percentiles; then a
// headless Chromium loads the page and sees the new service.
func TestDashboard(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client
	writeEntry(t, c, &api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal, Config: map[string]any{"protocol": "http"}})
	cp := startControlPlane(t, c)
	status := func() cpserver.Status {
		cp.mu.Lock()
		srv := cp.srv
		cp.mu.Unlock()
		return srv.Status()
	}
	dash := dashboard.New(dashboard.Options{Catalog: dashboard.ConsulCatalog(c), Status: status,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "dashboard", Output: testWriter{t}})})
	web := httptest.NewServer(dash.Handler())
	t.Cleanup(web.Close)

	pay := app(t, "payments")
	pp, pf, bind := freePort(t), freePort(t), freePort(t)
	payAdmin, frontAdmin := fmt.Sprintf("127.0.0.1:%d", freePort(t)), fmt.Sprintf("127.0.0.1:%d", freePort(t))
	registerWithAdmin(t, c, "payments", "payments-1", portOf(t, pay), pp, payAdmin)
	registerWithAdmin(t, c, "frontend", "frontend-1", freePort(t), pf, frontAdmin, api.Upstream{DestinationName: "payments", LocalBindPort: bind})
	adminSidecar(t, cp, "payments-1-sidecar-proxy", "payments", payAdmin)
	adminSidecar(t, cp, "frontend-1-sidecar-proxy", "frontend", frontAdmin)

	hc := &http.Client{Timeout: 5 * time.Second}
	url := fmt.Sprintf("http://127.0.0.1:%d/", bind)
	eventually(t, hc, url, 20*time.Second, []string{"payments"})

	// Both proxies connected, with ACKed versions; both sidecars scraped.
	waitState(t, base(web), "both proxies connected with ACKed listeners and clusters", 10*time.Second, func(st dashboard.State) bool {
		acked := 0
		for _, n := range st.Proxies {
			if n.Acked["listener"] != "" && n.Acked["cluster"] != "" {
				acked++
			}
		}
		p := findService(st, "payments")
		return acked == 2 && p != nil && len(p.Sidecars) == 1 && p.Sidecars[0].Connected && p.Sidecars[0].Metrics == "ok" &&
			len(p.Instances) == 1 && p.Instances[0].Health == api.HealthPassing
	})

	// Each proxy shows its user agent and xDS mode (our sidecars, state of
	// the world).
	for _, n := range dashboardState(t, base(web)).Proxies {
		if n.Type != "outrigger" || n.UserAgent != "outrigger" || n.Mode != "sotw" {
			t.Errorf("proxy %s: type %q, user agent %q, xDS mode %q; want outrigger, outrigger, sotw", n.ID, n.Type, n.UserAgent, n.Mode)
		}
	}

	// Traffic through the sidecars shows as a rate and percentiles at
	// payments (its sidecar's inbound listener).
	stop := make(chan struct{})
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		for {
			select {
			case <-stop:
				return
			default:
				tally(hc, url, 5)
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	st, _ := waitState(t, base(web), "payments traffic", 15*time.Second, func(st dashboard.State) bool {
		p := findService(st, "payments")
		return p != nil && p.Traffic != nil && p.Traffic.RequestRate > 0 && p.Traffic.P50 != nil && p.Traffic.P99 != nil
	})
	close(stop)
	<-trafficDone
	tr := findService(st, "payments").Traffic
	t.Logf("payments: %.1f req/s, %.1f%% 5xx, p50 %.2f ms, p99 %.2f ms over %.1f s",
		tr.RequestRate, tr.ErrorRate*100, *tr.P50*1000, *tr.P99*1000, tr.WindowSeconds)
	if tr.ErrorRate != 0 || *tr.P50 <= 0 || *tr.P99 < *tr.P50 {
		t.Errorf("payments traffic = %+v", tr)
	}

	// A newly registered service appears within the bound.
	orders := app(t, "orders")
	ordersAdmin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	registerWithAdmin(t, c, "orders", "orders-1", portOf(t, orders), freePort(t), ordersAdmin)
	_, took := waitState(t, base(web), "the new service orders", dashboardAppearsWithin, func(st dashboard.State) bool {
		o := findService(st, "orders")
		return o != nil && len(o.Instances) == 1 && len(o.Sidecars) == 1
	})
	t.Logf("orders appeared in /api/state after %v", took)
	// Its sidecar is not running: unreachable, not an error.
	st = dashboardState(t, base(web))
	if o := findService(st, "orders"); !strings.HasPrefix(o.Sidecars[0].Metrics, "unreachable") || o.Sidecars[0].Connected {
		t.Errorf("orders sidecar (not started): %+v", o.Sidecars[0])
	}

	t.Run("chromium", func(t *testing.T) { browse(t, base(web), "orders") })
}

func base(s *httptest.Server) string { return s.URL }

// browse loads the page in headless Chromium, checks the rendered DOM names
// want, and saves a screenshot in t.TempDir() (and at
// $DASHBOARD_SCREENSHOT when set, e.g. docs/dashboard.png).
func browse(t *testing.T, url, want string) {
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("chromium is not installed (apt-get install -y chromium): the browser check is skipped")
	}
	run := func(args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
			"--disable-component-update", "--disable-sync", "--user-data-dir=" + t.TempDir(), "--window-size=1200,800",
			"--virtual-time-budget=3000"}
		cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", bin, args, err, stderr.String())
		}
		return out
	}
	dom := string(run("--dump-dom", url+"/"))
	if !strings.Contains(dom, "<b>"+want+"</b>") || !strings.Contains(dom, "<b>payments</b>") {
		t.Fatalf("the page in Chromium does not list %q and payments:\n%s", want, dom)
	}
	if !strings.Contains(dom, `<td class="agent">outrigger`) || !strings.Contains(dom, `<td class="mode">sotw</td>`) {
		t.Errorf("the page in Chromium does not show the proxies' user agent and xDS mode:\n%s", dom)
	}
	shot := filepath.Join(t.TempDir(), "dashboard.png")
	run("--screenshot="+shot, url+"/")
	fi, err := os.Stat(shot)
	if err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", shot, err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, fi.Size())
	if dst := os.Getenv("DASHBOARD_SCREENSHOT"); dst != "" {
		b, err := os.ReadFile(shot)
		if err == nil {
			err = os.WriteFile(dst, b, 0o644)
		}
		if err != nil {
			t.Errorf("copy the screenshot to %s: %v", dst, err)
		}
	}
}
