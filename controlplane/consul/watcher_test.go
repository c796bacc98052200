package consul

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
	"github.com/outrigger-mesh/outrigger/internal/consultest"
)

func TestSidecarsUpstreamsAndHealth(t *testing.T) {
	agent := consultest.Start(t)
	log, _ := newTestLogger(t)
	w := NewWatcher(agent.Client, testOptions(log))
	rec := newRecorder(t)
	runWatcher(t, w, rec)

	registerWeb(t, agent.Client, "web-1", "v1", 8080, api.Upstream{DestinationName: "api", LocalBindPort: 9191})
	m := rec.waitFor("with web-1, its sidecar and a trust domain", func(m *model.Mesh) bool {
		web := m.Services["web"]
		return web != nil && len(web.Instances) == 1 && len(web.Sidecars) == 1 &&
			m.Proxies["web-1-sidecar-proxy"] != nil && m.TrustDomain != ""
	})
	if !w.Up() {
		t.Error("Up() = false while Consul answers")
	}
	if m.Datacenter != "dc1" || m.Index == 0 {
		t.Errorf("Datacenter = %q, Index = %d; want dc1 and a Consul index", m.Datacenter, m.Index)
	}
	p := m.Proxies["web-1-sidecar-proxy"]
	if p.ServiceProxy == nil || p.ServiceProxy.DestinationServiceName != "web" || p.ServiceProxy.DestinationServiceID != "web-1" {
		t.Fatalf("sidecar proxy config = %+v, want destination web/web-1", p.ServiceProxy)
	}
	if ups := p.ServiceProxy.Upstreams; len(ups) != 1 || ups[0].DestinationName != "api" || ups[0].LocalBindPort != 9191 {
		t.Errorf("upstreams = %+v, want api on 9191", ups)
	}
	if _, ok := m.Services["web-1-sidecar-proxy"]; ok {
		t.Error("the sidecar proxy is listed as a service")
	}
	if _, ok := m.Services["consul"]; !ok {
		t.Error(`Services lacks "consul", which the catalog holds`)
	}
	web := m.Services["web"]
	if web.Instances[0].Service.ID != "web-1" || web.Instances[0].Service.Port != 8080 || web.Sidecars[0].Service.ID != "web-1-sidecar-proxy" {
		t.Errorf("web = %v | %v", ids(web.Instances), ids(web.Sidecars))
	}

	// Two more instances: sorted by node then ID.
	registerWeb(t, agent.Client, "web-3", "v1", 8083)
	registerWeb(t, agent.Client, "web-2", "v1", 8082)
	m = rec.waitFor("with three web instances", func(m *model.Mesh) bool {
		web := m.Services["web"]
		return web != nil && len(web.Instances) == 3 && len(web.Sidecars) == 3
	})
	if got := ids(m.Services["web"].Instances); !slices.Equal(got, []string{"web-1", "web-2", "web-3"}) {
		t.Errorf("instances = %v, want sorted", got)
	}
	if got := ids(m.Services["web"].Sidecars); !slices.Equal(got, []string{"web-1-sidecar-proxy", "web-2-sidecar-proxy", "web-3-sidecar-proxy"}) {
		t.Errorf("sidecars = %v, want sorted", got)
	}

	// A failing check takes the instance and, through the alias check, its
	// sidecar out of the passing lists. Both figures include Consul's own
	// anti-entropy sync of the agent's check, which can lag a second or two
	// (see TestHealthChangeLatency for the watcher's part alone).
	start := time.Now()
	if err := agent.Client.Agent().UpdateTTL("ttl-web-2", "down", api.HealthCritical); err != nil {
		t.Fatal(err)
	}
	rec.waitFor("without the web-2 instance", func(m *model.Mesh) bool {
		web := m.Services["web"]
		return web != nil && !slices.Contains(ids(web.Instances), "web-2")
	})
	instanceGone := time.Since(start)
	m = rec.waitFor("without web-2 and its sidecar", func(m *model.Mesh) bool {
		web := m.Services["web"]
		return web != nil && !slices.Contains(ids(web.Instances), "web-2") && !slices.Contains(ids(web.Sidecars), "web-2-sidecar-proxy")
	})
	t.Logf("failed TTL check to a published mesh without the instance: %v; without its sidecar too: %v", instanceGone, time.Since(start))
	if got := ids(m.Services["web"].Instances); !slices.Equal(got, []string{"web-1", "web-3"}) {
		t.Errorf("instances = %v", got)
	}
	if m.Proxies["web-2-sidecar-proxy"] == nil {
		t.Error("a critical proxy left Proxies: it is still registered")
	}
	if err := agent.Client.Agent().UpdateTTL("ttl-web-2", "up", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	rec.waitFor("with web-2 passing again", func(m *model.Mesh) bool {
		return m.Services["web"] != nil && len(m.Services["web"].Instances) == 3 && len(m.Services["web"].Sidecars) == 3
	})

	for _, id := range []string{"web-1", "web-2", "web-3"} {
		if err := agent.Client.Agent().ServiceDeregister(id); err != nil {
			t.Fatal(err)
		}
	}
	m = rec.waitFor("without web and its proxies", func(m *model.Mesh) bool {
		return m.Services["web"] == nil && len(m.Proxies) == 0
	})
	if _, ok := m.Services["consul"]; !ok {
		t.Error("consul left Services with web")
	}
	if !w.Up() {
		t.Error("Up() = false")
	}
}

// TestHealthChangeLatency measures the watcher's own delay: a check written
// straight into the catalog (an external node, so no agent anti-entropy sits
// in between) reaches a published mesh well within 2 s.
func TestHealthChangeLatency(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client
	log, _ := newTestLogger(t)
	w := NewWatcher(c, testOptions(log))
	rec := newRecorder(t)
	runWatcher(t, w, rec)

	register := func(status string) {
		t.Helper()
		regs := []*api.CatalogRegistration{
			{Node: "ext-1", Address: "127.0.0.2", Service: &api.AgentService{ID: "pay-1", Service: "pay", Port: 7000},
				Check: &api.AgentCheck{Node: "ext-1", CheckID: "node-ok", Name: "node ok", Status: status}},
			{Node: "ext-1", Address: "127.0.0.2", Service: &api.AgentService{ID: "pay-1-sidecar-proxy", Service: "pay-sidecar-proxy",
				Kind: api.ServiceKindConnectProxy, Port: 21000,
				Proxy: &api.AgentServiceConnectProxyConfig{DestinationServiceName: "pay", DestinationServiceID: "pay-1"}}},
		}
		for _, r := range regs {
			if _, err := c.Catalog().Register(r, nil); err != nil {
				t.Fatalf("catalog register %s: %v", r.Service.ID, err)
			}
		}
	}
	register(api.HealthPassing)
	// Watches answer independently: the sidecar may be among pay's
	// Sidecars before its own name's catalog watch puts it in Proxies.
	m := rec.waitFor("with pay and its proxy", func(m *model.Mesh) bool {
		pay := m.Services["pay"]
		return pay != nil && len(pay.Instances) == 1 && len(pay.Sidecars) == 1 && m.Proxies["pay-1-sidecar-proxy"] != nil
	})
	if p := m.Proxies["pay-1-sidecar-proxy"]; p == nil || p.Node != "ext-1" || p.ServiceProxy.DestinationServiceName != "pay" {
		t.Fatalf("catalog-registered proxy = %+v", p)
	}

	start := time.Now()
	register(api.HealthCritical) // a node check fails the instance and its sidecar at once
	rec.waitFor("without pay instances", func(m *model.Mesh) bool {
		pay := m.Services["pay"]
		return pay != nil && len(pay.Instances) == 0 && len(pay.Sidecars) == 0
	})
	took := time.Since(start)
	t.Logf("failed check to a published mesh without the instance and its sidecar: %v", took)
	if took > 2*time.Second {
		t.Errorf("a failed check took %v to reach a published mesh, want under 2s", took)
	}
}

func TestConfigEntries(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client
	log, logs := newTestLogger(t)
	w := NewWatcher(c, testOptions(log))
	rec := newRecorder(t)
	runWatcher(t, w, rec)

	registerWeb(t, c, "web-1", "v1", 8081)
	registerWeb(t, c, "web-2", "v2", 8082)
	setEntry(t, c, &api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal, Config: map[string]any{"protocol": "http"}})
	m := rec.waitFor("with proxy-defaults and two web sidecars", func(m *model.Mesh) bool {
		return m.ProxyDefaults != nil && m.Services["web"] != nil && len(m.Services["web"].Sidecars) == 2
	})
	if got := m.Protocol("web"); got != "http" {
		t.Errorf(`Protocol("web") = %q from proxy-defaults, want "http"`, got)
	}

	setEntry(t, c, &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "web", Protocol: "http2"})
	setEntry(t, c, &api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: "web", DefaultSubset: "v1",
		Subsets: map[string]api.ServiceResolverSubset{
			"v1":  {Filter: `Service.Meta.version == "v1"`},
			"v2":  {Filter: `Service.Meta.version == "v2"`, OnlyPassing: true},
			"all": {},
			// Consul stores this filter but answers 500 when evaluating it.
			"bad": {Filter: `NoSuch.Field == "x"`},
		}})
	setEntry(t, c, &api.ServiceSplitterConfigEntry{Kind: api.ServiceSplitter, Name: "web", Splits: []api.ServiceSplit{
		{Weight: 90, ServiceSubset: "v1"}, {Weight: 10, ServiceSubset: "v2"}}})
	setEntry(t, c, &api.ServiceRouterConfigEntry{Kind: api.ServiceRouter, Name: "web", Routes: []api.ServiceRoute{{
		Match:       &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathPrefix: "/v2"}},
		Destination: &api.ServiceRouteDestination{ServiceSubset: "v2"},
	}}})
	// A name with config entries only (a virtual service).
	setEntry(t, c, &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "ghost", Protocol: "grpc"})

	m = rec.waitFor("with every config entry and the subsets", func(m *model.Mesh) bool {
		web := m.Services["web"]
		return web != nil && web.Defaults != nil && web.Router != nil && web.Splitter != nil && web.Resolver != nil &&
			len(web.Subsets["v1"]) == 1 && len(web.Subsets["v2"]) == 1 && len(web.Subsets["all"]) == 2 &&
			m.Services["ghost"] != nil
	})
	web := m.Services["web"]
	if got := m.Protocol("web"); got != "http2" {
		t.Errorf(`Protocol("web") = %q, want service-defaults' "http2"`, got)
	}
	if got := ids(web.Subsets["v1"]); !slices.Equal(got, []string{"web-1-sidecar-proxy"}) {
		t.Errorf("subset v1 = %v", got)
	}
	if got := ids(web.Subsets["v2"]); !slices.Equal(got, []string{"web-2-sidecar-proxy"}) {
		t.Errorf("subset v2 = %v", got)
	}
	if got := ids(web.Subsets["all"]); !slices.Equal(got, []string{"web-1-sidecar-proxy", "web-2-sidecar-proxy"}) {
		t.Errorf("subset all (no filter) = %v", got)
	}
	if bad, ok := web.Subsets["bad"]; !ok || len(bad) != 0 {
		t.Errorf("subset bad = %v (present %v), want present and empty", ids(bad), ok)
	}
	if len(web.Splitter.Splits) != 2 || web.Router.Routes[0].Destination.ServiceSubset != "v2" || web.Resolver.DefaultSubset != "v1" {
		t.Errorf("entries not as written: splitter %+v router %+v", web.Splitter, web.Router)
	}
	ghost := m.Services["ghost"]
	if ghost.Defaults == nil || len(ghost.Instances) != 0 || m.Protocol("ghost") != "grpc" {
		t.Errorf("ghost = %+v, want defaults only", ghost)
	}
	// The bad filter is the query's fault, not an outage.
	if !w.Up() || logs.count("consul unavailable") != 0 {
		t.Errorf("a refused subset query counted as an outage (Up %v):\n%s", w.Up(), logs.String())
	}
	if n := logs.count(`consul refused a query; keeping its last answer and retrying: query=health/connect/web?subset=bad`); n != 1 {
		t.Errorf("the refused subset query was logged %d times, want once", n)
	}

	// A changed filter restarts its watch.
	// A changed filter restarts its watch; a removed subset loses its own.
	setEntry(t, c, &api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: "web",
		Subsets: map[string]api.ServiceResolverSubset{
			"v1": {Filter: `Service.Meta.version == "v2"`},
			"v2": {Filter: `Service.Meta.version == "v2"`},
		}})
	m = rec.waitFor("with subset v1 refiltered", func(m *model.Mesh) bool {
		web := m.Services["web"]
		return web != nil && web.Resolver != nil && len(web.Resolver.Subsets) == 2 &&
			slices.Equal(ids(web.Subsets["v1"]), []string{"web-2-sidecar-proxy"})
	})
	if len(m.Services["web"].Subsets) != 2 {
		t.Errorf("subsets = %v, want v1 and v2", m.Services["web"].Subsets)
	}
	if slices.Contains(w.watchNames(), "health/connect/web?subset=bad") {
		t.Error("the watch of the removed subset still runs")
	}

	// Router and splitter go first: Consul checks references on delete.
	for _, k := range []string{api.ServiceRouter, api.ServiceSplitter, api.ServiceResolver, api.ServiceDefaults} {
		deleteEntry(t, c, k, "web")
	}
	deleteEntry(t, c, api.ServiceDefaults, "ghost")
	deleteEntry(t, c, api.ProxyDefaults, api.ProxyConfigGlobal)
	m = rec.waitFor("without config entries", func(m *model.Mesh) bool {
		web := m.Services["web"]
		return web != nil && web.Defaults == nil && web.Router == nil && web.Splitter == nil && web.Resolver == nil &&
			web.Subsets == nil && m.ProxyDefaults == nil && m.Services["ghost"] == nil
	})
	if got := m.Protocol("web"); got != "tcp" {
		t.Errorf(`Protocol("web") = %q with no entries, want "tcp"`, got)
	}
	for _, name := range w.watchNames() {
		if strings.Contains(name, "?subset=") {
			t.Errorf("subset watch %s still runs after its resolver was deleted", name)
		}
	}
}

func TestOutageKeepsLastMeshAndRecovers(t *testing.T) {
	agent := consultest.Start(t)
	log, logs := newTestLogger(t)
	o := testOptions(log)
	var (
		mu  sync.Mutex
		ups []bool
	)
	o.OnUp = func(up bool) {
		mu.Lock()
		ups = append(ups, up)
		mu.Unlock()
	}
	upCalls := func() []bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(ups)
	}
	w := NewWatcher(agent.Client, o)
	rec := newRecorder(t)
	runWatcher(t, w, rec)

	registerWeb(t, agent.Client, "web-1", "v1", 8081)
	setEntry(t, agent.Client, &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "web", Protocol: "http"})
	before := rec.waitFor("with web", func(m *model.Mesh) bool {
		return m.Services["web"] != nil && len(m.Services["web"].Sidecars) == 1 && m.Services["web"].Defaults != nil
	})
	published := rec.count()

	agent.Stop()
	waitUntil(t, "Up() false after the agent stopped", func() bool { return !w.Up() })
	// Every watch fails and retries through several backoff rounds. A
	// change Consul sent just before it stopped may still be published
	// (after Debounce); nothing after that.
	waitUntil(t, "watches retrying", func() bool { return w.failedQueries() >= 60 })
	during := rec.count()
	failed := w.failedQueries()
	waitUntil(t, "watches retrying more", func() bool { return w.failedQueries() >= failed+60 })
	if n := rec.count(); n != during {
		t.Fatalf("%d meshes published while every query failed, want none (last: %s)", n-during, describe(rec.last()))
	}
	for _, m := range rec.snapshot()[published:] {
		if web := m.Services["web"]; web == nil || len(web.Sidecars) != 1 || web.Defaults == nil {
			t.Fatalf("a mesh published as the outage began lost state: %s", describe(m))
		}
	}
	before = rec.last()
	if n := logs.count("consul unavailable"); n != 1 {
		t.Errorf("the outage was logged %d times, want once:\n%s", n, logs.String())
	}

	agent.Restart()
	// The dev agent restarts with its Raft state lost (lower indexes, no
	// config entries); the agent's own registrations come back by themselves.
	registerWeb(t, agent.Client, "web-9", "v9", 8089)
	m := rec.waitFor("with the restarted agent's state", func(m *model.Mesh) bool {
		web := m.Services["web"]
		return web != nil && slices.Contains(ids(web.Instances), "web-9") && web.Defaults == nil && m.TrustDomain != ""
	})
	if !w.Up() {
		t.Error("Up() = false after recovery")
	}
	if m.Index < before.Index {
		t.Errorf("Index went back from %d to %d across the restart", before.Index, m.Index)
	}
	if got := upCalls(); !slices.Equal(got, []bool{true, false, true}) {
		t.Errorf("OnUp calls = %v, want [true false true]", got)
	}
	if n := logs.count("consul answers again"); n != 1 {
		t.Errorf("recovery logged %d times, want once", n)
	}
	if n := logs.count("consul unavailable"); n != 1 {
		t.Errorf("the outage was logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestFrozenConsulTimesOut(t *testing.T) {
	agent := consultest.Start(t)
	log, logs := newTestLogger(t)
	o := testOptions(log)
	o.WaitTime, o.RequestTimeout = time.Second, 500*time.Millisecond
	w := NewWatcher(agent.Client, o)
	rec := newRecorder(t)
	runWatcher(t, w, rec)
	rec.waitFor("at all", func(*model.Mesh) bool { return true })

	// A stopped process still has its sockets: connections are accepted
	// by the kernel and never answered, so only the request timeout helps.
	if err := agent.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "Up() false while the agent is frozen", func() bool { return !w.Up() })
	if !strings.Contains(logs.String(), "context deadline exceeded") {
		t.Errorf("the outage log does not name the timeout:\n%s", logs.String())
	}
	if err := agent.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "Up() true after the agent resumed", w.Up)
}

func TestConsulDownAtStart(t *testing.T) {
	agent := consultest.Start(t)
	registerWeb(t, agent.Client, "web-1", "v1", 8081)
	agent.Stop() // the registration is persisted and comes back on Restart

	log, logs := newTestLogger(t)
	o := testOptions(log)
	var ups []bool
	var mu sync.Mutex
	o.OnUp = func(up bool) { mu.Lock(); ups = append(ups, up); mu.Unlock() }
	w := NewWatcher(agent.Client, o)
	rec := newRecorder(t)
	runWatcher(t, w, rec)

	waitUntil(t, "watches retrying", func() bool { return w.failedQueries() >= 60 })
	if w.Up() || rec.count() != 0 {
		t.Fatalf("Up() = %v, %d meshes published with Consul down, want false and none", w.Up(), rec.count())
	}
	if n := logs.count("consul unavailable"); n != 1 {
		t.Errorf("the outage was logged %d times, want once", n)
	}

	agent.Restart()
	// The persisted TTL check comes back critical.
	if err := agent.Client.Agent().UpdateTTL("ttl-web-1", "", api.HealthPassing); err != nil {
		t.Fatal(err)
	}
	m := rec.waitFor("with web", func(m *model.Mesh) bool {
		return m.Services["web"] != nil && len(m.Services["web"].Instances) == 1
	})
	if m.Datacenter != "dc1" || !w.Up() {
		t.Errorf("Datacenter = %q, Up() = %v", m.Datacenter, w.Up())
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(ups, []bool{true}) {
		t.Errorf("OnUp calls = %v, want [true] (Up() starts false)", ups)
	}
}

func TestRunStopsPromptlyAndLeavesNoGoroutines(t *testing.T) {
	agent := consultest.Start(t)
	client, tr := newClient(t, agent.Addr)
	registerWeb(t, client, "web-1", "v1", 8081)
	setEntry(t, client, &api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: "web",
		Subsets: map[string]api.ServiceResolverSubset{"v1": {Filter: `Service.Meta.version == "v1"`}}})
	tr.CloseIdleConnections()
	baseline := runtime.NumGoroutine()

	log, _ := newTestLogger(t)
	o := testOptions(log)
	o.WaitTime = time.Minute // returning promptly proves queries are cancelled, not waited out
	w := NewWatcher(client, o)
	rec := newRecorder(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, rec.publish) }()
	rec.waitFor("with subsets", func(m *model.Mesh) bool {
		return m.Services["web"] != nil && len(m.Services["web"].Subsets["v1"]) == 1
	})
	if n := runtime.NumGoroutine(); n < baseline+10 {
		t.Fatalf("%d goroutines while running (baseline %d): the watches are not running?", n, baseline)
	}

	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
	t.Logf("Run returned %v after cancel", time.Since(start))
	if err := w.Run(context.Background(), rec.publish); !errors.Is(err, ErrRunTwice) {
		t.Errorf("second Run = %v, want ErrRunTwice", err)
	}

	waitUntil(t, "goroutines back to the baseline", func() bool {
		tr.CloseIdleConnections()
		return runtime.NumGoroutine() <= baseline
	})
}

// waitUntil polls cond until it holds, failing after waitLimit.
func waitUntil(t *testing.T, desc string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", desc, waitLimit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// watchNames lists the running watches.
func (w *Watcher) watchNames() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var names []string
	for wt := range w.st.watches {
		names = append(names, wt.name)
	}
	slices.Sort(names)
	return names
}

// failedQueries counts the queries that failed so far.
func (w *Watcher) failedQueries() uint64 { return w.failed.Load() }
