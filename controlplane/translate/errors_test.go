package translate

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

func TestErrors(t *testing.T) {
	subsets := map[string]api.ServiceResolverSubset{"v1": {Filter: "Service.Meta.version == v1"}}
	cases := []struct {
		name   string
		mutate func(m *model.Mesh)
		want   string // in the error text
		kind   string // the *EntryError's Kind and Name, when one is expected
		entry  string
	}{
		{"no destination service", func(m *model.Mesh) { sidecarProxy(m).DestinationServiceName = "" },
			`proxy "web-sidecar-proxy" has no destination service`, "", ""},
		{"no address", func(m *model.Mesh) { m.Proxies[proxyID].Address = "" }, "has no address", "", ""},
		{"public port", func(m *model.Mesh) { m.Proxies[proxyID].ServicePort = 0 }, `listener "public_listener": port 0 is out of range`, "", ""},
		{"local port", func(m *model.Mesh) { sidecarProxy(m).LocalServicePort = 70000 }, "local service port 70000 is out of range", "", ""},
		{"connect timeout not a number", func(m *model.Mesh) { sidecarProxy(m).Config = map[string]any{"local_connect_timeout_ms": "soon"} },
			`config local_connect_timeout_ms: "soon" is not a number`, "", ""},
		{"request timeout wrong type", func(m *model.Mesh) { sidecarProxy(m).Config = map[string]any{"local_request_timeout_ms": true} },
			"config local_request_timeout_ms: true is not a number", "", ""},
		{"request timeout negative", func(m *model.Mesh) { sidecarProxy(m).Config = map[string]any{"local_request_timeout_ms": -1.0} },
			"config local_request_timeout_ms: -1 is out of range", "", ""},
		{"bind_address not a string", func(m *model.Mesh) { sidecarProxy(m).Config = map[string]any{"bind_address": 10.0} },
			`proxy "web-sidecar-proxy": config bind_address: 10 is not an IP address`, "", ""},
		{"bind_address a name", func(m *model.Mesh) { sidecarProxy(m).Config = map[string]any{"bind_address": "localhost"} },
			`config bind_address: "localhost" is not an IP address`, "", ""},
		{"bind_port not a number", func(m *model.Mesh) { sidecarProxy(m).Config = map[string]any{"bind_port": "high"} },
			`config bind_port: "high" is not a port number`, "", ""},
		{"bind_port a fraction", func(m *model.Mesh) { sidecarProxy(m).Config = map[string]any{"bind_port": 20000.5} },
			"config bind_port: 20000.5 is not a port number", "", ""},
		{"bind_port wrong type", func(m *model.Mesh) { sidecarProxy(m).Config = map[string]any{"bind_port": true} },
			"config bind_port: true is not a port number", "", ""},
		{"bind_port too high", func(m *model.Mesh) { sidecarProxy(m).Config = map[string]any{"bind_port": 70000} },
			"config bind_port: 70000 is out of range (1-65535)", "", ""},
		{"bind_port negative", func(m *model.Mesh) { sidecarProxy(m).Config = map[string]any{"bind_port": -1} },
			"config bind_port: -1 is out of range (1-65535)", "", ""},
		{"bind_port from proxy-defaults", func(m *model.Mesh) { m.ProxyDefaults.Config["bind_port"] = "x" },
			`proxy-defaults config bind_port: "x" is not a port number`, "", ""},
		{"bind_address from proxy-defaults", func(m *model.Mesh) { m.ProxyDefaults.Config["bind_address"] = "10.0.0.300" },
			`proxy-defaults config bind_address: "10.0.0.300" is not an IP address`, "", ""},
		{"local timeout from proxy-defaults", func(m *model.Mesh) { m.ProxyDefaults.Config["local_connect_timeout_ms"] = []any{1} },
			"proxy-defaults config local_connect_timeout_ms: [1] is not a number of milliseconds", "", ""},
		{"bind_port on an upstream's port", func(m *model.Mesh) {
			sidecarProxy(m).Config = map[string]any{"bind_address": "127.0.0.1", "bind_port": 9191}
		}, `listeners "public_listener" and "api:127.0.0.1:9191" both bind 127.0.0.1:9191`, "", ""},
		{"upstream without name", func(m *model.Mesh) { sidecarProxy(m).Upstreams[0].DestinationName = "" },
			"upstream 0 has no destination name", "", ""},
		{"two upstreams on one port", func(m *model.Mesh) {
			sidecarProxy(m).Upstreams = append(sidecarProxy(m).Upstreams, api.Upstream{DestinationName: "db", LocalBindPort: 9191})
		}, `listeners "api:127.0.0.1:9191" and "db:127.0.0.1:9191" both bind 127.0.0.1:9191`, "", ""},
		{"upstream on the public port", func(m *model.Mesh) {
			sidecarProxy(m).Upstreams[0].LocalBindAddress, sidecarProxy(m).Upstreams[0].LocalBindPort = "10.0.0.10", 21000
		}, "both bind 10.0.0.10:21000", "", ""},
		{"splitter on tcp", func(m *model.Mesh) {
			m.ProxyDefaults = nil
			svc(m, "api").Splitter = splitter("api", api.ServiceSplit{Weight: 100})
		}, `protocol "tcp", which does not allow splitting`, kindSplitter, "api"},
		{"inconsistent protocol", func(m *model.Mesh) {
			svc(m, "db").Defaults = &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "db", Protocol: "tcp"}
			svc(m, "api").Router = router(api.ServiceRoute{Destination: &api.ServiceRouteDestination{Service: "db"}})
		}, `leads to service "db" with protocol "tcp", but the chain of "api" has protocol "http"`, kindRouter, "api"},
		{"splitter without splits", func(m *model.Mesh) { svc(m, "api").Splitter = splitter("api") }, "has no splits", kindSplitter, "api"},
		{"negative split", func(m *model.Mesh) {
			svc(m, "api").Splitter = splitter("api", api.ServiceSplit{Weight: 110}, api.ServiceSplit{Weight: -10, Service: "b"})
		}, `split to "b" has a negative weight`, kindSplitter, "api"},
		{"splits not 100", func(m *model.Mesh) {
			svc(m, "api").Splitter = splitter("api", api.ServiceSplit{Weight: 50}, api.ServiceSplit{Weight: 30.5, Service: "b"})
		}, "split weights add up to 80.50, not 100", kindSplitter, "api"},
		{"splitters too deep", func(m *model.Mesh) {
			for i := 0; i <= maxChainDepth; i++ {
				from, to := fmt.Sprintf("s%d", i), fmt.Sprintf("s%d", i+1)
				if i == 0 {
					from = "api"
				}
				svc(m, from).Splitter = splitter(from, api.ServiceSplit{Weight: 100, Service: to})
			}
		}, "splitters nest more than 32 deep", kindSplitter, "s32"},
		{"redirects too deep", func(m *model.Mesh) {
			for i := 0; i <= maxChainDepth; i++ {
				from, to := fmt.Sprintf("r%d", i), fmt.Sprintf("r%d", i+1)
				if i == 0 {
					from = "api"
				}
				svc(m, from).Resolver = resolver(from, func(r *api.ServiceResolverConfigEntry) { r.Redirect = &api.ServiceResolverRedirect{Service: to} })
			}
		}, "redirects go more than 32 deep", kindResolver, "r31"},
		{"subset without resolver", func(m *model.Mesh) {
			svc(m, "api").Router = router(api.ServiceRoute{Destination: &api.ServiceRouteDestination{ServiceSubset: "v9"}})
		}, `service "api" has no subset "v9" (it has no service-resolver)`, kindRouter, "api"},
		{"subset missing from resolver", func(m *model.Mesh) {
			svc(m, "api").Resolver = resolver("api", func(r *api.ServiceResolverConfigEntry) { r.Subsets = subsets })
			svc(m, "api").Splitter = splitter("api", api.ServiceSplit{Weight: 100, ServiceSubset: "v9"})
		}, `service "api" has no subset "v9" in its service-resolver`, kindSplitter, "api"},
		{"default subset missing", func(m *model.Mesh) {
			svc(m, "api").Resolver = resolver("api", func(r *api.ServiceResolverConfigEntry) { r.Subsets, r.DefaultSubset = subsets, "v2" })
		}, `no subset "v2"`, kindResolver, "api"},
		{"redirect to another datacenter", func(m *model.Mesh) {
			svc(m, "api").Resolver = resolver("api", func(r *api.ServiceResolverConfigEntry) { r.Redirect = &api.ServiceResolverRedirect{Datacenter: "dc2"} })
		}, `redirect to datacenter "dc2" is not supported`, kindResolver, "api"},
		{"redirect to a peer", func(m *model.Mesh) {
			svc(m, "api").Resolver = resolver("api", func(r *api.ServiceResolverConfigEntry) { r.Redirect = &api.ServiceResolverRedirect{Peer: "other"} })
		}, `redirect to peer "other" is not supported`, kindResolver, "api"},
		{"redirect to a sameness group", func(m *model.Mesh) {
			svc(m, "api").Resolver = resolver("api", func(r *api.ServiceResolverConfigEntry) {
				r.Redirect = &api.ServiceResolverRedirect{SamenessGroup: "g"}
			})
		}, `redirect to sameness group "g" is not supported`, kindResolver, "api"},
		{"failover target's protocol", func(m *model.Mesh) {
			svc(m, "db").Defaults = &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "db", Protocol: "grpc"}
			svc(m, "api").Resolver = resolver("api", func(r *api.ServiceResolverConfigEntry) {
				r.Failover = map[string]api.ServiceResolverFailover{"*": {Service: "db"}}
			})
		}, `leads to service "db" with protocol "grpc"`, kindResolver, "api"},
		{"lb policy", withLB(&api.LoadBalancer{Policy: "weighted"}), `load balancer policy "weighted"`, kindResolver, "api"},
		{"ring sizes", withLB(&api.LoadBalancer{Policy: "ring_hash", RingHashConfig: &api.RingHashConfig{MinimumRingSize: 10, MaximumRingSize: 5}}),
			"ring hash minimum size 10 is above the maximum 5", kindResolver, "api"},
		{"choice count", withLB(&api.LoadBalancer{Policy: "least_request", LeastRequestConfig: &api.LeastRequestConfig{ChoiceCount: 1}}),
			"choice_count must be at least 2", kindResolver, "api"},
		{"hash field", withLB(&api.LoadBalancer{Policy: "maglev", HashPolicies: []api.HashPolicy{{Field: "body"}}}),
			`hash policy 0: field "body" is not one of`, kindResolver, "api"},
		{"hash field value", withLB(&api.LoadBalancer{Policy: "maglev", HashPolicies: []api.HashPolicy{{SourceIP: true}, {Field: "cookie"}}}),
			"hash policy 1: field cookie needs a field_value", kindResolver, "api"},
		{"two path matches", func(m *model.Mesh) {
			svc(m, "api").Router = router(matchRoute(api.ServiceRouteHTTPMatch{PathExact: "/a", PathPrefix: "/b"}))
		}, "route 0: set only one of path_exact, path_prefix, path_regex", kindRouter, "api"},
		{"bad path regex", func(m *model.Mesh) {
			svc(m, "api").Router = router(api.ServiceRoute{}, matchRoute(api.ServiceRouteHTTPMatch{PathRegex: "/(a"}))
		}, "route 1: path_regex: error parsing regexp", kindRouter, "api"},
		{"header without name", func(m *model.Mesh) {
			svc(m, "api").Router = router(matchRoute(api.ServiceRouteHTTPMatch{Header: []api.ServiceRouteHTTPMatchHeader{{Exact: "x"}}}))
		}, "route 0: a header match needs a name", kindRouter, "api"},
		{"header with two matches", func(m *model.Mesh) {
			svc(m, "api").Router = router(matchRoute(api.ServiceRouteHTTPMatch{Header: []api.ServiceRouteHTTPMatchHeader{{Name: "x", Exact: "a", Prefix: "b"}}}))
		}, `header "x": set exactly one of`, kindRouter, "api"},
		{"header with no match", func(m *model.Mesh) {
			svc(m, "api").Router = router(matchRoute(api.ServiceRouteHTTPMatch{Header: []api.ServiceRouteHTTPMatchHeader{{Name: "x", Invert: true}}}))
		}, `header "x": set exactly one of`, kindRouter, "api"},
		{"bad header regex", func(m *model.Mesh) {
			svc(m, "api").Router = router(matchRoute(api.ServiceRouteHTTPMatch{Header: []api.ServiceRouteHTTPMatchHeader{{Name: "x", Regex: "["}}}))
		}, `header "x" regex`, kindRouter, "api"},
		{"query without name", func(m *model.Mesh) {
			svc(m, "api").Router = router(matchRoute(api.ServiceRouteHTTPMatch{QueryParam: []api.ServiceRouteHTTPMatchQueryParam{{Present: true}}}))
		}, "a query_param match needs a name", kindRouter, "api"},
		{"query with two matches", func(m *model.Mesh) {
			svc(m, "api").Router = router(matchRoute(api.ServiceRouteHTTPMatch{QueryParam: []api.ServiceRouteHTTPMatchQueryParam{{Name: "q", Present: true, Exact: "1"}}}))
		}, `query_param "q": set exactly one of`, kindRouter, "api"},
		{"bad query regex", func(m *model.Mesh) {
			svc(m, "api").Router = router(matchRoute(api.ServiceRouteHTTPMatch{QueryParam: []api.ServiceRouteHTTPMatchQueryParam{{Name: "q", Regex: "*"}}}))
		}, `query_param "q" regex`, kindRouter, "api"},
		{"bad method", func(m *model.Mesh) {
			svc(m, "api").Router = router(matchRoute(api.ServiceRouteHTTPMatch{Methods: []string{"GET", "PO|ST"}}))
		}, `route 0: "PO|ST" is not an HTTP method`, kindRouter, "api"},
		{"invalid route (ValidateAll)", func(m *model.Mesh) {
			svc(m, "api").Router = router(api.ServiceRoute{Destination: &api.ServiceRouteDestination{
				RequestHeaders: &api.HTTPHeaderModifiers{Set: map[string]string{"bad\nname": "v"}},
			}})
		}, `translate: route "api": invalid RouteConfiguration.VirtualHosts[0]`, "", ""},
		{"invalid cluster (ValidateAll)", withLB(&api.LoadBalancer{Policy: "ring_hash", RingHashConfig: &api.RingHashConfig{MaximumRingSize: 1 << 40}}),
			`translate: cluster "api": invalid Cluster.RingHashLbConfig`, "", ""},
		{"unencodable name", func(m *model.Mesh) { sidecarProxy(m).Upstreams[0].DestinationName = "a\xff" },
			`translate: cluster "a\xff": encoding UpstreamTlsContext: string field contains invalid UTF-8`, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := baseMesh()
			c.mutate(m)
			_, err := Proxy(m, proxyID)
			if err == nil {
				t.Fatalf("no error, want %q", c.want)
			}
			// A Translator reports the same error every time (memoized
			// or not).
			tr := New(m)
			for i := range 2 {
				if _, again := tr.Proxy(proxyID); again == nil || again.Error() != err.Error() {
					t.Errorf("Translator call %d: error %v, want %v", i, again, err)
				}
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			var ee *EntryError
			switch {
			case c.kind == "" && errors.As(err, &ee):
				t.Errorf("got an EntryError %v, want a plain error", err)
			case c.kind != "" && !errors.As(err, &ee):
				t.Errorf("error %v is not an *EntryError", err)
			case c.kind != "" && (ee.Kind != c.kind || ee.Name != c.entry):
				t.Errorf("EntryError names %s %q, want %s %q", ee.Kind, ee.Name, c.kind, c.entry)
			}
		})
	}
}

func TestNilMesh(t *testing.T) {
	if _, err := Proxy(nil, proxyID); err == nil {
		t.Error("Proxy(nil): no error")
	}
	if _, err := Proxyless(nil); err == nil {
		t.Error("Proxyless(nil): no error")
	}
}

// TestProxylessErrorNamesEntry: a broken entry on a proxyless service fails
// the whole output, naming the entry.
func TestProxylessErrorNamesEntry(t *testing.T) {
	m := baseMesh()
	greeter := svc(m, "greeter")
	greeter.Defaults = &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "greeter", Protocol: "grpc"}
	greeter.Instances = []*api.ServiceEntry{{Node: &api.Node{Node: "n", Address: "10.0.0.1"}, Service: &api.AgentService{ID: "g", Service: "greeter", Port: 50051}}}
	greeter.Splitter = splitter("greeter", api.ServiceSplit{Weight: 100, ServiceSubset: "v1"})
	_, err := Proxyless(m)
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Kind != kindSplitter || ee.Name != "greeter" {
		t.Fatalf("err = %v, want an EntryError naming service-splitter greeter", err)
	}
}
