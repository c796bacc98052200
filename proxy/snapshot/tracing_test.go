package snapshot

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// tracedListener is a one-chain listener whose connection manager traces
// with tr.
func tracedListener(t *testing.T, dir corev3.TrafficDirection, tr *hcmv3.HttpConnectionManager_Tracing) *listenerv3.Listener {
	t.Helper()
	mgr := mustAny(t, &hcmv3.HttpConnectionManager{
		StatPrefix:     "x",
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "r"}},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})}}},
		Tracing: tr,
	})
	return &listenerv3.Listener{
		Name:             "l",
		TrafficDirection: dir,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 0}}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mgr}}}}},
	}
}

func TestTracingConversion(t *testing.T) {
	otel := mustAny(t, &tracev3.OpenTelemetryConfig{
		ServiceName:  "svc",
		MaxCacheSize: wrapperspb.UInt32(64),
		GrpcService: &corev3.GrpcService{
			Timeout: durationpb.New(2 * time.Second),
			TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{
				ClusterName: "otel", Authority: "collector"}},
		},
	})
	tr := &hcmv3.HttpConnectionManager_Tracing{
		RandomSampling:  &typev3.Percent{Value: 2.5},
		OverallSampling: &typev3.Percent{Value: 150}, // clamped
		Provider:        &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: otel}},
	}
	l, err := ConvertListener(tracedListener(t, corev3.TrafficDirection_OUTBOUND, tr))
	if err != nil {
		t.Fatal(err)
	}
	c := l.HTTP[0].Tracing
	if c == nil {
		t.Fatal("no tracing config")
	}
	e := c.Exporter
	if c.RandomSampling != 2.5 || c.ClientSampling != 100 || c.OverallSampling != 100 || c.Operation != "egress" ||
		e.Cluster != "otel" || e.Authority != "collector" || e.Target != "" || e.Timeout != 2*time.Second || e.ServiceName != "svc" || e.MaxQueue != 64 {
		t.Errorf("converted %+v", *c)
	}

	l, err = ConvertListener(tracedListener(t, corev3.TrafficDirection_UNSPECIFIED, tr))
	if err != nil {
		t.Fatal(err)
	}
	if op := l.HTTP[0].Tracing.Operation; op != "ingress" {
		t.Errorf("operation %q, want ingress", op)
	}
}

func TestTracingConversionErrors(t *testing.T) {
	grpcSvc := &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_GoogleGrpc_{GoogleGrpc: &corev3.GrpcService_GoogleGrpc{TargetUri: "127.0.0.1:1", StatPrefix: "x"}}}
	httpSvc := &corev3.HttpService{HttpUri: &corev3.HttpUri{Uri: "http://c/v1/traces", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "c"}, Timeout: durationpb.New(time.Second)}}
	for _, tc := range []struct {
		name string
		otel *tracev3.OpenTelemetryConfig
		want string
	}{
		{"both", &tracev3.OpenTelemetryConfig{GrpcService: grpcSvc, HttpService: httpSvc}, "http_service: give grpc_service or http_service, not both"},
		{"neither", &tracev3.OpenTelemetryConfig{ServiceName: "x"}, "grpc_service: the OpenTelemetry tracer needs"},
		{"zero cache", &tracev3.OpenTelemetryConfig{GrpcService: grpcSvc, MaxCacheSize: wrapperspb.UInt32(0)}, "max_cache_size: must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry",
				ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(t, tc.otel)}}}
			_, err := ConvertListener(tracedListener(t, corev3.TrafficDirection_INBOUND, tr))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ConvertListener: %v, want %q", err, tc.want)
			}
		})
	}
	// OTLP/HTTP converts.
	tr := &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry",
		ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(t, &tracev3.OpenTelemetryConfig{HttpService: httpSvc})}}}
	l, err := ConvertListener(tracedListener(t, corev3.TrafficDirection_INBOUND, tr))
	if err != nil {
		t.Fatal(err)
	}
	if e := l.HTTP[0].Tracing.Exporter; e.URL != "http://c/v1/traces" || e.Cluster != "c" || e.Timeout != time.Second {
		t.Errorf("http exporter %+v", e)
	}
}

// The tracer's cluster (envoy_grpc.cluster_name, http_uri.cluster) must be
// defined, as a route's must, unless clusters may still arrive over CDS.
func TestTracingClusterMustExist(t *testing.T) {
	grpcSvc := &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: "otel"}}}
	httpSvc := &corev3.HttpService{HttpUri: &corev3.HttpUri{Uri: "http://c/v1/traces", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "otel"}, Timeout: durationpb.New(time.Second)}}
	otel := &clusterv3.Cluster{Name: "otel", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
	other := &clusterv3.Cluster{Name: "other", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
	for _, tc := range []struct {
		name, path string
		otel       *tracev3.OpenTelemetryConfig
	}{
		{"grpc", "grpc_service.envoy_grpc.cluster_name", &tracev3.OpenTelemetryConfig{GrpcService: grpcSvc}},
		{"http", "http_service.http_uri.cluster", &tracev3.OpenTelemetryConfig{HttpService: httpSvc}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry",
				ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(t, tc.otel)}}}
			ls := []*listenerv3.Listener{tracedListener(t, corev3.TrafficDirection_OUTBOUND, tr)}
			_, err := BuildWith(Options{AllowMissingRoutes: true}, ls, nil, []*clusterv3.Cluster{other})
			want := `listeners[0].filter_chains[0].filters[0].typed_config.tracing.provider.typed_config.` + tc.path + `: cluster "otel" is not defined`
			if err == nil || err.Error() != want {
				t.Errorf("missing cluster: %v\nwant %s", err, want)
			}
			if _, err := BuildWith(Options{AllowMissingRoutes: true}, ls, nil, []*clusterv3.Cluster{other, otel}); err != nil {
				t.Errorf("defined cluster: %v", err)
			}
			if _, err := BuildWith(Options{AllowMissingRoutes: true, AllowMissingClusters: true}, ls, nil, []*clusterv3.Cluster{other}); err != nil {
				t.Errorf("clusters over CDS: %v", err)
			}
		})
	}
}
