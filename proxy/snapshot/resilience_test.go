package snapshot

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

func clusterJSON(t *testing.T, js string) *clusterv3.Cluster {
	t.Helper()
	cl := &clusterv3.Cluster{}
	if err := protojson.Unmarshal([]byte(js), cl); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	return cl
}

func routeJSON(t *testing.T, js string) *routev3.RouteConfiguration {
	t.Helper()
	rc := &routev3.RouteConfiguration{}
	if err := protojson.Unmarshal([]byte(js), rc); err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	return rc
}

const staticEndpoints = `"type": "STATIC", "load_assignment": {"cluster_name": "c", "endpoints": [
	{"priority": 0, "locality": {"region": "eu", "zone": "a"}, "load_balancing_weight": 3,
	 "lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 1}}}}]},
	{"priority": 1, "lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.2", "port_value": 1}}}}]}],
	"policy": {"overprovisioning_factor": 200}}`

func TestConvertClusterResilience(t *testing.T) {
	cl := clusterJSON(t, `{"name": "c", `+staticEndpoints+`,
		"lb_policy": "RING_HASH", "ring_hash_lb_config": {"minimum_ring_size": 64, "maximum_ring_size": 4096},
		"common_lb_config": {"healthy_panic_threshold": {"value": 0}, "locality_weighted_lb_config": {}},
		"circuit_breakers": {"thresholds": [{"max_requests": 10, "max_retries": 2, "retry_budget": {"budget_percent": {"value": 50}, "min_retry_concurrency": 5}},
		                                    {"priority": "HIGH", "max_requests": 99}]},
		"outlier_detection": {"consecutive_5xx": 3, "enforcing_consecutive_gateway_failure": 0, "interval": "1s", "max_ejection_percent": 50},
		"health_checks": [{"timeout": "1s", "interval": "2s", "unhealthy_threshold": 2, "healthy_threshold": 1,
		                   "http_health_check": {"path": "/healthz", "expected_statuses": [{"start": 200, "end": 300}], "codec_client_type": "HTTP2"}},
		                  {"timeout": "1s", "interval": "2s", "unhealthy_threshold": 1, "healthy_threshold": 1,
		                   "tcp_health_check": {"send": {"text": "50494e47"}, "receive": [{"text": "504f4e47"}]}}]}`)
	s, err := Build(nil, nil, []*clusterv3.Cluster{cl})
	if err != nil {
		t.Fatal(err)
	}
	c := s.Clusters[0]
	if c.LB.Policy != lb.RingHashPolicy || c.LB.MinRingSize != 64 || c.LB.MaxRingSize != 4096 ||
		c.LB.PanicThreshold == nil || *c.LB.PanicThreshold != 0 || !c.LB.LocalityWeighted || c.LB.OverprovisioningFactor != 200 {
		t.Errorf("LB = %+v", c.LB)
	}
	want := []cluster.Endpoint{
		{Address: "127.0.0.1:1", Priority: 0, Locality: "eu/a/", LocalityWeight: 3},
		{Address: "127.0.0.2:1", Priority: 1},
	}
	if len(c.Endpoints) != 2 || c.Endpoints[0] != want[0] || c.Endpoints[1] != want[1] {
		t.Errorf("endpoints = %+v, want %+v", c.Endpoints, want)
	}
	th := c.Thresholds
	if th.MaxRequests != 10 || !th.MaxRetriesSet || th.MaxRetries != 2 || th.Budget.Percent != 50 || th.Budget.MinConcurrency != 5 {
		t.Errorf("thresholds = %+v (the DEFAULT priority's)", th)
	}
	if o := c.Outlier; o == nil || o.Consecutive5xx != 3 || o.Interval != time.Second || o.MaxEjectionPercent != 50 ||
		o.ConsecutiveGatewayFailure != 5 || o.BaseEjectionTime != 30*time.Second {
		t.Errorf("outlier = %+v (set fields, Envoy's defaults elsewhere)", c.Outlier)
	}
	if len(c.HealthChecks) != 2 || c.HealthChecks[0].HTTP == nil || c.HealthChecks[0].HTTP.Path != "/healthz" ||
		c.HealthChecks[0].HTTP.ExpectedStatuses[0].End != 300 || string(c.HealthChecks[1].TCP.Send) != "PING" ||
		string(c.HealthChecks[1].TCP.Receive[0]) != "PONG" {
		t.Errorf("health checks = %+v", c.HealthChecks)
	}
}

func TestConvertPeakEWMAAndPolicies(t *testing.T) {
	cl := clusterJSON(t, `{"name": "c", "type": "STATIC", "load_balancing_policy": {"policies": [
		{"typed_extension_config": {"name": "outrigger.load_balancing_policies.peak_ewma", "typed_config": {
			"@type": "type.googleapis.com/xds.type.v3.TypedStruct", "type_url": "outrigger.lb.v1.PeakEwma",
			"value": {"decay": "5s", "default_rtt": "10ms", "choice_count": 3}}}},
		{"typed_extension_config": {"name": "envoy.load_balancing_policies.least_request", "typed_config": {
			"@type": "type.googleapis.com/envoy.extensions.load_balancing_policies.least_request.v3.LeastRequest"}}}]}}`)
	s, err := Build(nil, nil, []*clusterv3.Cluster{cl})
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Clusters[0].LB; c.Policy != lb.PeakEWMAPolicy || c.Decay != 5*time.Second || c.DefaultRTT != 10*time.Millisecond || c.ChoiceCount != 3 {
		t.Errorf("peak EWMA = %+v", c)
	}
	lr := clusterJSON(t, `{"name": "c", "type": "STATIC", "lb_policy": "LEAST_REQUEST", "least_request_lb_config": {"choice_count": 4, "active_request_bias": {"default_value": 0.5, "runtime_key": "x"}}}`)
	s, err = Build(nil, nil, []*clusterv3.Cluster{lr})
	if err != nil {
		t.Fatal(err)
	}
	if c := s.Clusters[0].LB; c.Policy != lb.LeastRequestPolicy || c.ChoiceCount != 4 || *c.ActiveRequestBias != 0.5 {
		t.Errorf("least request = %+v", c)
	}
}

func TestConvertResilienceRejects(t *testing.T) {
	tests := []struct{ name, cluster, want string }{
		{"maglev table not prime", `"lb_policy": "MAGLEV", "maglev_lb_config": {"table_size": 65536}`, "clusters[0]: lb: maglev: table size 65536 is not a prime number"},
		{"ring min above max", `"lb_policy": "RING_HASH", "ring_hash_lb_config": {"minimum_ring_size": 100, "maximum_ring_size": 10}`, "minimum ring size 100 > maximum ring size 10"},
		{"murmur hash", `"lb_policy": "RING_HASH", "ring_hash_lb_config": {"hash_function": "MURMUR_HASH_2"}`, "clusters[0].ring_hash_lb_config.hash_function: MURMUR_HASH_2 is not supported yet"},
		{"zero max_requests", `"circuit_breakers": {"thresholds": [{"max_requests": 0}]}`, "clusters[0].circuit_breakers.thresholds[0].max_requests: 0 would refuse every request"},
		{"budget over 100", `"circuit_breakers": {"thresholds": [{"retry_budget": {"budget_percent": {"value": 150}}}]}`, "clusters[0].circuit_breakers.thresholds[0].retry_budget.budget_percent.value: value must be inside range [0, 100]"},
		{"peak ewma unknown field", `"load_balancing_policy": {"policies": [{"typed_extension_config": {"name": "x", "typed_config": {"@type": "type.googleapis.com/xds.type.v3.TypedStruct", "type_url": "outrigger.lb.v1.PeakEwma", "value": {"speed": 1}}}}]}`, "value.speed: unknown field"},
		{"no supported policy", `"load_balancing_policy": {"policies": [{"typed_extension_config": {"name": "x", "typed_config": {"@type": "type.googleapis.com/xds.type.v3.TypedStruct", "type_url": "someone.else.Policy"}}}]}`, "none of the policies is supported"},
		{"degraded hosts", `"outlier_detection": {"detect_degraded_hosts": true}`, "detect_degraded_hosts: is not supported yet"},
		{"health check without kind", `"health_checks": [{"timeout": "1s", "interval": "1s", "unhealthy_threshold": 1, "healthy_threshold": 1}]`, "clusters[0].health_checks[0].health_checker: value is required (one of http_health_check, tcp_health_check, grpc_health_check, custom_health_check)"},
		{"http health check payload", `"health_checks": [{"timeout": "1s", "interval": "1s", "unhealthy_threshold": 1, "healthy_threshold": 1, "http_health_check": {"path": "/", "send": {"text": "00"}}}]`, "http_health_check.send"},
		{"tcp payload not hex", `"health_checks": [{"timeout": "1s", "interval": "1s", "unhealthy_threshold": 1, "healthy_threshold": 1, "tcp_health_check": {"send": {"text": "zz"}}}]`, "tcp_health_check.send.text: \"zz\": must be hex-encoded bytes"},
		{"overprovisioning 0", `"load_assignment": {"cluster_name": "c", "policy": {"overprovisioning_factor": 0}}`, "clusters[0].load_assignment.policy.overprovisioning_factor: value must be greater than 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cl := clusterJSON(t, `{"name": "c", "type": "STATIC", `+tt.cluster+`}`)
			_, err := Build(nil, nil, []*clusterv3.Cluster{cl})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestConvertEDSHealthAndPriorities(t *testing.T) {
	cla := &endpointv3.ClusterLoadAssignment{}
	if err := protojson.Unmarshal([]byte(`{"cluster_name": "c", "endpoints": [
		{"priority": 0, "lb_endpoints": [
			{"endpoint": {"address": {"socket_address": {"address": "10.0.0.1", "port_value": 80}}}, "health_status": "UNHEALTHY"},
			{"endpoint": {"address": {"socket_address": {"address": "10.0.0.2", "port_value": 80}}}, "health_status": "HEALTHY"}]},
		{"priority": 1, "lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "10.0.0.3", "port_value": 80}}}}]}]}`), cla); err != nil {
		t.Fatal(err)
	}
	eps, err := ConvertEndpoints(cla)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 3 || !eps[0].Unhealthy || eps[1].Unhealthy || eps[2].Priority != 1 {
		t.Fatalf("endpoints = %+v: every endpoint kept, the unhealthy one flagged, priorities kept", eps)
	}
}

func TestConvertRouteResilience(t *testing.T) {
	rc := routeJSON(t, `{"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"],
		"retry_policy": {"retry_on": "5xx", "num_retries": 7},
		"per_request_buffer_limit_bytes": 4096,
		"routes": [
		  {"match": {"prefix": "/own"}, "route": {"cluster": "c",
		    "retry_policy": {"retry_on": "gateway-error,reset,retriable-status-codes,unavailable", "retriable_status_codes": [418],
		      "per_try_timeout": "0.2s", "per_try_idle_timeout": "0.1s", "retry_back_off": {"base_interval": "0.01s"},
		      "retriable_headers": [{"name": "x-retry", "present_match": true}],
		      "host_selection_retry_max_attempts": 4,
		      "retry_host_predicate": [{"name": "envoy.retry_host_predicates.previous_hosts", "typed_config": {
		        "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"}}]},
		    "hedge_policy": {"hedge_on_per_try_timeout": true},
		    "hash_policy": [{"header": {"header_name": "X-User"}, "terminal": true}, {"connection_properties": {"source_ip": true}},
		                    {"cookie": {"name": "s", "ttl": "60s", "path": "/"}}, {"query_parameter": {"name": "id"}}],
		    "max_stream_duration": {"max_stream_duration": "30s", "grpc_timeout_header_max": "5s", "grpc_timeout_header_offset": "0.05s"}}},
		  {"match": {"prefix": "/"}, "route": {"cluster": "c"}}]}]}`)
	cl := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
	s, err := Build(nil, []*routev3.RouteConfiguration{rc}, []*clusterv3.Cluster{cl})
	if err != nil {
		t.Fatal(err)
	}
	routes := s.Routes["r"].VirtualHosts[0].Routes
	own, inherited := routes[0].Forward, routes[1].Forward
	rp := own.Retry
	wantOn := router.RetryGatewayError | router.RetryReset | router.RetryRetriableStatusCodes | router.RetryGRPCUnavailable
	if rp == nil || rp.On != wantOn || rp.NumRetries != 1 || rp.PerTryTimeout != 200*time.Millisecond ||
		rp.PerTryIdleTimeout != 100*time.Millisecond || rp.BackoffBase != 10*time.Millisecond || rp.BackoffMax != 100*time.Millisecond ||
		len(rp.RetriableStatusCodes) != 1 || rp.RetriableStatusCodes[0] != 418 || len(rp.RetriableHeaders) != 1 ||
		!rp.PreviousHosts || rp.HostSelectionMaxAttempts != 4 {
		t.Errorf("route retry policy = %+v", rp)
	}
	if !own.HedgeOnPerTryTimeout || len(own.HashPolicies) != 4 || own.HashPolicies[0].Name != "x-user" || !own.HashPolicies[0].Terminal ||
		own.HashPolicies[1].Kind != router.HashSourceIP || own.HashPolicies[2].CookieTTL != time.Minute || own.HashPolicies[3].Name != "id" {
		t.Errorf("hedge/hash = %v %+v", own.HedgeOnPerTryTimeout, own.HashPolicies)
	}
	if own.MaxStreamDuration != 30*time.Second || own.GRPCTimeoutHeaderMax != 5*time.Second || own.GRPCTimeoutHeaderOffset != 50*time.Millisecond {
		t.Errorf("max stream duration = %v %v %v", own.MaxStreamDuration, own.GRPCTimeoutHeaderMax, own.GRPCTimeoutHeaderOffset)
	}
	if ir := inherited.Retry; ir == nil || ir.On != router.Retry5xx || ir.NumRetries != 7 || inherited.RetryBufferLimit != 4096 {
		t.Errorf("virtual host retry policy not inherited: %+v, buffer %d", ir, inherited.RetryBufferLimit)
	}

	bad := routeJSON(t, `{"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
		{"match": {"prefix": "/"}, "route": {"cluster": "c", "retry_policy": {"retry_on": "5xx,teleport"},
		  "hedge_policy": {"initial_requests": 2}}}]}]}`)
	_, err = Build(nil, []*routev3.RouteConfiguration{bad}, []*clusterv3.Cluster{cl})
	if err == nil || !strings.Contains(err.Error(), `retry_policy.retry_on: "teleport" is not supported`) ||
		!strings.Contains(err.Error(), "hedge_policy.initial_requests: only 1 is supported") {
		t.Fatalf("err = %v", err)
	}
}
