package server_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	sdkresource "go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
)

// collector is an in-process OTLP/gRPC trace service that keeps every span
// it receives with the service.name of its resource.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []gotSpan
}

type gotSpan struct {
	service string
	*tracepb.Span
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" {
				service = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				c.spans = append(c.spans, gotSpan{service, sp})
			}
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) all() []gotSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]gotSpan(nil), c.spans...)
}

func startCollector(t *testing.T) (*collector, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	c := &collector{}
	g := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(g, c)
	go g.Serve(l)
	t.Cleanup(g.Stop)
	return c, l.Addr().String()
}

// tracingHCM is an HCM tracing block; grpcService is the YAML of
// grpc_service (flow style), sampling extra lines at tracing level.
func tracingHCM(service, grpcService, sampling string) string {
	return fmt.Sprintf(`          tracing:
%s            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                service_name: %s
                grpc_service: %s
`, sampling, service, grpcService)
}

func attr(s *tracepb.Span, key string) (string, bool) {
	for _, kv := range s.GetAttributes() {
		if kv.GetKey() == key {
			v := kv.GetValue()
			if _, ok := v.GetValue().(*commonpb.AnyValue_IntValue); ok {
				return fmt.Sprint(v.GetIntValue()), true
			}
			return v.GetStringValue(), true
		}
	}
	return "", false
}

func hexID(b []byte) string { return hex.EncodeToString(b) }

// TestTracingTwoProxies chains client -> proxy A -> proxy B -> backend,
// each proxy exporting to one collector (A through an envoy_grpc cluster,
// B through google_grpc), and checks the spans' links and attributes, a
// retry's sibling client spans, an unsampled parent, B3 input and the
// trace id in the access log. The spans are flushed by stopping the
// proxies.
func TestTracingTwoProxies(t *testing.T) {
	col, colAddr := startCollector(t)
	var flaky atomic.Int32
	var mu sync.Mutex
	seen := map[string]string{} // path -> traceparent the backend got
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("Traceparent")
		mu.Unlock()
		if r.URL.Path == "/flaky" && flaky.Add(1) == 1 {
			w.WriteHeader(503)
			return
		}
		io.WriteString(w, "ok")
	}))
	pb := startProxy(t, bs{
		HCMExtra:     tracingHCM("proxy-b", fmt.Sprintf("{google_grpc: {target_uri: %q, stat_prefix: otel}}", colAddr), ""),
		VirtualHosts: vhostAll("app", ""),
		Clusters:     staticCluster("app", "", up),
	}.String())
	logPath := filepath.Join(t.TempDir(), "a.log")
	vhosts := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/flaky"}
                  route:
                    cluster: b
                    retry_policy: {retry_on: "5xx", num_retries: 1}
                - match: {prefix: "/"}
                  route: {cluster: b}
`
	pa := startProxy(t, bs{
		HCMExtra:     tracingHCM("proxy-a", "{envoy_grpc: {cluster_name: otel}, timeout: 5s}", "            random_sampling: {value: 100}\n") + fileAccessLog(logPath),
		VirtualHosts: vhosts,
		Clusters:     staticCluster("b", "", pb.addr["ingress"]) + staticCluster("otel", "", colAddr),
	}.String())

	const b3Trace, b3Span = "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312"
	const unsampledTrace = "0af7651916cd43dd8448eb211c80319c"
	get := func(path string, hdr ...string) {
		t.Helper()
		req := mustReq(t, "GET", "http://"+pa.addr["ingress"]+path)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := h1Client().Do(req)
		must(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: status %d", path, resp.StatusCode)
		}
	}
	get("/ok")
	get("/flaky")
	get("/unsampled", "Traceparent", "00-"+unsampledTrace+"-b7ad6b7169203331-00")
	get("/b3", "B3", b3Trace+"-"+b3Span+"-1")
	pa.stop(t) // flushes
	pb.stop(t)

	spans := col.all()
	byPath := func(service, path string, kind tracepb.Span_SpanKind) []gotSpan {
		var out []gotSpan
		for _, s := range spans {
			if p, _ := attr(s.Span, "url.path"); s.service == service && p == path && s.GetKind() == kind {
				out = append(out, s)
			}
		}
		return out
	}
	one := func(service, path string, kind tracepb.Span_SpanKind) *tracepb.Span {
		t.Helper()
		got := byPath(service, path, kind)
		if len(got) != 1 {
			t.Fatalf("%s %s %v: %d spans, want 1 (all: %d)", service, path, kind, len(got), len(spans))
		}
		return got[0].Span
	}
	srv := tracepb.Span_SPAN_KIND_SERVER
	cli := tracepb.Span_SPAN_KIND_CLIENT

	// /ok: four spans, one trace, each the parent of the next.
	sa, ca := one("proxy-a", "/ok", srv), one("proxy-a", "/ok", cli)
	sb, cb := one("proxy-b", "/ok", srv), one("proxy-b", "/ok", cli)
	trace := hexID(sa.GetTraceId())
	for _, s := range []*tracepb.Span{ca, sb, cb} {
		if hexID(s.GetTraceId()) != trace {
			t.Errorf("span %q in trace %s, want %s", s.GetName(), hexID(s.GetTraceId()), trace)
		}
	}
	if len(sa.GetParentSpanId()) != 0 {
		t.Errorf("A's server span has a parent")
	}
	for _, link := range []struct {
		what          string
		child, parent *tracepb.Span
	}{{"A client <- A server", ca, sa}, {"B server <- A client", sb, ca}, {"B client <- B server", cb, sb}} {
		if hexID(link.child.GetParentSpanId()) != hexID(link.parent.GetSpanId()) {
			t.Errorf("%s: parent %s, want %s", link.what, hexID(link.child.GetParentSpanId()), hexID(link.parent.GetSpanId()))
		}
	}
	mu.Lock()
	if want := "00-" + trace + "-" + hexID(cb.GetSpanId()) + "-01"; seen["/ok"] != want {
		t.Errorf("backend got traceparent %q, want %q", seen["/ok"], want)
	}
	mu.Unlock()
	if sa.GetName() != "ingress" || ca.GetName() != "router b egress" {
		t.Errorf("span names %q, %q", sa.GetName(), ca.GetName())
	}
	for key, want := range map[string]string{
		"http.request.method": "GET", "url.path": "/ok", "http.response.status_code": "200",
		"network.protocol.name": "http", "network.protocol.version": "1.1", "server.address": "127.0.0.1",
		"upstream_cluster": "b", "upstream_address": pb.addr["ingress"],
	} {
		if got, _ := attr(sa, key); got != want {
			t.Errorf("A server span %s = %q, want %q", key, got, want)
		}
	}
	for key, want := range map[string]string{
		"http.request.method": "GET", "upstream_cluster": "b", "upstream_address": pb.addr["ingress"], "http.response.status_code": "200",
	} {
		if got, _ := attr(ca, key); got != want {
			t.Errorf("A client span %s = %q, want %q", key, got, want)
		}
	}
	if got, _ := attr(cb, "upstream_cluster"); got != "app" {
		t.Errorf("B client span upstream_cluster = %q", got)
	}

	// /flaky: one server span, two sibling client spans (503 then 200).
	fs := one("proxy-a", "/flaky", srv)
	tries := byPath("proxy-a", "/flaky", cli)
	if len(tries) != 2 {
		t.Fatalf("retry: %d client spans, want 2", len(tries))
	}
	codes := map[string]bool{}
	for _, c := range tries {
		if hexID(c.GetParentSpanId()) != hexID(fs.GetSpanId()) {
			t.Errorf("retry attempt not a child of the server span")
		}
		code, _ := attr(c.Span, "http.response.status_code")
		codes[code] = true
		if code == "503" && c.GetStatus().GetCode() != tracepb.Status_STATUS_CODE_ERROR {
			t.Errorf("503 attempt status %v, want error", c.GetStatus())
		}
	}
	if !codes["503"] || !codes["200"] {
		t.Errorf("attempt statuses %v, want 503 and 200", codes)
	}
	if len(byPath("proxy-b", "/flaky", srv)) != 2 {
		t.Errorf("B saw %d server spans for /flaky, want 2", len(byPath("proxy-b", "/flaky", srv)))
	}

	// /unsampled: nothing exported, the decision travels on.
	for _, s := range spans {
		if hexID(s.GetTraceId()) == unsampledTrace {
			t.Errorf("span %q of the unsampled trace exported by %s", s.GetName(), s.service)
		}
	}
	mu.Lock()
	if tp := seen["/unsampled"]; !strings.HasPrefix(tp, "00-"+unsampledTrace+"-") || !strings.HasSuffix(tp, "-00") {
		t.Errorf("backend got traceparent %q for the unsampled request", tp)
	}
	mu.Unlock()

	// /b3: the B3 context is the parent.
	bs3 := one("proxy-a", "/b3", srv)
	if hexID(bs3.GetTraceId()) != b3Trace || hexID(bs3.GetParentSpanId()) != b3Span {
		t.Errorf("B3 parent: trace %s parent %s", hexID(bs3.GetTraceId()), hexID(bs3.GetParentSpanId()))
	}

	// The access log line carries the trace id.
	data, err := os.ReadFile(logPath)
	must(t, err)
	found := false
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		must(t, json.Unmarshal([]byte(line), &m))
		if m["path"] == "/ok" {
			found = true
			if m["trace_id"] != trace {
				t.Errorf("access log trace_id %v, want %s", m["trace_id"], trace)
			}
		}
	}
	if !found {
		t.Errorf("no access log line for /ok:\n%s", data)
	}
}

// TestTracingSamplingZero: with random_sampling 0 nothing is exported,
// but the context (unsampled) still goes upstream.
func TestTracingSamplingZero(t *testing.T) {
	col, colAddr := startCollector(t)
	var got atomic.Value
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Traceparent"))
	}))
	p := startProxy(t, bs{
		HCMExtra:     tracingHCM("zero", fmt.Sprintf("{google_grpc: {target_uri: %q, stat_prefix: otel}}", colAddr), "            random_sampling: {value: 0}\n            overall_sampling: {value: 100}\n"),
		VirtualHosts: vhostAll("app", ""),
		Clusters:     staticCluster("app", "", up),
	}.String())
	for i := 0; i < 20; i++ {
		resp, err := h1Client().Get("http://" + p.addr["ingress"] + "/")
		must(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	p.stop(t)
	if n := len(col.all()); n != 0 {
		t.Errorf("%d spans exported at 0 %% sampling", n)
	}
	if tp, _ := got.Load().(string); !strings.HasPrefix(tp, "00-") || !strings.HasSuffix(tp, "-00") {
		t.Errorf("backend got traceparent %q, want an unsampled one", tp)
	}
}

// TestTracingCollectorDown: an unreachable collector costs neither
// requests nor a slow shutdown.
func TestTracingCollectorDown(t *testing.T) {
	dead := freeAddr(t)
	up := backend(t, echo("a"))
	p := startProxy(t, bs{
		HCMExtra:     tracingHCM("down", fmt.Sprintf("{google_grpc: {target_uri: %q, stat_prefix: otel}}", dead), ""),
		VirtualHosts: vhostAll("app", ""),
		Clusters:     staticCluster("app", "", up),
	}.String())
	for i := 0; i < 5; i++ {
		resp, err := h1Client().Get("http://" + p.addr["ingress"] + "/")
		must(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	p.stop(t) // bounded by the flush timeout (startProxy's stop fails after 15s)
}

func TestTracingConfigRefused(t *testing.T) {
	for _, tc := range []struct{ name, hcm, want string }{
		{"no provider", "          tracing:\n            random_sampling: {value: 5}\n", "tracing.provider"},
		{"http_service", `          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                http_service: {http_uri: {uri: "https://127.0.0.1:4318/v1/traces", cluster: otel, timeout: 1s}}
`, "tracing.provider.typed_config.http_service.http_uri.uri"},
		{"http_service headers", `          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                http_service:
                  http_uri: {uri: "http://127.0.0.1:4318/v1/traces", cluster: otel, timeout: 1s}
                  request_headers_to_add: [{header: {key: a, value: b}}]
`, "tracing.provider.typed_config.http_service.request_headers_to_add"},
		{"no grpc_service", `          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                service_name: x
`, "tracing.provider.typed_config.grpc_service"},
		{"spawn_upstream_span", tracingHCM("x", "{google_grpc: {target_uri: \"127.0.0.1:1\", stat_prefix: otel}}", "            spawn_upstream_span: true\n"), "tracing.spawn_upstream_span"},
		{"custom_tags", tracingHCM("x", "{google_grpc: {target_uri: \"127.0.0.1:1\", stat_prefix: otel}}", "            custom_tags: [{tag: a, literal: {value: b}}]\n"), "tracing.custom_tags"},
		{"max_cache_size 0", strings.Replace(tracingHCM("x", "{google_grpc: {target_uri: \"127.0.0.1:1\", stat_prefix: otel}}", ""), "service_name: x", "service_name: x\n                max_cache_size: 0", 1), "max_cache_size: must be at least 1"},
		{"empty cluster", tracingHCM("x", "{envoy_grpc: {cluster_name: \"\"}}", ""), "tracing.provider.typed_config.grpc_service.envoy_grpc.cluster_name: value length must be at least 1 runes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bootstrap.Load("", bs{HCMExtra: tc.hcm, VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", "127.0.0.1:9")}.String())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("bootstrap.Load: %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// BenchmarkProxyHTTP1Tracing1pct is BenchmarkProxyHTTP1 with tracing at
// 1 % random sampling to a local collector.
func BenchmarkProxyHTTP1Tracing1pct(b *testing.B) {
	t := &testing.T{}
	_, colAddr := startCollector(t)
	up := tinyBackend(b)
	p := startProxy(t, bs{
		HCMExtra:     tracingHCM("bench", fmt.Sprintf("{google_grpc: {target_uri: %q, stat_prefix: otel}}", colAddr), "            random_sampling: {value: 1}\n"),
		VirtualHosts: vhostAll("app", ""),
		Clusters:     staticCluster("app", "", up),
	}.String())
	b.Cleanup(func() { p.stop(t) })
	benchGet(b, h1Client(), "http://"+p.addr["ingress"]+"/")
}

// TestTracingHedge: a hedged request's two attempts are sibling client
// spans; the one that lost the race ends in error.
func TestTracingHedge(t *testing.T) {
	col, colAddr := startCollector(t)
	var n atomic.Int32
	release := make(chan struct{})
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			select { // the first attempt is slow: the hedge wins
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	}))
	defer close(release)
	vhosts := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/"}
                  route:
                    cluster: app
                    retry_policy: {retry_on: "5xx", num_retries: 1, per_try_timeout: 0.1s}
                    hedge_policy: {hedge_on_per_try_timeout: true}
`
	textLog := filepath.Join(t.TempDir(), "text.log")
	p := startProxy(t, bs{
		HCMExtra: tracingHCM("hedge", fmt.Sprintf("{google_grpc: {target_uri: %q, stat_prefix: otel}}", colAddr), "") + fmt.Sprintf(`          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: %q
              log_format: {text_format: "trace=%%TRACE_ID%%\n"}
`, textLog),
		VirtualHosts: vhosts,
		Clusters:     staticCluster("app", "", up),
	}.String())
	resp, err := h1Client().Get("http://" + p.addr["ingress"] + "/h")
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	p.stop(t)
	var server *tracepb.Span
	var clients []*tracepb.Span
	for _, s := range col.all() {
		switch s.GetKind() {
		case tracepb.Span_SPAN_KIND_SERVER:
			server = s.Span
		case tracepb.Span_SPAN_KIND_CLIENT:
			clients = append(clients, s.Span)
		}
	}
	if server == nil || len(clients) != 2 {
		t.Fatalf("server span %v, %d client spans; want 1 and 2", server != nil, len(clients))
	}
	errs := 0
	for _, c := range clients {
		if hexID(c.GetParentSpanId()) != hexID(server.GetSpanId()) {
			t.Errorf("hedged attempt is not a child of the server span")
		}
		if c.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
			errs++
		}
	}
	if errs != 1 {
		t.Errorf("%d attempts in error, want 1 (the one that lost)", errs)
	}
	data, err := os.ReadFile(textLog)
	must(t, err)
	if want := "trace=" + hexID(server.GetTraceId()) + "\n"; string(data) != want {
		t.Errorf("%%TRACE_ID%% log %q, want %q", data, want)
	}
}

// TestTracingOTLPHTTP exports over OTLP/HTTP (http_service) to a
// collector reached through a cluster.
func TestTracingOTLPHTTP(t *testing.T) {
	col := &collector{}
	var paths sync.Map
	colAddr := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.Path+" "+r.Header.Get("Content-Type"), true)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		col.Export(r.Context(), &req)
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	up := backend(t, echo("a"))
	hcmYAML := `          tracing:
            provider:
              name: envoy.tracers.opentelemetry
              typed_config:
                "@type": type.googleapis.com/envoy.config.trace.v3.OpenTelemetryConfig
                service_name: over-http
                http_service:
                  http_uri: {uri: "http://collector.example/v1/traces", cluster: otlp, timeout: 5s}
`
	p := startProxy(t, bs{
		HCMExtra:     hcmYAML,
		VirtualHosts: vhostAll("app", ""),
		Clusters:     staticCluster("app", "", up) + staticCluster("otlp", "", colAddr),
	}.String())
	resp, err := h1Client().Get("http://" + p.addr["ingress"] + "/via-http")
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	p.stop(t)
	spans := col.all()
	if len(spans) != 2 {
		t.Fatalf("%d spans over OTLP/HTTP, want 2 (server and client)", len(spans))
	}
	for _, s := range spans {
		if path, _ := attr(s.Span, "url.path"); s.service != "over-http" || path != "/via-http" {
			t.Errorf("span %q service %q path %q", s.GetName(), s.service, path)
		}
	}
	if _, ok := paths.Load("/v1/traces application/x-protobuf"); !ok {
		t.Errorf("the collector was not POSTed protobuf at /v1/traces")
	}
}

// grpcApp is a grpc-go server running the interop TestService behind
// otelgrpc's server stats handler, exporting its spans as service
// grpc-app to the collector at colAddr with the W3C propagator. shutdown
// flushes its spans.
func grpcApp(t *testing.T, colAddr string) (addr string, shutdown func()) {
	t.Helper()
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(colAddr), otlptracegrpc.WithInsecure())
	must(t, err)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp),
		sdktrace.WithResource(sdkresource.NewSchemaless(attribute.String("service.name", "grpc-app"))))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	s := grpc.NewServer(grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(propagation.TraceContext{}))))
	testpb.RegisterTestServiceServer(s, testService{})
	go s.Serve(l)
	var once sync.Once
	shutdown = func() {
		once.Do(func() {
			s.Stop()
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := tp.Shutdown(sctx); err != nil {
				t.Errorf("grpc-app tracer shutdown: %v", err)
			}
		})
	}
	t.Cleanup(shutdown)
	return l.Addr().String(), shutdown
}

// TestTracingTwoProxiesAndGRPCApp chains a gRPC client -> proxy A ->
// proxy B -> a grpc-go app instrumented with otelgrpc, all three exporting
// to one collector, and checks that the five spans of a call form one
// trace, each the parent of the next (the app's server span a child of
// B's client span, through the traceparent B sends), with the attributes
// each side sets; a failing call shows as an error at the app.
func TestTracingTwoProxiesAndGRPCApp(t *testing.T) {
	col, colAddr := startCollector(t)
	app, stopApp := grpcApp(t, colAddr)
	grpcRoute := func(cluster string) string {
		return fmt.Sprintf(`              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/", grpc: {}}
                  route: {cluster: %s, timeout: 0s}
`, cluster)
	}
	otlp := fmt.Sprintf("{google_grpc: {target_uri: %q, stat_prefix: otel}}", colAddr)
	pb := startProxy(t, bs{
		HCMExtra:     tracingHCM("proxy-b", otlp, ""),
		VirtualHosts: grpcRoute("app"),
		Clusters:     staticCluster("app", h2cOptions, app),
	}.String())
	pa := startProxy(t, bs{
		HCMExtra:     tracingHCM("proxy-a", otlp, "            random_sampling: {value: 100}\n"),
		VirtualHosts: grpcRoute("b"),
		Clusters:     staticCluster("b", h2cOptions, pb.addr["ingress"]),
	}.String())

	client := grpcClient(t, pa.addr["ingress"])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 3}); err != nil {
		t.Fatalf("UnaryCall through two proxies: %v", err)
	}
	_, err := client.EmptyCall(ctx, &testpb.Empty{})
	must(t, err)
	_, err = client.UnaryCall(ctx, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: int32(codes.Internal), Message: "boom"}})
	if status.Code(err) != codes.Internal {
		t.Fatalf("failing call: %v, want Internal", err)
	}
	pa.stop(t) // flushes
	pb.stop(t)
	stopApp()

	spans := col.all()
	dump := func() string {
		var sb strings.Builder
		for _, s := range spans {
			p, _ := attr(s.Span, "url.path")
			fmt.Fprintf(&sb, "  %s %v %q path=%q trace=%s span=%s parent=%s\n", s.service, s.GetKind(), s.GetName(), p,
				hexID(s.GetTraceId()), hexID(s.GetSpanId()), hexID(s.GetParentSpanId()))
		}
		return sb.String()
	}
	const unary = "/grpc.testing.TestService/UnaryCall"
	// The proxies' spans of one call, in trace order; the first UnaryCall
	// is the one whose trace holds an app span without error.
	proxySpans := func(service string, kind tracepb.Span_SpanKind, path string) []*tracepb.Span {
		var out []*tracepb.Span
		for _, s := range spans {
			if p, _ := attr(s.Span, "url.path"); s.service == service && s.GetKind() == kind && p == path {
				out = append(out, s.Span)
			}
		}
		return out
	}
	var appOK, appFail *tracepb.Span
	for _, s := range spans {
		if s.service != "grpc-app" {
			continue
		}
		if s.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
			t.Errorf("app span %q of kind %v, want server", s.GetName(), s.GetKind())
		}
		if s.GetName() == strings.TrimPrefix(unary, "/") {
			if s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
				appFail = s.Span
			} else {
				appOK = s.Span
			}
		}
	}
	if appOK == nil || appFail == nil {
		t.Fatalf("the app exported no server span for the good and the failing UnaryCall; spans:\n%s", dump())
	}
	trace := hexID(appOK.GetTraceId())
	inTrace := func(ss []*tracepb.Span) *tracepb.Span {
		t.Helper()
		var found *tracepb.Span
		for _, s := range ss {
			if hexID(s.GetTraceId()) == trace {
				if found != nil {
					t.Fatalf("two spans of one kind in trace %s; spans:\n%s", trace, dump())
				}
				found = s
			}
		}
		if found == nil {
			t.Fatalf("no span in trace %s; spans:\n%s", trace, dump())
		}
		return found
	}
	srv, cli := tracepb.Span_SPAN_KIND_SERVER, tracepb.Span_SPAN_KIND_CLIENT
	sa, ca := inTrace(proxySpans("proxy-a", srv, unary)), inTrace(proxySpans("proxy-a", cli, unary))
	sb, cb := inTrace(proxySpans("proxy-b", srv, unary)), inTrace(proxySpans("proxy-b", cli, unary))
	if len(sa.GetParentSpanId()) != 0 {
		t.Errorf("A's server span has a parent: the client sent no context")
	}
	for _, link := range []struct {
		what          string
		child, parent *tracepb.Span
	}{
		{"A client <- A server", ca, sa}, {"B server <- A client", sb, ca},
		{"B client <- B server", cb, sb}, {"app server <- B client", appOK, cb},
	} {
		if hexID(link.child.GetParentSpanId()) != hexID(link.parent.GetSpanId()) {
			t.Errorf("%s: parent %s, want %s; spans:\n%s", link.what, hexID(link.child.GetParentSpanId()),
				hexID(link.parent.GetSpanId()), dump())
		}
	}
	// The failing call is another trace with the same shape at the end.
	failB := proxySpans("proxy-b", cli, unary)
	linked := false
	for _, s := range failB {
		linked = linked || (hexID(s.GetTraceId()) == hexID(appFail.GetTraceId()) && hexID(s.GetSpanId()) == hexID(appFail.GetParentSpanId()))
	}
	if !linked || hexID(appFail.GetTraceId()) == trace {
		t.Errorf("the failing call's app span is not a child of a B client span in its own trace; spans:\n%s", dump())
	}

	// Attributes: HTTP semantics at the proxies (gRPC is HTTP/2 POST),
	// RPC semantics at the app.
	for _, c := range []struct {
		what string
		span *tracepb.Span
		want map[string]string
	}{
		{"A server", sa, map[string]string{"http.request.method": "POST", "url.path": unary, "http.response.status_code": "200",
			"network.protocol.version": "2", "upstream_cluster": "b", "upstream_address": pb.addr["ingress"]}},
		{"A client", ca, map[string]string{"http.request.method": "POST", "upstream_cluster": "b", "http.response.status_code": "200"}},
		{"B server", sb, map[string]string{"url.path": unary, "network.protocol.version": "2", "upstream_cluster": "app"}},
		{"B client", cb, map[string]string{"upstream_cluster": "app", "upstream_address": app, "http.response.status_code": "200"}},
		{"app", appOK, map[string]string{"rpc.system.name": "grpc", "rpc.method": "grpc.testing.TestService/UnaryCall",
			"rpc.response.status_code": "OK"}},
		{"failing app", appFail, map[string]string{"rpc.response.status_code": "INTERNAL"}},
	} {
		for key, want := range c.want {
			if got, _ := attr(c.span, key); got != want {
				t.Errorf("%s span %s = %q, want %q", c.what, key, got, want)
			}
		}
	}
	if sa.GetName() != "ingress" || ca.GetName() != "router b egress" || cb.GetName() != "router app egress" {
		t.Errorf("span names %q, %q, %q", sa.GetName(), ca.GetName(), cb.GetName())
	}
	// Every service exported something for EmptyCall too: three hops each time.
	for _, service := range []string{"proxy-a", "proxy-b", "grpc-app"} {
		n := 0
		for _, s := range spans {
			p, _ := attr(s.Span, "url.path")
			if s.service == service && (strings.HasSuffix(s.GetName(), "EmptyCall") || strings.HasSuffix(p, "EmptyCall")) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("%s exported no span for EmptyCall", service)
		}
	}
}
