package snapshot

import (
	"strings"

	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"

	"github.com/outrigger-mesh/outrigger/proxy/tracing"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// tracingConfig converts the connection manager's tracing block: the
// envoy.tracers.opentelemetry provider over OTLP/gRPC and the three
// sampling percentages (the support table refuses the rest); OTLP/HTTP
// through http_service. The exporter's cluster must be defined, like a
// route's, unless clusters may still arrive (AllowMissingClusters).
func (c *converter) tracingConfig(p string, t *hcmv3.HttpConnectionManager_Tracing) *tracing.Config {
	cfg := tracing.DefaultConfig()
	cfg.RandomSampling = percent(t.GetRandomSampling(), 100)
	cfg.ClientSampling = percent(t.GetClientSampling(), 100)
	cfg.OverallSampling = percent(t.GetOverallSampling(), 100)
	pp := resource.Join(p, "provider")
	if t.GetProvider() == nil {
		c.fail(pp, "tracing needs a provider (envoy.tracers.opentelemetry)")
		return nil
	}
	var otel tracev3.OpenTelemetryConfig
	if !c.unpack(resource.Join(pp, "typed_config"), t.GetProvider().GetTypedConfig(), &otel) {
		return nil
	}
	op := resource.Join(pp, "typed_config")
	gs := otel.GetGrpcService()
	gp := resource.Join(op, "grpc_service")
	if hs := otel.GetHttpService(); hs != nil {
		hp := resource.Join(op, "http_service")
		if gs != nil {
			c.fail(hp, "give grpc_service or http_service, not both")
			return nil
		}
		u := hs.GetHttpUri()
		cfg.Exporter.URL, cfg.Exporter.Cluster = u.GetUri(), u.GetCluster()
		cfg.Exporter.Timeout = duration(u.GetTimeout(), 0)
		if !strings.HasPrefix(cfg.Exporter.URL, "http://") {
			c.fail(resource.Join(hp, "http_uri.uri"), "%q: an http:// URL is required (TLS is not supported)", cfg.Exporter.URL)
			return nil
		}
		if cfg.Exporter.Cluster == "" {
			c.fail(resource.Join(hp, "http_uri.cluster"), "a cluster is required")
			return nil
		}
		c.clusterRefs = append(c.clusterRefs, reference{path: resource.Join(hp, "http_uri.cluster"), name: cfg.Exporter.Cluster})
		return c.tracingCommon(op, &otel, &cfg)
	}
	switch {
	case gs == nil:
		c.fail(gp, "the OpenTelemetry tracer needs a grpc_service (OTLP/gRPC) or an http_service (OTLP/HTTP)")
		return nil
	case gs.GetEnvoyGrpc() != nil:
		cfg.Exporter.Cluster = gs.GetEnvoyGrpc().GetClusterName()
		cfg.Exporter.Authority = gs.GetEnvoyGrpc().GetAuthority()
		if cfg.Exporter.Cluster == "" {
			c.fail(resource.Join(gp, "envoy_grpc.cluster_name"), "a cluster name is required")
			return nil
		}
		c.clusterRefs = append(c.clusterRefs, reference{path: resource.Join(gp, "envoy_grpc.cluster_name"), name: cfg.Exporter.Cluster})
	case gs.GetGoogleGrpc() != nil:
		cfg.Exporter.Target = gs.GetGoogleGrpc().GetTargetUri()
		if cfg.Exporter.Target == "" {
			c.fail(resource.Join(gp, "google_grpc.target_uri"), "a target URI is required")
			return nil
		}
	default:
		c.fail(gp, "give envoy_grpc.cluster_name or google_grpc.target_uri")
		return nil
	}
	cfg.Exporter.Timeout = duration(gs.GetTimeout(), 0)
	return c.tracingCommon(op, &otel, &cfg)
}

// tracingCommon converts the OpenTelemetryConfig fields of both
// transports; op is its path.
func (c *converter) tracingCommon(op string, otel *tracev3.OpenTelemetryConfig, cfg *tracing.Config) *tracing.Config {
	cfg.Exporter.ServiceName = otel.GetServiceName()
	if n := otel.GetMaxCacheSize(); n != nil {
		if n.GetValue() == 0 {
			c.fail(resource.Join(op, "max_cache_size"), "must be at least 1")
			return nil
		}
		cfg.Exporter.MaxQueue = int(n.GetValue())
	}
	return cfg
}

// percent is an Envoy Percent in [0, 100], def when unset.
func percent(p *typev3.Percent, def float64) float64 {
	if p == nil {
		return def
	}
	return min(max(p.GetValue(), 0), 100)
}
