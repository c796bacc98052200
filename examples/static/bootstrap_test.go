// Package static holds the files of the static demo (bootstrap.yaml and the
// example programs under it); this test keeps the bootstrap a file a real
// Envoy would accept and in step with what the demo programs expect.
package static

import (
	"net"
	"os"
	"strconv"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/outrigger-mesh/outrigger/xds/resource"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// The demo's fixed addresses, as scripts/demo-static.sh and democlient use them.
const (
	adminAddr  = "127.0.0.1:9901"
	listenAddr = "127.0.0.1:10000"
	statusBody = "outrigger static demo\n"
)

func loadBootstrap(t *testing.T) *bootstrapv3.Bootstrap {
	t.Helper()
	raw, err := os.ReadFile("bootstrap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		t.Fatalf("YAML: %v", err)
	}
	var bs bootstrapv3.Bootstrap
	// Strict like Envoy: an unknown field or an unresolvable @type fails.
	if err := protojson.Unmarshal(js, &bs); err != nil {
		t.Fatalf("protojson: %v", err)
	}
	if err := bs.ValidateAll(); err != nil {
		t.Fatalf("ValidateAll: %v", err)
	}
	return &bs
}

func socketAddr(t *testing.T, a *corev3.Address) string {
	t.Helper()
	sa := a.GetSocketAddress()
	if sa == nil {
		t.Fatalf("address %v is not a socket address", a)
	}
	return net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
}

// unpack resolves a typed_config into its concrete message.
func unpack[T proto.Message](t *testing.T, name string, a *anypb.Any, m T) T {
	t.Helper()
	if err := a.UnmarshalTo(m); err != nil {
		t.Fatalf("%s typed_config: %v", name, err)
	}
	return m
}

func TestBootstrapIsValidEnvoyConfig(t *testing.T) {
	bs := loadBootstrap(t)

	if got := socketAddr(t, bs.GetAdmin().GetAddress()); got != adminAddr {
		t.Errorf("admin address = %s, want %s", got, adminAddr)
	}
	listeners := bs.GetStaticResources().GetListeners()
	if len(listeners) != 1 || listeners[0].GetName() != "ingress_http" {
		t.Fatalf("want one listener ingress_http, got %d", len(listeners))
	}
	if got := socketAddr(t, listeners[0].GetAddress()); got != listenAddr {
		t.Errorf("listener address = %s, want %s", got, listenAddr)
	}
	filters := listeners[0].GetFilterChains()[0].GetFilters()
	if len(filters) != 1 {
		t.Fatalf("want one network filter, got %d", len(filters))
	}
	hcm := unpack(t, filters[0].GetName(), filters[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
	if err := hcm.ValidateAll(); err != nil {
		t.Fatalf("HCM: %v", err)
	}
	if hcm.GetCodecType() != hcmv3.HttpConnectionManager_AUTO {
		t.Errorf("codec_type = %v, want AUTO", hcm.GetCodecType())
	}
	for _, al := range hcm.GetAccessLog() {
		unpack(t, al.GetName(), al.GetTypedConfig(), &streamv3.StdoutAccessLog{})
	}
	if hf := hcm.GetHttpFilters(); len(hf) != 1 || hf[0].GetName() != "envoy.filters.http.router" {
		t.Errorf("http_filters = %v, want only the router", hf)
	} else {
		unpack(t, hf[0].GetName(), hf[0].GetTypedConfig(), &routerv3.Router{})
	}

	routes := map[string]*routev3.Route{}
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			routes[r.GetMatch().GetPrefix()] = r
		}
	}
	wantCluster := map[string]string{"/hello": "httpapp", "/echo": "httpapp", "/grpc.testing.TestService/": "grpcapp"}
	for prefix, cluster := range wantCluster {
		if got := routes[prefix].GetRoute().GetCluster(); got != cluster {
			t.Errorf("route %s -> %q, want cluster %q", prefix, got, cluster)
		}
	}
	if routes["/grpc.testing.TestService/"].GetMatch().GetGrpc() == nil {
		t.Error("the gRPC route does not match on grpc: {}")
	}
	dr := routes["/status"].GetDirectResponse()
	if dr.GetStatus() != 200 || dr.GetBody().GetInlineString() != statusBody {
		t.Errorf("/status direct_response = %v", dr)
	}
	if len(routes) != len(wantCluster)+1 {
		t.Errorf("%d routes, want %d: anything else must 404", len(routes), len(wantCluster)+1)
	}

	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range bs.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
	}
	wantEndpoints := map[string][]string{
		"httpapp": {"127.0.0.1:8081", "127.0.0.1:8083"},
		"grpcapp": {"127.0.0.1:8082"},
	}
	for name, want := range wantEndpoints {
		c := clusters[name]
		if c == nil {
			t.Errorf("cluster %s missing", name)
			continue
		}
		var got []string
		for _, le := range c.GetLoadAssignment().GetEndpoints() {
			for _, ep := range le.GetLbEndpoints() {
				got = append(got, socketAddr(t, ep.GetEndpoint().GetAddress()))
			}
		}
		if len(got) != len(want) || got[0] != want[0] || got[len(got)-1] != want[len(want)-1] {
			t.Errorf("cluster %s endpoints = %v, want %v", name, got, want)
		}
	}
	opts, ok := clusters["grpcapp"].GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	if !ok {
		t.Fatal("grpcapp has no HttpProtocolOptions")
	}
	po := unpack(t, "grpcapp HttpProtocolOptions", opts, &upstreamhttpv3.HttpProtocolOptions{})
	if po.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("grpcapp is not configured for HTTP/2 upstream")
	}
}

// TestBootstrapUsesOnlySupportedFields runs the proxy's own support check, so
// the demo never relies on a field outrigger would reject at startup.
func TestBootstrapUsesOnlySupportedFields(t *testing.T) {
	bs := loadBootstrap(t)
	ignored, err := resource.Validate("", bs)
	if err != nil {
		t.Fatalf("outrigger would reject the demo bootstrap: %v", err)
	}
	// Ignored fields are fine (stat_prefix is required by Envoy's own
	// validation); the proxy logs them once at startup.
	t.Logf("fields outrigger ignores: %v", ignored)
}
