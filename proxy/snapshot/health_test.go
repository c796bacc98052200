package snapshot

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/outrigger-mesh/outrigger/proxy/healthcheck"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// healthCluster is a static cluster with one health check, check being
// its http_health_check or grpc_health_check member.
func healthCluster(t *testing.T, check string) *clusterv3.Cluster {
	t.Helper()
	js := `{"name": "c", "type": "STATIC", "load_assignment": {"cluster_name": "c", "endpoints": [{"lb_endpoints": [
	  {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9}}}}]}]},
	  "health_checks": [{"timeout": "1s", "interval": "2s", "unhealthy_threshold": 1, "healthy_threshold": 1, ` + check + `}]}`
	var c clusterv3.Cluster
	if err := protojson.Unmarshal([]byte(js), &c); err != nil {
		t.Fatalf("cluster JSON: %v\n%s", err, js)
	}
	return &c
}

// Health-check headers are converted like a route's header options:
// names lower-cased, %% a literal %, and a command operator refused.
func TestHealthCheckHeaders(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	s, err := Build(nil, nil, []*clusterv3.Cluster{healthCluster(t, `"http_health_check": {"path": "/h", "request_headers_to_add": [
	  {"header": {"key": "X-Ver", "value": "100%%"}},
	  {"header": {"key": "X-Raw", "raw_value": "`+b64("a%%b")+`"}}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	want := []healthcheck.Header{{Name: "x-ver", Value: "100%"}, {Name: "x-raw", Value: "a%b"}}
	if got := s.Clusters[0].HealthChecks[0].HTTP.RequestHeaders; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("request headers %+v, want %+v", got, want)
	}
	s, err = Build(nil, nil, []*clusterv3.Cluster{healthCluster(t, `"grpc_health_check": {"initial_metadata": [
	  {"header": {"key": "X-Token", "value": "t%%"}}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Clusters[0].HealthChecks[0].GRPC.InitialMetadata; len(got) != 1 || got[0] != (healthcheck.Header{Name: "x-token", Value: "t%"}) {
		t.Errorf("initial metadata %+v, want x-token: t%%", got)
	}

	const hp = "clusters[0].health_checks[0]."
	for _, tc := range []struct {
		name, check, path, reason string
	}{
		{"formatter", `"http_health_check": {"path": "/h", "request_headers_to_add": [{"header": {"key": "x-t", "value": "%START_TIME%"}}]}`,
			hp + "http_health_check.request_headers_to_add[0].header.value", `"%START_TIME%" uses % command operators`},
		{"lone percent in raw_value", `"http_health_check": {"path": "/h", "request_headers_to_add": [{"header": {"key": "x-t", "raw_value": "` + b64("50%") + `"}}]}`,
			hp + "http_health_check.request_headers_to_add[0].header.raw_value", `"50%" uses % command operators`},
		{"value and raw_value", `"http_health_check": {"path": "/h", "request_headers_to_add": [{"header": {"key": "x-t", "value": "a", "raw_value": "` + b64("b") + `"}}]}`,
			hp + "http_health_check.request_headers_to_add[0].header", "only one of value and raw_value may be set"},
		{"grpc formatter", `"grpc_health_check": {"initial_metadata": [{"header": {"key": "x-t", "value": "%UPSTREAM_HOST%"}}]}`,
			hp + "grpc_health_check.initial_metadata[0].header.value", `"%UPSTREAM_HOST%" uses % command operators`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build(nil, nil, []*clusterv3.Cluster{healthCluster(t, tc.check)})
			var in *resource.InvalidError
			if !errors.As(err, &in) {
				t.Fatalf("Build: %v (%T), want an InvalidError", err, err)
			}
			for _, f := range in.Fields {
				if f.Path == tc.path && strings.Contains(f.Reason, tc.reason) {
					return
				}
			}
			t.Errorf("errors %v, want %s: ...%s", in.Fields, tc.path, tc.reason)
		})
	}
}
