package snapshot

import (
	"errors"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

func TestGoSubstitution(t *testing.T) {
	for in, want := range map[string]string{
		`/u/\1`:      `/u/${1}`,
		`\2-\1`:      `${2}-${1}`,
		`a\\b`:       `a\b`,
		`$1 costs $`: `$$1 costs $$`,
		`plain`:      `plain`,
	} {
		if got := goSubstitution(in); got != want {
			t.Errorf("goSubstitution(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLiteralHeaderValue(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"plain", "plain", true},
		{"100%%", "100%", true},
		{"%%%%", "%%", true},
		{"%START_TIME%", "", false},
		{"50%", "", false},
	}
	for _, tt := range tests {
		got, ok := literalHeaderValue(tt.in)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("literalHeaderValue(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func listenerJSON(t *testing.T, chains string) *listenerv3.Listener {
	t.Helper()
	mgr, err := anypb.New(&hcmv3.HttpConnectionManager{
		StatPrefix:     "x",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "r"}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	l := &listenerv3.Listener{}
	js := `{"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}, "filter_chains": ` + chains + `}`
	if err := protojson.Unmarshal([]byte(js), l); err != nil {
		t.Fatal(err)
	}
	for _, fc := range l.FilterChains {
		fc.Filters = []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mgr}}}
	}
	return l
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestFilterChainOrder(t *testing.T) {
	l := listenerJSON(t, `[
	  {"name": "none"},
	  {"name": "alpn", "filter_chain_match": {"application_protocols": ["h2"]}},
	  {"name": "mixed", "filter_chain_match": {"server_names": ["*.example.com", "a.example.com", "*.b.example.com"]}},
	  {"name": "tls", "filter_chain_match": {"transport_protocol": "tls"}},
	  {"name": "exact-alpn", "filter_chain_match": {"server_names": ["c.example.com"], "application_protocols": ["h2"]}}]`)
	// Matching on server names, ALPN or transport protocol "tls" needs TLS.
	cert, key := writeTestCert(t, t.TempDir())
	ts := &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAny(t, &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificates: []*tlsv3.TlsCertificate{{
				CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: cert}},
				PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: key}},
			}},
		}}),
	}}
	for _, fc := range l.FilterChains {
		fc.TransportSocket = ts
	}
	out, err := ConvertListener(l)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fc := range out.Config.FilterChains {
		got = append(got, fc.Name+":"+strings.Join(fc.Match.ServerNames, ","))
	}
	want := "exact-alpn:c.example.com mixed:a.example.com mixed:*.b.example.com mixed:*.example.com tls: alpn: none:"
	if strings.Join(got, " ") != want {
		t.Errorf("order = %s\nwant    %s", strings.Join(got, " "), want)
	}
	if len(out.HTTP) != len(out.Config.FilterChains) || out.HTTP[0].RDSName != "r" {
		t.Errorf("HTTP not parallel to chains: %d vs %d", len(out.HTTP), len(out.Config.FilterChains))
	}
}

func TestConvertListenerRejects(t *testing.T) {
	tests := []struct {
		name, chains, wantErr string
	}{
		{"duplicate match", `[{"filter_chain_match": {"server_names": ["a.com"]}}, {"filter_chain_match": {"server_names": ["b.com", "a.com"]}}]`,
			"filter_chains[1]: filter_chain_match is the same as filter_chains[0]'s"},
		{"two catch-alls", `[{}, {}]`, "filter_chains[1]: filter_chain_match is the same as filter_chains[0]'s"},
		{"bad wildcard", `[{"filter_chain_match": {"server_names": ["a.*.com"]}}]`, `filter_chains[0].filter_chain_match.server_names[0]: "a.*.com"`},
		{"transport protocol", `[{"filter_chain_match": {"transport_protocol": "quic"}}]`, `filter_chains[0].filter_chain_match.transport_protocol: "quic" is not supported yet`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ConvertListener(listenerJSON(t, tt.chains))
			var inv *resource.InvalidError
			if !errors.As(err, &inv) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %v, want InvalidError containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestBuildAndConsistent(t *testing.T) {
	l := listenerJSON(t, `[{}]`)
	rc := &routev3.RouteConfiguration{}
	if err := protojson.Unmarshal([]byte(`{"name": "r", "virtual_hosts": [{"name": "v", "domains": ["*"],
	  "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "missing"}}]}]}`), rc); err != nil {
		t.Fatal(err)
	}
	cl := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}

	_, err := Build([]*listenerv3.Listener{l}, nil, []*clusterv3.Cluster{cl})
	if err == nil || !strings.Contains(err.Error(), `listeners[0].filter_chains[0].filters[0].typed_config.rds.route_config_name: route configuration "r" is not defined`) {
		t.Errorf("missing rds: %v", err)
	}
	_, err = Build([]*listenerv3.Listener{l}, []*routev3.RouteConfiguration{rc}, []*clusterv3.Cluster{cl})
	if err == nil || !strings.Contains(err.Error(), `routes[0].virtual_hosts[0].routes[0].route.cluster: cluster "missing" is not defined`) {
		t.Errorf("missing cluster: %v", err)
	}
	s, err := BuildWith(Options{AllowMissingClusters: true}, []*listenerv3.Listener{l}, []*routev3.RouteConfiguration{rc}, []*clusterv3.Cluster{cl})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Consistent()
	var ie *InconsistentError
	if !errors.As(err, &ie) || len(ie.MissingClusters) != 1 || ie.MissingClusters[0].Name != "missing" || len(ie.Duplicates) != 0 {
		t.Errorf("Consistent = %#v", err)
	}
	bad := &clusterv3.Cluster{Name: "c", LbPolicy: clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG}
	_, err = Build(nil, nil, []*clusterv3.Cluster{cl, bad})
	var u *resource.UnsupportedError
	if !errors.As(err, &u) || err.Error() != "clusters[1].lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported yet" {
		t.Errorf("unsupported: %v", err)
	}
}

func TestConsistentDuplicates(t *testing.T) {
	s := &Snapshot{
		Listeners: []Listener{
			{Config: listener.Config{Name: "l"}, HTTP: []hcm.Config{{RDSName: "gone"}}},
			{Config: listener.Config{Name: "l"}},
		},
		Routes: map[string]*router.Config{"r": {VirtualHosts: []router.VirtualHost{{Name: "v",
			Routes: []router.Route{{Forward: &router.ForwardAction{WeightedClusters: []router.WeightedCluster{{Name: "a"}, {Name: "b"}}}}}}}}},
		Clusters: []cluster.Config{{Name: "a"}, {Name: "a"}},
	}
	var ie *InconsistentError
	if err := s.Consistent(); !errors.As(err, &ie) || len(ie.Duplicates) != 2 || len(ie.MissingRoutes) != 1 || len(ie.MissingClusters) != 1 || ie.MissingClusters[0].Name != "b" {
		t.Errorf("Consistent = %v", err)
	}
}
