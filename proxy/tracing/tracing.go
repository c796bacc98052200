// Package tracing is the connection manager's OpenTelemetry tracing: a
// server span per downstream request and a client span per upstream
// attempt, exported over OTLP/gRPC by a batching exporter. Incoming
// context is read from W3C traceparent/tracestate or B3 (single and multi
// header); outgoing requests carry W3C traceparent/tracestate. It never
// sees Envoy protos: proxy/snapshot converts the HttpConnectionManager's
// tracing block into Config.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"go.opentelemetry.io/otel/attribute"
)

// Exporter says where spans go: an OTLP/gRPC trace service, or OTLP/HTTP
// when URL is set.
type Exporter struct {
	// Cluster is grpc_service.envoy_grpc.cluster_name: spans go to a host
	// of that cluster, picked by the proxy's cluster manager at dial time
	// (plaintext). Target is grpc_service.google_grpc.target_uri, dialled
	// by gRPC (plaintext). Exactly one is set.
	Cluster string
	Target  string
	// URL is http_service.http_uri.uri (an http:// URL, e.g.
	// http://collector:4318/v1/traces): spans are POSTed there as OTLP
	// protobuf, over connections to a host of Cluster
	// (http_uri.cluster). Target is then empty.
	URL string
	// Authority is envoy_grpc.authority (default: the cluster name).
	Authority string
	// Timeout bounds one export (grpc_service.timeout; default 10s).
	Timeout time.Duration
	// ServiceName is the service.name resource attribute (Envoy's default
	// "unknown_service:envoy"; ours "outrigger").
	ServiceName string
	// MaxQueue bounds the spans waiting for export (max_cache_size,
	// default 1024); beyond it spans are dropped, never waited for.
	MaxQueue int
}

// Config is one connection manager's tracing block.
type Config struct {
	Exporter Exporter
	// Percentages in [0, 100] (Envoy's Percent): RandomSampling for
	// requests without a sampling decision, ClientSampling for those with
	// x-client-trace-id, OverallSampling applied after either. A parent
	// context's sampled flag overrides all three.
	RandomSampling  float64
	ClientSampling  float64
	OverallSampling float64
	// Operation names the server span: "ingress" or "egress" (the
	// listener's traffic_direction), as Envoy does; an egress span name
	// also carries the request's host ("egress example.com").
	Operation string
}

// DefaultConfig is a Config with Envoy's default percentages (100 %).
func DefaultConfig() Config {
	return Config{RandomSampling: 100, ClientSampling: 100, OverallSampling: 100, Operation: "ingress"}
}

// Dialer connects to a host of a named cluster (the proxy's cluster
// manager picks it).
type Dialer func(ctx context.Context, cluster string) (net.Conn, error)

// Registry owns the tracer providers of a proxy: connection managers with
// the same Exporter share one provider (one queue, one connection). It is
// flushed and closed by Shutdown when the proxy stops. A provider whose
// connection managers are gone stays until then.
type Registry struct {
	dial Dialer
	log  hclog.Logger

	mu        sync.Mutex
	providers map[string]*provider
	closed    bool
}

// NewRegistry makes a registry; dial resolves envoy_grpc clusters, log
// gets export errors (at most one line per ErrorLogInterval).
func NewRegistry(dial Dialer, log hclog.Logger) *Registry {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Registry{dial: dial, log: log, providers: map[string]*provider{}}
}

// ErrorLogInterval is the least time between two logged export errors.
var ErrorLogInterval = 30 * time.Second

// BatchTimeout is how long a span may wait in the queue before a batch is
// sent.
var BatchTimeout = time.Second

type provider struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	close  func() // the exporter's connections
}

// Tracer returns the tracer of one connection manager, creating the
// exporter's provider on first use. The connection is made lazily: an
// unreachable collector costs dropped spans and log lines, not an error.
func (g *Registry) Tracer(cfg Config) (*Tracer, error) {
	e := cfg.Exporter
	switch {
	case e.URL != "" && (e.Cluster == "" || e.Target != ""):
		return nil, errors.New("tracing: an OTLP/HTTP exporter needs a cluster and no gRPC target")
	case e.URL == "" && (e.Cluster == "") == (e.Target == ""):
		return nil, errors.New("tracing: give exactly one of envoy_grpc.cluster_name and google_grpc.target_uri")
	}
	if e.Cluster != "" && g.dial == nil {
		return nil, fmt.Errorf("tracing: cluster %q: no cluster manager to resolve it", e.Cluster)
	}
	key := fmt.Sprintf("%q|%q|%q|%q|%v|%q|%d", e.Cluster, e.Target, e.URL, e.Authority, e.Timeout, e.ServiceName, e.MaxQueue)
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errors.New("tracing: the proxy is shutting down")
	}
	p := g.providers[key]
	if p == nil {
		var err error
		if p, err = g.newProvider(e); err != nil {
			return nil, err
		}
		g.providers[key] = p
	}
	return &Tracer{p: p, cfg: cfg}, nil
}

func (g *Registry) newProvider(e Exporter) (*provider, error) {
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	var exp sdktrace.SpanExporter
	var closeFn func()
	var err error
	target := e.Target
	if e.URL != "" {
		target = e.URL
		exp, closeFn, err = g.httpExporter(e, timeout)
	} else {
		exp, closeFn, err = g.grpcExporter(e, timeout)
		if e.Cluster != "" {
			target = "cluster " + e.Cluster
		}
	}
	if err != nil {
		return nil, err
	}
	queue := e.MaxQueue
	if queue <= 0 {
		queue = 1024
	}
	name := e.ServiceName
	if name == "" {
		name = "outrigger"
	}
	res := resource.NewSchemaless(attribute.String("service.name", name))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		// Only sampled requests reach the SDK (Tracer.Start decides).
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithBatcher(&loggingExporter{SpanExporter: exp, log: g.log, target: target},
			sdktrace.WithMaxQueueSize(queue),
			sdktrace.WithMaxExportBatchSize(min(queue, 512)),
			sdktrace.WithBatchTimeout(BatchTimeout)),
	)
	return &provider{tp: tp, tracer: tp.Tracer("github.com/outrigger-mesh/outrigger/proxy"), close: closeFn}, nil
}

// grpcExporter is OTLP/gRPC to a cluster's host or a gRPC target.
func (g *Registry) grpcExporter(e Exporter, timeout time.Duration) (sdktrace.SpanExporter, func(), error) {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	target := e.Target
	if e.Cluster != "" {
		cluster, dial := e.Cluster, g.dial
		target = "passthrough:///" + cluster
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return dial(ctx, cluster)
		}))
		if e.Authority == "" {
			opts = append(opts, grpc.WithAuthority(cluster))
		}
	}
	if e.Authority != "" {
		opts = append(opts, grpc.WithAuthority(e.Authority))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: grpc_service %q: %w", target, err)
	}
	exp, err := otlptracegrpc.New(context.Background(),
		otlptracegrpc.WithGRPCConn(conn),
		otlptracegrpc.WithTimeout(timeout),
		// Retries happen off the request path; bounded so a dead
		// collector does not hold shutdown.
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: 200 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: 3 * time.Second}),
	)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("tracing: exporter for %q: %w", target, err)
	}
	return exp, func() { conn.Close() }, nil
}

// httpExporter is OTLP/HTTP (protobuf) to the URL, connecting to a host
// of the cluster.
func (g *Registry) httpExporter(e Exporter, timeout time.Duration) (sdktrace.SpanExporter, func(), error) {
	u, err := url.Parse(e.URL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, nil, fmt.Errorf("tracing: http_service uri %q: an http:// URL is required (TLS is not supported)", e.URL)
	}
	cluster, dial := e.Cluster, g.dial
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dial(ctx, cluster)
		},
		MaxIdleConnsPerHost: 2,
	}
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(e.URL),
		otlptracehttp.WithHTTPClient(&http.Client{Transport: tr}),
		otlptracehttp.WithTimeout(timeout),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: true, InitialInterval: 200 * time.Millisecond, MaxInterval: time.Second, MaxElapsedTime: 3 * time.Second}),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: exporter for %q: %w", e.URL, err)
	}
	return exp, tr.CloseIdleConnections, nil
}

// Shutdown flushes the spans still queued (bounded by ctx) and closes the
// exporters. Later Tracer calls fail.
func (g *Registry) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closed = true
	ps := g.providers
	g.providers = map[string]*provider{}
	g.mu.Unlock()
	var errs []error
	for _, p := range ps {
		if err := p.tp.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
		p.close()
	}
	return errors.Join(errs...)
}

// loggingExporter logs export failures at most once per ErrorLogInterval
// and hides them from the SDK (whose global handler would log each one).
type loggingExporter struct {
	sdktrace.SpanExporter
	log    hclog.Logger
	target string
	last   atomic.Int64 // unix nanos of the last logged error
	failed atomic.Int64 // failures since then
}

func (e *loggingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	err := e.SpanExporter.ExportSpans(ctx, spans)
	if err == nil {
		return nil
	}
	n := e.failed.Add(1)
	now := time.Now().UnixNano()
	last := e.last.Load()
	if now-last >= int64(ErrorLogInterval) && e.last.CompareAndSwap(last, now) {
		e.failed.Store(0)
		e.log.Warn("tracing: span export failed", "collector", e.target, "failures", n, "spans_dropped", len(spans), "error", err)
	}
	return nil
}

// Tracer starts the spans of one connection manager.
type Tracer struct {
	p   *provider
	cfg Config
}

// Config returns the tracer's configuration.
func (t *Tracer) Config() Config { return t.cfg }

// decide is the connection manager's sampling decision for a request
// without a parent context: forced by x-envoy-force-trace, client_sampling
// with x-client-trace-id, random_sampling otherwise; overall_sampling
// after either.
func (t *Tracer) decide(h map[string][]string) bool {
	var traced bool
	switch {
	case len(h["X-Envoy-Force-Trace"]) > 0:
		traced = true
	case len(h["X-Client-Trace-Id"]) > 0:
		traced = chance(t.cfg.ClientSampling)
	default:
		traced = chance(t.cfg.RandomSampling)
	}
	return traced && chance(t.cfg.OverallSampling)
}

// chance is true with probability pct percent.
func chance(pct float64) bool {
	switch {
	case pct >= 100:
		return true
	case pct <= 0:
		return false
	}
	return rand.Float64()*100 < pct
}
