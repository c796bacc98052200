package translate

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// The proxy-defaults Config keys that turn tracing on for every sidecar
// and gateway: the proxies then report a span per request (and per
// upstream attempt) over OTLP/gRPC, so one trace runs from the edge
// through every hop.
const (
	// ConfigOTLPAddress is an OTLP/gRPC collector's "host:port" (an IP,
	// reached from every proxy).
	ConfigOTLPAddress = "outrigger_otlp_address"
	// ConfigTraceSampling is the percentage of requests that start a
	// trace (Envoy's random_sampling; default 100). A sampled parent is
	// followed whatever it is.
	ConfigTraceSampling = "outrigger_trace_sampling"
)

// OTLPClusterName is the cluster of the trace collector.
const OTLPClusterName = "outrigger_otlp"

// tracingConfig is the proxies' tracing from proxy-defaults; nil when off.
type tracingConfig struct {
	host     string
	port     int
	sampling float64
}

func meshTracing(defaults map[string]any) (*tracingConfig, error) {
	v, ok := defaults[ConfigOTLPAddress]
	if !ok {
		return nil, nil
	}
	addr, _ := v.(string)
	host, portText, err := net.SplitHostPort(addr)
	port, perr := strconv.Atoi(portText)
	if err != nil || perr != nil || port <= 0 || port > 65535 || net.ParseIP(host) == nil {
		return nil, fmt.Errorf("translate: proxy-defaults Config[%q] = %v: want an IP:port", ConfigOTLPAddress, v)
	}
	tc := &tracingConfig{host: host, port: port, sampling: 100}
	if s, ok := defaults[ConfigTraceSampling]; ok {
		f, ok := s.(float64) // JSON numbers
		if !ok {
			if str, isStr := s.(string); isStr {
				var err error
				f, err = strconv.ParseFloat(str, 64)
				ok = err == nil
			}
		}
		if !ok || f < 0 || f > 100 {
			return nil, fmt.Errorf("translate: proxy-defaults Config[%q] = %v: want a percentage from 0 to 100", ConfigTraceSampling, s)
		}
		tc.sampling = f
	}
	return tc, nil
}

// addTracing gives every HTTP connection manager of r tracing to the
// collector under the proxy's service name, and adds the collector's
// cluster. Listeners are replaced by traced copies.
func (tc *tracingConfig) addTracing(r *Resources, service string) error {
	otel, err := marshalAny(&tracev3.OpenTelemetryConfig{
		GrpcService: &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: OTLPClusterName},
		}},
		ServiceName: service,
	})
	if err != nil {
		return err
	}
	tracing := &hcmv3.HttpConnectionManager_Tracing{
		Provider:       &tracev3.Tracing_Http{Name: "envoy.tracers.opentelemetry", ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: otel}},
		RandomSampling: &typev3.Percent{Value: tc.sampling},
	}
	for i, l := range r.Listeners {
		traced, changed, err := traceListener(l, tracing)
		if err != nil {
			return fmt.Errorf("translate: listener %q: %w", l.GetName(), err)
		}
		if changed {
			r.Listeners[i] = traced
		}
	}
	c := &clusterv3.Cluster{
		Name:                 OTLPClusterName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: OTLPClusterName,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(tc.host, tc.port)}},
			}}}},
		},
	}
	if err := setUpstreamProtocol(c, "grpc"); err != nil {
		return err
	}
	// Clusters are sorted by name: insert in place.
	i, _ := slices.BinarySearchFunc(r.Clusters, OTLPClusterName, func(c *clusterv3.Cluster, n string) int { return strings.Compare(c.GetName(), n) })
	r.Clusters = slices.Insert(r.Clusters, i, c)
	return nil
}

// traceListener returns a copy of l whose HTTP connection managers trace;
// changed is false when l has none.
func traceListener(l *listenerv3.Listener, tracing *hcmv3.HttpConnectionManager_Tracing) (*listenerv3.Listener, bool, error) {
	out := proto.Clone(l).(*listenerv3.Listener)
	changed := false
	chains := out.GetFilterChains()
	if out.GetDefaultFilterChain() != nil {
		chains = append(chains, out.GetDefaultFilterChain())
	}
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			if f.GetName() != hcmFilterName {
				continue
			}
			h := &hcmv3.HttpConnectionManager{}
			if err := f.GetTypedConfig().UnmarshalTo(h); err != nil {
				return nil, false, err
			}
			h.Tracing = tracing
			a, err := marshalAny(h)
			if err != nil {
				return nil, false, err
			}
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: a}
			changed = true
		}
	}
	return out, changed, nil
}
