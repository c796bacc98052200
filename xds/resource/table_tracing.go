package resource

import (
	_ "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3" // registers OpenTelemetryConfig
	"google.golang.org/protobuf/reflect/protoreflect"
)

// OpenTelemetryTracer is the message of the envoy.tracers.opentelemetry
// tracer.
const OpenTelemetryTracer protoreflect.FullName = "envoy.config.trace.v3.OpenTelemetryConfig"

// The tracing feature's part of the support table (see docs/tracing.md).
var (
	tracingExtensions = []Extension{
		{"envoy.tracers.opentelemetry", OpenTelemetryTracer, "HttpConnectionManager tracing.provider.typed_config (OTLP over gRPC or HTTP; see docs/tracing.md)"},
	}
	tracingMessages = []Message{
		{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", map[string]Field{
			"tracing": note(supported, "the envoy.tracers.opentelemetry provider; see docs/tracing.md"),
		}},
		{"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.Tracing", map[string]Field{
			"provider":         note(supported, "required"),
			"random_sampling":  note(supported, "default 100 %; a parent context's sampled flag wins"),
			"client_sampling":  note(supported, "requests with x-client-trace-id; default 100 %"),
			"overall_sampling": note(supported, "applied after random or client sampling; default 100 %"),
			"verbose":          note(ignored, "no per-filter spans are made"),
		}},
		{"envoy.config.trace.v3.Tracing.Http", map[string]Field{
			"name":         supported,
			"typed_config": anyOf(OpenTelemetryTracer),
		}},
		{"envoy.config.core.v3.HttpService", map[string]Field{
			"http_uri": supported,
		}},
		{"envoy.config.core.v3.HttpUri", map[string]Field{
			"uri":     note(supported, "an http:// URL"),
			"cluster": supported,
			"timeout": supported,
		}},
		{OpenTelemetryTracer, map[string]Field{
			"grpc_service":   note(supported, "OTLP/gRPC, plaintext: envoy_grpc.cluster_name (a host of the cluster, picked when connecting) or google_grpc.target_uri"),
			"http_service":   note(supported, "OTLP/HTTP (protobuf), plaintext: POSTs to http_uri.uri over connections to a host of http_uri.cluster"),
			"service_name":   note(supported, "the service.name resource attribute; default outrigger"),
			"max_cache_size": note(supported, "bounds the export queue (default 1024); spans beyond it are dropped"),
		}},
	}
)
