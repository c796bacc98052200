package translate

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/hashicorp/consul/api"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

func ptr[T any](v T) *T { return &v }

// withUpstreamConfig gives web (baseMesh's downstream) a service-defaults
// holding uc.
func withUpstreamConfig(m *model.Mesh, uc *api.UpstreamConfiguration) {
	svc(m, "web").Defaults = &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "web", UpstreamConfig: uc}
}

// clusterNamed returns r's cluster name, failing the test without it.
func clusterNamed(t *testing.T, r *Resources, name string) *clusterv3.Cluster {
	t.Helper()
	for _, c := range r.Clusters {
		if c.GetName() == name {
			return c
		}
	}
	t.Fatalf("no cluster %q", name)
	return nil
}

// resilience is the part of a cluster that upstream settings decide, as
// compact JSON.
func resilience(t *testing.T, c *clusterv3.Cluster) string {
	t.Helper()
	part := &clusterv3.Cluster{
		ConnectTimeout:   c.GetConnectTimeout(),
		CircuitBreakers:  c.GetCircuitBreakers(),
		OutlierDetection: c.GetOutlierDetection(),
	}
	b, err := protojson.Marshal(part)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(string(b)), "")
}

// TestUpstreamSettings: which layer of Consul's resolution wins, key by
// key, and how each value becomes an Envoy field (Consul's
// makeThresholdsIfNeeded and ToOutlierDetection).
func TestUpstreamSettings(t *testing.T) {
	defaults := &api.UpstreamConfig{
		ConnectTimeoutMs:   2500,
		Limits:             &api.UpstreamLimits{MaxConnections: ptr(100), MaxPendingRequests: ptr(50)},
		PassiveHealthCheck: &api.PassiveHealthCheck{Interval: 5 * time.Second, MaxFailures: 3},
	}
	cases := []struct {
		name   string
		mutate func(m *model.Mesh)
		want   string
	}{
		{"nothing configured: outlier detection on with Envoy's defaults", func(*model.Mesh) {},
			`{"connectTimeout":"5s","outlierDetection":{}}`},
		{"defaults", func(m *model.Mesh) { withUpstreamConfig(m, &api.UpstreamConfiguration{Defaults: defaults}) },
			`{"connectTimeout":"2.500s","circuitBreakers":{"thresholds":[{"maxConnections":100,"maxPendingRequests":50}]},"outlierDetection":{"interval":"5s","consecutive5xx":3}}`},
		{"override replaces limits whole, keeps the defaults' other keys", func(m *model.Mesh) {
			withUpstreamConfig(m, &api.UpstreamConfiguration{Defaults: defaults, Overrides: []*api.UpstreamConfig{
				{Name: "api", Limits: &api.UpstreamLimits{MaxConcurrentRequests: ptr(2)}},
			}})
		}, `{"connectTimeout":"2.500s","circuitBreakers":{"thresholds":[{"maxRequests":2}]},"outlierDetection":{"interval":"5s","consecutive5xx":3}}`},
		{"overrides for others, a peer or another namespace do not apply", func(m *model.Mesh) {
			withUpstreamConfig(m, &api.UpstreamConfiguration{Overrides: []*api.UpstreamConfig{
				{Name: "cache", ConnectTimeoutMs: 1},
				{Name: "api", Peer: "p", ConnectTimeoutMs: 2},
				{Name: "api", Namespace: "other", ConnectTimeoutMs: 3},
				{Name: "api", Partition: "other", ConnectTimeoutMs: 4},
				nil,
			}})
		}, `{"connectTimeout":"5s","outlierDetection":{}}`},
		{"the last override of a name wins; the default namespace matches", func(m *model.Mesh) {
			withUpstreamConfig(m, &api.UpstreamConfiguration{Overrides: []*api.UpstreamConfig{
				{Name: "api", ConnectTimeoutMs: 100},
				{Name: "api", Namespace: "default", Partition: "default", ConnectTimeoutMs: 200},
			}})
		}, `{"connectTimeout":"0.200s","outlierDetection":{}}`},
		{"upstream connect timeout over the resolver's", func(m *model.Mesh) {
			svc(m, "api").Resolver = resolver("api", func(r *api.ServiceResolverConfigEntry) { r.ConnectTimeout = 3 * time.Second })
			withUpstreamConfig(m, &api.UpstreamConfiguration{Defaults: &api.UpstreamConfig{ConnectTimeoutMs: 700}})
		}, `{"connectTimeout":"0.700s","outlierDetection":{}}`},
		{"resolver connect timeout when the upstream sets none", func(m *model.Mesh) {
			svc(m, "api").Resolver = resolver("api", func(r *api.ServiceResolverConfigEntry) { r.ConnectTimeout = 3 * time.Second })
			withUpstreamConfig(m, &api.UpstreamConfiguration{Defaults: &api.UpstreamConfig{ConnectTimeoutMs: -1}})
		}, `{"connectTimeout":"3s","outlierDetection":{}}`},
		{"empty limits: no thresholds", func(m *model.Mesh) {
			withUpstreamConfig(m, &api.UpstreamConfiguration{Defaults: &api.UpstreamConfig{Limits: &api.UpstreamLimits{}}})
		}, `{"connectTimeout":"5s","outlierDetection":{}}`},
		{"zero MaxFailures sets no consecutive_5xx; explicit zero percentages stay", func(m *model.Mesh) {
			withUpstreamConfig(m, &api.UpstreamConfiguration{Defaults: &api.UpstreamConfig{PassiveHealthCheck: &api.PassiveHealthCheck{
				EnforcingConsecutive5xx: ptr(uint32(0)), MaxEjectionPercent: ptr(uint32(0)), BaseEjectionTime: ptr(time.Second),
			}}})
		}, `{"connectTimeout":"5s","outlierDetection":{"baseEjectionTime":"1s","enforcingConsecutive5xx":0,"maxEjectionPercent":0}}`},
		{"the registration's keys win over the entries', whole", func(m *model.Mesh) {
			withUpstreamConfig(m, &api.UpstreamConfiguration{Defaults: defaults})
			sidecarProxy(m).Upstreams[0].Config = map[string]any{
				"connect_timeout_ms":   "1500",
				"limits":               map[string]any{"max_concurrent_requests": 9.0},
				"passive_health_check": map[string]any{"interval": "2s", "max_failures": 2.0, "enforcing_consecutive_5xx": 50.0, "max_ejection_percent": 100.0, "base_ejection_time": "45s"},
				"protocol":             "http",
			}
		}, `{"connectTimeout":"1.500s","circuitBreakers":{"thresholds":[{"maxRequests":9}]},"outlierDetection":{"interval":"2s","consecutive5xx":2,"baseEjectionTime":"45s","maxEjectionPercent":100,"enforcingConsecutive5xx":50}}`},
		{"empty registration values leave the entries' (mergo's empty values)", func(m *model.Mesh) {
			withUpstreamConfig(m, &api.UpstreamConfiguration{Defaults: defaults})
			sidecarProxy(m).Upstreams[0].Config = map[string]any{"connect_timeout_ms": 0.0, "limits": map[string]any{}, "passive_health_check": nil}
		}, `{"connectTimeout":"2.500s","circuitBreakers":{"thresholds":[{"maxConnections":100,"maxPendingRequests":50}]},"outlierDetection":{"interval":"5s","consecutive5xx":3}}`},
		{"other empty values count as unset", func(m *model.Mesh) {
			sidecarProxy(m).Upstreams[0].Config = map[string]any{"connect_timeout_ms": "", "limits": false}
		}, `{"connectTimeout":"5s","outlierDetection":{}}`},
		{"what a Consul agent writes into the catalog (field names, nulls, nanoseconds)", func(m *model.Mesh) {
			sidecarProxy(m).Upstreams[0].Config = map[string]any{
				"connect_timeout_ms": 777.0,
				"limits":             map[string]any{"MaxConcurrentRequests": nil, "MaxConnections": 7.0, "MaxPendingRequests": nil},
				"passive_health_check": map[string]any{"BaseEjectionTime": 2e9, "EnforcingConsecutive5xx": 4.0, "Interval": 1e9,
					"MaxEjectionPercent": nil, "MaxFailures": 3.0},
			}
		}, `{"connectTimeout":"0.777s","circuitBreakers":{"thresholds":[{"maxConnections":7}]},"outlierDetection":{"interval":"1s","consecutive5xx":3,"baseEjectionTime":"2s","enforcingConsecutive5xx":4}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := baseMesh()
			c.mutate(m)
			r, err := Proxy(m, proxyID)
			if err != nil {
				t.Fatal(err)
			}
			cl := clusterNamed(t, r, "api")
			if got := resilience(t, cl); got != normalJSON(t, c.want) {
				t.Errorf("api cluster:\n got %s\nwant %s", got, normalJSON(t, c.want))
			}
			if p := cl.GetCommonLbConfig().GetHealthyPanicThreshold(); p == nil || p.GetValue() != 0 {
				t.Errorf("healthy_panic_threshold %v, want an explicit 0 (Consul disables panic mode)", p)
			}
		})
	}
}

// normalJSON re-encodes want the way resilience encodes a cluster.
func normalJSON(t *testing.T, want string) string {
	t.Helper()
	c := &clusterv3.Cluster{}
	if err := protojson.Unmarshal([]byte(want), c); err != nil {
		t.Fatalf("%s: %v", want, err)
	}
	return resilience(t, c)
}

// TestUpstreamSettingsErrors: every value Consul would pass on to an Envoy
// that refuses it (or that our proxy refuses) is an error naming the entry,
// or the proxy, upstream and key.
func TestUpstreamSettingsErrors(t *testing.T) {
	entry := func(uc *api.UpstreamConfig) func(m *model.Mesh) {
		return func(m *model.Mesh) { withUpstreamConfig(m, &api.UpstreamConfiguration{Defaults: uc}) }
	}
	override := func(uc *api.UpstreamConfig) func(m *model.Mesh) {
		uc.Name = "api"
		return func(m *model.Mesh) {
			withUpstreamConfig(m, &api.UpstreamConfiguration{Overrides: []*api.UpstreamConfig{{Name: "other"}, uc}})
		}
	}
	own := func(cfg map[string]any) func(m *model.Mesh) {
		return func(m *model.Mesh) { sidecarProxy(m).Upstreams[0].Config = cfg }
	}
	phc := func(p api.PassiveHealthCheck) *api.UpstreamConfig { return &api.UpstreamConfig{PassiveHealthCheck: &p} }
	cases := []struct {
		name    string
		mutate  func(m *model.Mesh)
		want    string
		isEntry bool
	}{
		{"connect timeout too long", entry(&api.UpstreamConfig{ConnectTimeoutMs: math.MaxInt64}),
			"UpstreamConfig.Defaults.ConnectTimeoutMs: 9223372036854775807 is out of range", true},
		{"zero limit", entry(&api.UpstreamConfig{Limits: &api.UpstreamLimits{MaxConnections: ptr(0)}}),
			"UpstreamConfig.Defaults.Limits.MaxConnections: 0 would refuse every request", true},
		{"negative limit", override(&api.UpstreamConfig{Limits: &api.UpstreamLimits{MaxPendingRequests: ptr(-1)}}),
			"UpstreamConfig.Overrides[1] (api).Limits.MaxPendingRequests: -1 is negative", true},
		{"limit too large", entry(&api.UpstreamConfig{Limits: &api.UpstreamLimits{MaxConcurrentRequests: ptr(math.MaxUint32 + 1)}}),
			"Limits.MaxConcurrentRequests: 4.294967296e+09 is out of range", true},
		{"negative interval", entry(phc(api.PassiveHealthCheck{Interval: -time.Second})),
			"PassiveHealthCheck.interval: -1s is negative", true},
		{"enforcing above 100", entry(phc(api.PassiveHealthCheck{EnforcingConsecutive5xx: ptr(uint32(101))})),
			"PassiveHealthCheck.enforcing_consecutive_5xx: 101 is not a percentage", true},
		{"ejection percent above 100", override(phc(api.PassiveHealthCheck{MaxEjectionPercent: ptr(uint32(200))})),
			"PassiveHealthCheck.max_ejection_percent: 200 is not a percentage", true},
		{"zero base ejection time", entry(phc(api.PassiveHealthCheck{BaseEjectionTime: ptr(time.Duration(0))})),
			"PassiveHealthCheck.base_ejection_time: 0s: Envoy needs a positive duration", true},

		{"connect timeout not a number", own(map[string]any{"connect_timeout_ms": "soon"}),
			`config connect_timeout_ms: "soon" is not a whole number`, false},
		{"connect timeout a fraction", own(map[string]any{"connect_timeout_ms": 1.5}),
			"config connect_timeout_ms: 1.5 is not a whole number", false},
		{"connect timeout negative", own(map[string]any{"connect_timeout_ms": -5.0}),
			"config connect_timeout_ms: -5 is out of range", false},
		{"connect timeout too long", own(map[string]any{"connect_timeout_ms": 1e20}),
			"config connect_timeout_ms: 1e+20 is out of range", false},
		{"limits not an object", own(map[string]any{"limits": "many"}),
			"config limits: many is not an object", false},
		{"limit not a number", own(map[string]any{"limits": map[string]any{"max_connections": true}}),
			"config limits.max_connections: true is not a whole number", false},
		{"limit zero", own(map[string]any{"limits": map[string]any{"MaxPendingRequests": 0.0}}),
			"config limits.max_pending_requests: 0 would refuse every request", false},
		{"limit negative", own(map[string]any{"limits": map[string]any{"max_concurrent_requests": -3.0}}),
			"config limits.max_concurrent_requests: -3 is negative", false},
		{"passive health check not an object", own(map[string]any{"passive_health_check": []any{1.0}}),
			"config passive_health_check: [1] is not an object", false},
		{"interval not a duration", own(map[string]any{"passive_health_check": map[string]any{"interval": "often"}}),
			`config passive_health_check.interval: "often" is not a duration`, false},
		{"interval a fraction of a nanosecond", own(map[string]any{"passive_health_check": map[string]any{"interval": 0.5}}),
			"config passive_health_check.interval: 0.5 is not a whole number", false},
		{"interval out of range", own(map[string]any{"passive_health_check": map[string]any{"interval": 1e30}}),
			"config passive_health_check.interval: 1e+30 is out of range", false},
		{"interval negative", own(map[string]any{"passive_health_check": map[string]any{"interval": "-1s"}}),
			"config passive_health_check.interval: -1s is negative", false},
		{"max failures negative", own(map[string]any{"passive_health_check": map[string]any{"max_failures": -1.0}}),
			"config passive_health_check.max_failures: -1 is out of range", false},
		{"max failures not a number", own(map[string]any{"passive_health_check": map[string]any{"MaxFailures": "x"}}),
			`config passive_health_check.max_failures: "x" is not a whole number`, false},
		{"enforcing not a number", own(map[string]any{"passive_health_check": map[string]any{"enforcing_consecutive_5xx": "all"}}),
			`config passive_health_check.enforcing_consecutive_5xx: "all" is not a whole number`, false},
		{"ejection percent negative", own(map[string]any{"passive_health_check": map[string]any{"max_ejection_percent": -1.0}}),
			"config passive_health_check.max_ejection_percent: -1 is out of range", false},
		{"ejection percent above 100", own(map[string]any{"passive_health_check": map[string]any{"max_ejection_percent": 101.0}}),
			"config passive_health_check.max_ejection_percent: 101 is not a percentage", false},
		{"base ejection time not a duration", own(map[string]any{"passive_health_check": map[string]any{"base_ejection_time": "later"}}),
			`config passive_health_check.base_ejection_time: "later" is not a duration`, false},
		{"base ejection time zero", own(map[string]any{"passive_health_check": map[string]any{"base_ejection_time": "0s"}}),
			"config passive_health_check.base_ejection_time: 0s: Envoy needs a positive duration", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := baseMesh()
			c.mutate(m)
			_, err := Proxy(m, proxyID)
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			var ee *EntryError
			switch {
			case c.isEntry && (!errors.As(err, &ee) || ee.Kind != kindServiceDefaults || ee.Name != "web"):
				t.Errorf("error %v is not an *EntryError naming service-defaults web", err)
			case !c.isEntry && errors.As(err, &ee):
				t.Errorf("got an EntryError %v, want a plain error", err)
			case !c.isEntry && !strings.HasPrefix(err.Error(), `translate: proxy "web-sidecar-proxy": upstream "api": `):
				t.Errorf("error %q does not name the proxy and the upstream", err)
			}
		})
	}
}

// TestUpstreamSettingsPerDownstream: the same upstream service gets its
// clusters from each downstream's own service-defaults; proxies of one
// downstream still share one cluster message.
func TestUpstreamSettingsPerDownstream(t *testing.T) {
	m := baseMesh()
	withUpstreamConfig(m, &api.UpstreamConfiguration{Defaults: &api.UpstreamConfig{Limits: &api.UpstreamLimits{MaxConcurrentRequests: ptr(2)}}})
	clone := func(id, service string) {
		p := *m.Proxies[proxyID]
		sp := *p.ServiceProxy
		p.ServiceID, sp.DestinationServiceName = id, service
		p.ServiceProxy = &sp
		m.Proxies[id] = &p
	}
	clone("web-2-sidecar-proxy", "web")
	clone("admin-sidecar-proxy", "admin")
	m.Leaves["admin"] = testLeaf("admin")
	tr := New(m)
	get := func(id string) *clusterv3.Cluster {
		t.Helper()
		r, err := tr.Proxy(id)
		if err != nil {
			t.Fatal(err)
		}
		return clusterNamed(t, r, "api")
	}
	web, web2, admin := get(proxyID), get("web-2-sidecar-proxy"), get("admin-sidecar-proxy")
	if web != web2 {
		t.Error("two proxies of web do not share their api cluster")
	}
	if got := web.GetCircuitBreakers().GetThresholds()[0].GetMaxRequests().GetValue(); got != 2 {
		t.Errorf("web's api cluster: max_requests %d, want 2", got)
	}
	if admin.GetCircuitBreakers() != nil {
		t.Errorf("admin's api cluster has web's limits: %v", admin.GetCircuitBreakers())
	}
}

// TestSharedTargetFirstUpstreamWins: when two upstreams' chains reach one
// target, its cluster takes the first upstream's settings (Consul leaves
// this undefined: both chains emit a cluster of that name).
func TestSharedTargetFirstUpstreamWins(t *testing.T) {
	for _, order := range [][]string{{"api", "cache"}, {"cache", "api"}} {
		m := baseMesh()
		svc(m, "api").Splitter = splitter("api", api.ServiceSplit{Weight: 50}, api.ServiceSplit{Weight: 50, Service: "cache"})
		withUpstreamConfig(m, &api.UpstreamConfiguration{Overrides: []*api.UpstreamConfig{
			{Name: "api", Limits: &api.UpstreamLimits{MaxConnections: ptr(1)}},
			{Name: "cache", Limits: &api.UpstreamLimits{MaxConnections: ptr(2)}},
		}})
		sidecarProxy(m).Upstreams = []api.Upstream{{DestinationName: order[0], LocalBindPort: 9191}, {DestinationName: order[1], LocalBindPort: 9292}}
		r, err := Proxy(m, proxyID)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]uint32{"api": 1, "cache": 2}[order[0]]
		if got := clusterNamed(t, r, "cache").GetCircuitBreakers().GetThresholds()[0].GetMaxConnections().GetValue(); got != want {
			t.Errorf("upstreams %v: cache cluster max_connections %d, want the first upstream's %d", order, got, want)
		}
	}
}

// TestProxylessClustersIgnoreUpstreamConfig: proxyless clients are no
// downstream service, so no UpstreamConfig applies, and their clusters get
// none of a sidecar's resilience defaults.
func TestProxylessClustersIgnoreUpstreamConfig(t *testing.T) {
	r, err := Proxyless(loadMesh(t, "proxyless"))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Clusters) == 0 {
		t.Fatal("no clusters")
	}
	for _, c := range r.Clusters {
		if c.GetOutlierDetection() != nil || c.GetCircuitBreakers() != nil || c.GetCommonLbConfig() != nil {
			t.Errorf("proxyless cluster %q has sidecar settings: %v", c.GetName(), c)
		}
	}
}

// TestResolverRequestTimeoutOnlyAtChainStart: as in Consul, a resolver's
// RequestTimeout times the route only when the chain starts at that
// resolver; behind a router or a splitter only a router destination's
// timeout applies.
func TestResolverRequestTimeoutOnlyAtChainStart(t *testing.T) {
	withTimeout := func(m *model.Mesh) {
		svc(m, "api").Resolver = resolver("api", func(r *api.ServiceResolverConfigEntry) {
			r.RequestTimeout = 10 * time.Second
			r.Subsets = map[string]api.ServiceResolverSubset{"v1": {Filter: "Service.Meta.version == v1"}}
		})
	}
	cases := []struct {
		name   string
		mutate func(m *model.Mesh)
		want   []time.Duration // per route; 0 is unset
	}{
		{"resolver alone", func(*model.Mesh) {}, []time.Duration{10 * time.Second}},
		{"router", func(m *model.Mesh) {
			svc(m, "api").Router = router(
				api.ServiceRoute{Match: &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathPrefix: "/a"}}, Destination: &api.ServiceRouteDestination{ServiceSubset: "v1"}},
				api.ServiceRoute{Match: &api.ServiceRouteMatch{HTTP: &api.ServiceRouteHTTPMatch{PathPrefix: "/b"}}, Destination: &api.ServiceRouteDestination{RequestTimeout: 3 * time.Second}},
			)
		}, []time.Duration{0, 3 * time.Second, 0}},
		{"router without routes", func(m *model.Mesh) { svc(m, "api").Router = router() }, []time.Duration{0}},
		{"splitter", func(m *model.Mesh) {
			svc(m, "api").Splitter = splitter("api", api.ServiceSplit{Weight: 100, ServiceSubset: "v1"})
		}, []time.Duration{0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := baseMesh()
			withTimeout(m)
			c.mutate(m)
			r, err := Proxy(m, proxyID)
			if err != nil {
				t.Fatal(err)
			}
			var routes []*routev3.Route
			for _, rc := range r.Routes {
				if rc.GetName() == "api" {
					routes = rc.GetVirtualHosts()[0].GetRoutes()
				}
			}
			if len(routes) != len(c.want) {
				t.Fatalf("%d routes, want %d", len(routes), len(c.want))
			}
			for i, rt := range routes {
				var got time.Duration
				if to := rt.GetRoute().GetTimeout(); to != nil {
					got = to.AsDuration()
				}
				if got != c.want[i] {
					t.Errorf("route %d: timeout %v, want %v (0: unset)", i, got, c.want[i])
				}
			}
		})
	}
}

// TestUpstreamSettingsKeepClustersShared: settings are part of what keys a
// shared cluster, so equal settings from different entries still share.
func TestUpstreamSettingsKeepClustersShared(t *testing.T) {
	a := clusterSettings{limits: upstreamLimits{maxConnections: some(uint32(3))}}
	b := clusterSettings{limits: upstreamLimits{maxConnections: some(uint32(3))}}
	if a != b {
		t.Fatal("equal settings compare unequal")
	}
	if proto.Equal(a.limits.circuitBreakers(), (upstreamLimits{}).circuitBreakers()) {
		t.Error("a set limit renders like no limit")
	}
}

// TestUpstreamConfigSpellingsDeterministic: two spellings of one key
// resolve the same way on every translation (map order must not decide).
func TestUpstreamConfigSpellingsDeterministic(t *testing.T) {
	for range 20 {
		m := baseMesh()
		sidecarProxy(m).Upstreams[0].Config = map[string]any{
			"limits": map[string]any{"max_connections": 1.0},
			"Limits": map[string]any{"max_connections": 2.0, "MaxConnections": 3.0},
		}
		r, err := Proxy(m, proxyID)
		if err != nil {
			t.Fatal(err)
		}
		// "limits" sorts after "Limits", and "max_connections" after
		// "MaxConnections".
		if got := clusterNamed(t, r, "api").GetCircuitBreakers().GetThresholds()[0].GetMaxConnections().GetValue(); got != 1 {
			t.Fatalf("max_connections %d, want 1 (the last spelling in byte order)", got)
		}
	}
}
