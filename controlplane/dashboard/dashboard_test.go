package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/server"
)

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	// 10 observations <= 0.1, 10 more in (0.1, 0.2], none above.
	b := []bucket{{0.1, 10}, {0.2, 20}, {inf, 20}}
	for _, tc := range []struct {
		name    string
		q       float64
		buckets []bucket
		want    float64
		ok      bool
	}{
		{"median at the first bound", 0.5, b, 0.1, true},
		{"interpolated in the first bucket", 0.25, b, 0.05, true},
		{"interpolated in the second bucket", 0.75, b, 0.15, true},
		{"p99", 0.99, b, 0.198, true},
		{"rank in +Inf gives the highest finite bound", 0.99, []bucket{{0.1, 5}, {inf, 10}}, 0.1, true},
		{"empty buckets skipped", 0.5, []bucket{{0.1, 0}, {0.2, 0}, {0.4, 4}, {inf, 4}}, 0.3, true},
		{"no observations", 0.5, []bucket{{0.1, 0}, {inf, 0}}, 0, false},
		{"no buckets", 0.5, nil, 0, false},
		{"no +Inf bucket", 0.5, []bucket{{0.1, 3}}, 0, false},
		{"only +Inf", 0.5, []bucket{{inf, 3}}, 0, false},
		{"q above 1", 1.5, b, 0, false},
		{"q below 0", -0.1, b, 0, false},
		{"q NaN", math.NaN(), b, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := quantile(tc.q, tc.buckets)
			if ok != tc.ok || math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("quantile(%v) = %v, %v; want %v, %v", tc.q, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// metricsText is a sidecar's page: ok 2xx and bad 5xx requests on the
// public listener, all in the 1-2.5 ms bucket, plus noise on another listener.
func metricsText(ok, bad int) string {
	var sb strings.Builder
	sb.WriteString("# HELP outrigger_downstream_rq_total x\n# TYPE outrigger_downstream_rq_total counter\n")
	fmt.Fprintf(&sb, "outrigger_downstream_rq_total{code_class=\"2xx\",listener=\"public_listener\"} %d\n", ok)
	fmt.Fprintf(&sb, "outrigger_downstream_rq_total{code_class=\"5xx\",listener=\"public_listener\"} %d\n", bad)
	sb.WriteString("outrigger_downstream_rq_total{code_class=\"2xx\",listener=\"upstream_x\"} 1000\n")
	sb.WriteString("# HELP outrigger_downstream_rq_duration_seconds x\n# TYPE outrigger_downstream_rq_duration_seconds histogram\n")
	n := ok + bad
	for _, l := range []struct {
		le string
		n  int
	}{{"0.001", 0}, {"0.0025", n}, {"+Inf", n}} {
		fmt.Fprintf(&sb, "outrigger_downstream_rq_duration_seconds_bucket{listener=\"public_listener\",le=%q} %d\n", l.le, l.n)
	}
	fmt.Fprintf(&sb, "outrigger_downstream_rq_duration_seconds_sum{listener=\"public_listener\"} %g\n", float64(n)*0.002)
	fmt.Fprintf(&sb, "outrigger_downstream_rq_duration_seconds_count{listener=\"public_listener\"} %d\n", n)
	sb.WriteString("outrigger_downstream_rq_duration_seconds_bucket{listener=\"upstream_x\",le=\"+Inf\"} 1000\n")
	sb.WriteString("outrigger_downstream_rq_duration_seconds_count{listener=\"upstream_x\"} 1000\n")
	return sb.String()
}

func TestParseSample(t *testing.T) {
	s, err := parseSample(strings.NewReader(metricsText(30, 10)), "public_listener")
	if err != nil {
		t.Fatal(err)
	}
	if s.byClass["2xx"] != 30 || s.byClass["5xx"] != 10 || s.total() != 40 {
		t.Errorf("counts = %v", s.byClass)
	}
	want := []bucket{{0.001, 0}, {0.0025, 40}, {math.Inf(1), 40}}
	if fmt.Sprint(s.buckets) != fmt.Sprint(want) {
		t.Errorf("buckets = %v, want %v (+Inf counted once)", s.buckets, want)
	}
	if _, err := parseSample(strings.NewReader("not { metrics"), "public_listener"); err == nil {
		t.Error("garbage parsed without an error")
	}
}

func TestDeltaRefusesCounterResets(t *testing.T) {
	a, _ := parseSample(strings.NewReader(metricsText(30, 10)), "public_listener")
	b, _ := parseSample(strings.NewReader(metricsText(50, 10)), "public_listener")
	d, ok := delta(a, b)
	if !ok || d.total() != 20 || d.byClass["5xx"] != 0 {
		t.Fatalf("delta = %v, %v", d.byClass, ok)
	}
	if _, ok := delta(b, a); ok {
		t.Error("a counter going down gave a delta")
	}
	gone := sample{byClass: map[string]float64{}}
	if _, ok := delta(a, gone); ok {
		t.Error("a class disappearing gave a delta")
	}
}

// fakeCatalog is a Catalog in memory.
type fakeCatalog struct {
	mu      sync.Mutex
	entries []*api.ServiceEntry
	err     error
}

func (f *fakeCatalog) Entries(context.Context) ([]*api.ServiceEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.entries, f.err
}

func entry(kind api.ServiceKind, name, id string, port int, status string, meta map[string]string, dest string) *api.ServiceEntry {
	svc := &api.AgentService{Kind: kind, Service: name, ID: id, Address: "127.0.0.1", Port: port, Meta: meta}
	if dest != "" {
		svc.Proxy = &api.AgentServiceConnectProxyConfig{DestinationServiceName: dest}
	}
	return &api.ServiceEntry{Node: &api.Node{Node: "n1", Address: "10.0.0.1"}, Service: svc,
		Checks: api.HealthChecks{{Name: "c", Status: status, Output: "out"}}}
}

// admin is a sidecar admin stand-in whose counters the test sets.
type admin struct {
	mu      sync.Mutex
	ok, bad int
}

func (a *admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/stats/prometheus" {
		http.NotFound(w, r)
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	fmt.Fprint(w, metricsText(a.ok, a.bad))
}

func (a *admin) set(ok, bad int) {
	a.mu.Lock()
	a.ok, a.bad = ok, bad
	a.mu.Unlock()
}

func getState(t *testing.T, url string) State {
	t.Helper()
	resp, err := http.Get(url + "/api/state")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/state: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var st State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestHandler(t *testing.T) {
	adm := &admin{}
	adm.set(100, 0)
	admSrv := httptest.NewServer(adm)
	defer admSrv.Close()
	// A port nothing listens on: the dead sidecar.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()

	adminOf := func(u string) map[string]string {
		return map[string]string{AdminMetaKey: strings.TrimPrefix(u, "http://")}
	}
	cat := &fakeCatalog{entries: []*api.ServiceEntry{
		entry("", "web", "web-1", 8080, api.HealthPassing, nil, ""),
		entry("", "web", "web-2", 8081, api.HealthCritical, nil, ""),
		entry(api.ServiceKindConnectProxy, "web-sidecar-proxy", "web-1-sidecar-proxy", 21000, api.HealthPassing, adminOf(admSrv.URL), "web"),
		entry(api.ServiceKindConnectProxy, "web-sidecar-proxy", "web-2-sidecar-proxy", 21001, api.HealthPassing, adminOf(dead), "web"),
		entry("", "db", "db-1", 5432, api.HealthWarning, nil, ""),
		entry(api.ServiceKindConnectProxy, "db-sidecar-proxy", "db-1-sidecar-proxy", 21002, api.HealthPassing, nil, "db"),
		entry(api.ServiceKindConnectProxy, "api-sidecar-proxy", "api-1-sidecar-proxy", 21003, api.HealthPassing, adminOf(notFound.URL), "api"),
		entry(api.ServiceKindMeshGateway, "gw", "gw-1", 443, api.HealthPassing, nil, ""),
		{Service: nil},
	}}
	nack := server.NACK{Node: "web-1-sidecar-proxy", Type: "type.googleapis.com/envoy.config.listener.v3.Listener",
		Version: "7", Error: "bad listener", Time: time.Now()}
	status := func() server.Status {
		return server.Status{Ready: true, MeshIndex: 42, LastNACKs: []server.NACK{nack},
			Nodes: []server.NodeStatus{{ID: "web-1-sidecar-proxy", Kind: "sidecar", Type: "envoy", UserAgent: "envoy",
				UserAgentVersion: "1.36.2", Mode: "delta", Acked: map[string]string{"listener": "6"}, LastNACK: &nack}}}
	}
	d := New(Options{Catalog: cat, Status: status, Refresh: time.Nanosecond, ScrapeTimeout: 2 * time.Second})
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()

	st := getState(t, srv.URL)
	if !st.Ready || st.MeshIndex != 42 || len(st.Proxies) != 1 || len(st.NACKs) != 1 || st.Proxies[0].LastNACK.Error != "bad listener" {
		t.Errorf("xDS status not carried: %+v", st)
	}
	if p := st.Proxies[0]; p.UserAgent != "envoy" || p.UserAgentVersion != "1.36.2" || p.Mode != "delta" || p.Type != "envoy" {
		t.Errorf("proxy user agent and xDS mode not carried: %+v", p)
	}
	var names []string
	for _, s := range st.Services {
		names = append(names, s.Name)
	}
	if fmt.Sprint(names) != "[api db web]" {
		t.Fatalf("services = %v, want [api db web] (sorted, gateways left out, sidecar-only services kept)", names)
	}
	web := st.Services[2]
	if len(web.Instances) != 2 || web.Instances[0].Health != api.HealthPassing || web.Instances[1].Health != api.HealthCritical ||
		web.Instances[0].Node != "n1" || web.Instances[0].Checks[0].Output != "out" {
		t.Errorf("web instances = %+v", web.Instances)
	}
	if len(web.Sidecars) != 2 || web.Sidecars[0].Metrics != "ok" || !web.Sidecars[0].Connected ||
		!strings.HasPrefix(web.Sidecars[1].Metrics, "unreachable: ") || web.Sidecars[1].Connected {
		t.Errorf("web sidecars = %+v", web.Sidecars)
	}
	if m := st.Services[1].Sidecars[0].Metrics; !strings.HasPrefix(m, "no admin address") {
		t.Errorf("db sidecar without meta: metrics = %q", m)
	}
	if m := st.Services[0].Sidecars[0].Metrics; !strings.Contains(m, "404") {
		t.Errorf("api sidecar answering 404: metrics = %q", m)
	}
	if web.Traffic != nil {
		t.Errorf("traffic after one scrape = %+v, want none", web.Traffic)
	}

	// 100 more requests, a quarter 5xx: a rate, an error share, percentiles.
	time.Sleep(20 * time.Millisecond) // a measurable window between two scrapes
	adm.set(175, 25)
	web = getState(t, srv.URL).Services[2]
	tr := web.Traffic
	if tr == nil || tr.Requests != 100 || tr.ErrorRate != 0.25 || tr.RequestRate <= 0 || tr.WindowSeconds <= 0 {
		t.Fatalf("traffic = %+v", tr)
	}
	if tr.P50 == nil || *tr.P50 <= 0.001 || *tr.P50 > 0.0025 || tr.P99 == nil || *tr.P99 > 0.0025 {
		t.Errorf("percentiles = %v, %v; want within the 1-2.5 ms bucket", tr.P50, tr.P99)
	}

	// A restarted sidecar (counters down) shows no traffic rather than a negative one.
	adm.set(1, 0)
	if tr := getState(t, srv.URL).Services[2].Traffic; tr != nil {
		t.Errorf("traffic across a counter reset = %+v", tr)
	}

	// Consul down: still 200, with the error, and the proxies.
	cat.mu.Lock()
	cat.err = errors.New("connection refused")
	cat.mu.Unlock()
	st = getState(t, srv.URL)
	if st.ConsulError != "connection refused" || len(st.Services) != 0 || len(st.Proxies) != 1 {
		t.Errorf("with Consul down: %+v", st)
	}
}

func TestStateIsCachedForRefresh(t *testing.T) {
	cat := &fakeCatalog{}
	d := New(Options{Catalog: cat, Refresh: time.Hour})
	first := d.State(context.Background())
	cat.mu.Lock()
	cat.entries = []*api.ServiceEntry{entry("", "web", "web-1", 1, api.HealthPassing, nil, "")}
	cat.mu.Unlock()
	if again := d.State(context.Background()); again != first || len(again.Services) != 0 {
		t.Errorf("state rebuilt within Refresh")
	}
}

func TestPageIsSelfContained(t *testing.T) {
	srv := httptest.NewServer(New(Options{Catalog: &fakeCatalog{}}).Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	page := string(body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(page, "api/state") {
		t.Fatalf("GET /: %s %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	for _, external := range []string{"http://", "https://", "//cdn", "src=\"http"} {
		if strings.Contains(page, external) {
			t.Errorf("page refers to %q: assets must be embedded", external)
		}
	}
	resp, err = http.Get(srv.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("GET /nope: %s, want 404", resp.Status)
	}
}

func TestScrapeErrors(t *testing.T) {
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, "this is { not metrics")
	}))
	defer garbage.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer slow.Close()
	d := New(Options{Catalog: &fakeCatalog{}, ScrapeTimeout: 100 * time.Millisecond})
	for _, tc := range []struct{ admin, want string }{
		{strings.TrimPrefix(garbage.URL, "http://"), "parse metrics"},
		{strings.TrimPrefix(slow.URL, "http://"), "deadline exceeded"},
		{"127.0.0.1:bad port", "invalid port"},
	} {
		if _, err := d.scrape(context.Background(), tc.admin); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("scrape %q: %v, want an error with %q", tc.admin, err, tc.want)
		}
	}
}

func TestConsulCatalogUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := api.NewClient(&api.Config{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ConsulCatalog(c).Entries(context.Background()); err == nil || !strings.Contains(err.Error(), "consul catalog services") {
		t.Errorf("Entries from a closed port: %v", err)
	}
}

func TestConsulCatalogHealthError(t *testing.T) {
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/catalog/services" {
			fmt.Fprint(w, `{"consul":[],"web":[]}`)
			return
		}
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer fake.Close()
	c, err := api.NewClient(&api.Config{Address: strings.TrimPrefix(fake.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ConsulCatalog(c).Entries(context.Background()); err == nil || !strings.Contains(err.Error(), `consul health service "web"`) {
		t.Errorf("Entries with a failing health query: %v", err)
	}
}
