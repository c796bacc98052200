package resource

import (
	"errors"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	lua "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/lua/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	downstreamconnsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	fixedheapv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/fixed_heap/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestCheck(t *testing.T) {
	hcm := func(filters ...*hcmv3.HttpFilter) *hcmv3.HttpConnectionManager {
		return &hcmv3.HttpConnectionManager{StatPrefix: "in", HttpFilters: filters,
			RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "r",
				ConfigSource: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}}}}
	}
	router := &hcmv3.HttpFilter{Name: "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}
	luaFilter := &hcmv3.HttpFilter{Name: "envoy.filters.http.lua",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &lua.Lua{})}}
	listenerWith := func(h *hcmv3.HttpConnectionManager) *bootstrapv3.Bootstrap {
		return &bootstrapv3.Bootstrap{StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Listeners: []*listenerv3.Listener{{Name: "l", FilterChains: []*listenerv3.FilterChain{{
				Filters: []*listenerv3.Filter{{Name: "hcm",
					ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}}},
			}}}},
		}}
	}
	tests := []struct {
		name        string
		msg         proto.Message
		wantErr     []string
		wantIgnored []string
	}{
		{
			name: "supported and ignored",
			msg: &bootstrapv3.Bootstrap{
				StatsFlushInterval: durationpb.New(5e9),
				StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{
					{Name: "a", ConnectTimeout: durationpb.New(1e9), AltStatName: "x",
						Metadata: nil},
				}},
			},
			wantIgnored: []string{"static_resources.clusters[0].alt_stat_name", "stats_flush_interval"},
		},
		{
			name: "enum value",
			msg: &bootstrapv3.Bootstrap{StaticResources: &bootstrapv3.Bootstrap_StaticResources{
				Clusters: []*clusterv3.Cluster{{Name: "a"}, {Name: "b", LbPolicy: clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG}},
			}},
			wantErr: []string{"static_resources.clusters[1].lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported yet"},
		},
		{
			name: "unsupported field",
			msg: &bootstrapv3.Bootstrap{StaticResources: &bootstrapv3.Bootstrap_StaticResources{
				Clusters: []*clusterv3.Cluster{{Name: "a", PreconnectPolicy: &clusterv3.Cluster_PreconnectPolicy{}}},
			}},
			wantErr: []string{"static_resources.clusters[0].preconnect_policy: Cluster.preconnect_policy is not supported yet"},
		},
		{
			name:        "typed_config inside is walked",
			msg:         listenerWith(hcm(router)),
			wantIgnored: []string{"static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix"},
		},
		{
			name: "unsupported http filter",
			msg:  listenerWith(hcm(luaFilter, router)),
			wantErr: []string{"static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config: " +
				"type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua is not supported yet"},
			wantIgnored: []string{"static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix"},
		},
		{
			name:        "ValidateAll inside typed_config",
			msg:         listenerWith(&hcmv3.HttpConnectionManager{StatPrefix: "in"}),
			wantErr:     []string{"static_resources.listeners[0].filter_chains[0].filters[0].typed_config.route_specifier: value is required (one of rds, route_config, scoped_routes)"},
			wantIgnored: []string{"static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefix"},
		},
		{
			name: "every problem reported",
			msg: &bootstrapv3.Bootstrap{
				Node: &corev3.Node{Id: "n", Metadata: &structpb.Struct{}},
				StaticResources: &bootstrapv3.Bootstrap_StaticResources{
					Clusters: []*clusterv3.Cluster{{Name: "a", LbPolicy: clusterv3.Cluster_LOAD_BALANCING_POLICY_CONFIG, RespectDnsTtl: true}},
				},
				HeaderPrefix: "x-foo",
			},
			wantErr: []string{
				"header_prefix: Bootstrap.header_prefix is not supported yet",
				"static_resources.clusters[0].lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported yet",
				"static_resources.clusters[0].respect_dns_ttl: Cluster.respect_dns_ttl is not supported yet",
			},
			wantIgnored: []string{"node.metadata"},
		},
		{
			// cluster_manager and overload_manager: what changes traffic is
			// refused, the operational rest ignored.
			name: "cluster and overload managers",
			msg: &bootstrapv3.Bootstrap{
				ClusterManager: &bootstrapv3.ClusterManager{
					UpstreamBindConfig: &corev3.BindConfig{},
					LocalClusterName:   "zone",
					OutlierDetection:   &bootstrapv3.ClusterManager_OutlierDetection{EventLogPath: "/tmp/x"},
				},
				OverloadManager: &overloadv3.OverloadManager{
					RefreshInterval: durationpb.New(1e9),
					ResourceMonitors: []*overloadv3.ResourceMonitor{
						{Name: "heap", ConfigType: &overloadv3.ResourceMonitor_TypedConfig{TypedConfig: mustAny(t, &fixedheapv3.FixedHeapConfig{MaxHeapSizeBytes: 1 << 30})}},
						// On its own this monitor caps connections in Envoy.
						{Name: "conns", ConfigType: &overloadv3.ResourceMonitor_TypedConfig{TypedConfig: mustAny(t, &downstreamconnsv3.DownstreamConnectionsConfig{MaxActiveDownstreamConnections: 1000})}},
					},
					Actions: []*overloadv3.OverloadAction{{Name: "a"}},
				},
				StaticResources: &bootstrapv3.Bootstrap_StaticResources{
					Listeners: []*listenerv3.Listener{{Name: "l", TrafficDirection: corev3.TrafficDirection_OUTBOUND}},
				},
			},
			wantErr: []string{
				"cluster_manager.local_cluster_name: ClusterManager.local_cluster_name is not supported yet",
				"cluster_manager.upstream_bind_config: ClusterManager.upstream_bind_config is not supported yet",
				"overload_manager.resource_monitors[1].typed_config: type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig is not supported yet",
				"overload_manager.actions: OverloadManager.actions is not supported yet",
			},
			wantIgnored: []string{"cluster_manager.outlier_detection", "overload_manager.refresh_interval", "overload_manager.resource_monitors[0].typed_config.max_heap_size_bytes"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ign, err := Check(tt.msg)
			if len(tt.wantErr) == 0 && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(tt.wantErr) > 0 {
				var u *UnsupportedError
				var inv *InvalidError
				var fields []FieldError
				switch {
				case errors.As(err, &u):
					fields = u.Fields
				case errors.As(err, &inv):
					fields = inv.Fields
				default:
					t.Fatalf("want *UnsupportedError or *InvalidError, got %v", err)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if len(fields) != len(tt.wantErr) {
					t.Errorf("got %d problems, want %d:\n%v", len(fields), len(tt.wantErr), err)
				}
			}
			if strings.Join(ign, ",") != strings.Join(tt.wantIgnored, ",") {
				t.Errorf("ignored = %q, want %q", ign, tt.wantIgnored)
			}
		})
	}
}

func TestPrefix(t *testing.T) {
	err := Prefix(&InvalidError{Fields: []FieldError{{Path: "clusters[0].name", Reason: "bad"}, {Path: "[2]", Reason: "x"}}}, "static_resources")
	want := "static_resources.clusters[0].name: bad\nstatic_resources[2]: x"
	if err.Error() != want {
		t.Errorf("got %q, want %q", err, want)
	}
}
