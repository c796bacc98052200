package tracing

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestHeaderRoundTrip(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	shutdown, err := Setup(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = shutdown(context.Background()) }()
	tp := sdktrace.NewTracerProvider()
	ctx, span := tp.Tracer("t").Start(context.Background(), "root")
	defer span.End()
	h := nats.Header{}
	Inject(ctx, h)
	if h.Get("traceparent") == "" {
		t.Fatalf("no traceparent in %v", h)
	}
	if keys := HeaderCarrier(h).Keys(); len(keys) == 0 {
		t.Fatalf("Keys() = %v", keys)
	}
	got := trace.SpanContextFromContext(Extract(context.Background(), h))
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() || !got.IsRemote() {
		t.Fatalf("extracted %v, want the remote %v", got, span.SpanContext())
	}
}

// TestSetupExporter: with an endpoint, Setup installs an SDK provider
// (nothing listens there; shutdown must still return).
func TestSetupExporter(t *testing.T) {
	for _, proto := range []string{"grpc", "http/protobuf"} {
		t.Run(proto, func(t *testing.T) {
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", proto)
			prev := otel.GetTracerProvider()
			defer otel.SetTracerProvider(prev)
			shutdown, err := Setup(context.Background(), "test")
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider); !ok {
				t.Fatalf("provider = %T, want the SDK's", otel.GetTracerProvider())
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // do not wait on the unreachable collector
			_ = shutdown(ctx)
		})
	}
}
