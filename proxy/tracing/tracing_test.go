package tracing

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

func TestExtractB3(t *testing.T) {
	const tid, sid = "463ac35c9f6413ad48485a3953bb6124", "a2fb4a1d1a96d312"
	for _, tc := range []struct {
		name                  string
		hdr                   map[string]string
		ok, sampled, deferred bool
		trace                 string
	}{
		{"single sampled", map[string]string{"B3": tid + "-" + sid + "-1"}, true, true, false, tid},
		{"single unsampled", map[string]string{"B3": tid + "-" + sid + "-0"}, true, false, false, tid},
		{"single debug", map[string]string{"B3": tid + "-" + sid + "-d-" + sid}, true, true, false, tid},
		{"single deferred", map[string]string{"B3": tid + "-" + sid}, true, false, true, tid},
		{"single 64-bit", map[string]string{"B3": "48485a3953bb6124-" + sid + "-1"}, true, true, false, "000000000000000048485a3953bb6124"},
		{"sampling only", map[string]string{"B3": "1"}, false, false, false, ""},
		{"bad hex", map[string]string{"B3": "zz-" + sid + "-1"}, false, false, false, ""},
		{"bad flag", map[string]string{"B3": tid + "-" + sid + "-x"}, false, false, false, ""},
		{"multi", map[string]string{"X-B3-Traceid": tid, "X-B3-Spanid": sid, "X-B3-Sampled": "1"}, true, true, false, tid},
		{"multi flags", map[string]string{"X-B3-Traceid": tid, "X-B3-Spanid": sid, "X-B3-Flags": "1"}, true, true, false, tid},
		{"multi no span", map[string]string{"X-B3-Traceid": tid}, false, false, false, ""},
		{"none", nil, false, false, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tc.hdr {
				h[k] = []string{v}
			}
			sc, deferred, ok := extractB3(h)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if sc.TraceID().String() != tc.trace || sc.SpanID().String() != sid || sc.IsSampled() != tc.sampled || deferred != tc.deferred {
				t.Errorf("got trace %s span %s sampled %v deferred %v", sc.TraceID(), sc.SpanID(), sc.IsSampled(), deferred)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	tr := &Tracer{cfg: Config{RandomSampling: 0, ClientSampling: 100, OverallSampling: 100}}
	if tr.decide(http.Header{}) {
		t.Error("0 % random sampling traced a request")
	}
	if !tr.decide(http.Header{"X-Client-Trace-Id": {"a"}}) {
		t.Error("100 % client sampling did not trace a request with x-client-trace-id")
	}
	if !tr.decide(http.Header{"X-Envoy-Force-Trace": {"1"}}) {
		t.Error("x-envoy-force-trace was not traced")
	}
	tr.cfg.OverallSampling = 0
	if tr.decide(http.Header{"X-Envoy-Force-Trace": {"1"}}) {
		t.Error("0 % overall sampling traced a request")
	}
	tr.cfg = Config{RandomSampling: 50, OverallSampling: 100}
	n := 0
	for i := 0; i < 2000; i++ {
		if tr.decide(http.Header{}) {
			n++
		}
	}
	if n < 800 || n > 1200 {
		t.Errorf("50 %% sampling traced %d of 2000", n)
	}
}

// failingExporter fails every export.
type failingExporter struct {
	mu sync.Mutex
	n  int
}

func (f *failingExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error {
	f.mu.Lock()
	f.n++
	f.mu.Unlock()
	return errors.New("collector unavailable")
}
func (f *failingExporter) Shutdown(context.Context) error { return nil }

func TestLoggingExporterLogsOncePerInterval(t *testing.T) {
	var buf bytes.Buffer
	e := &loggingExporter{SpanExporter: &failingExporter{}, log: hclog.New(&hclog.LoggerOptions{Output: &buf}), target: "c:1"}
	for i := 0; i < 5; i++ {
		if err := e.ExportSpans(context.Background(), nil); err != nil {
			t.Fatalf("ExportSpans returned %v; errors are logged, not returned", err)
		}
	}
	if n := strings.Count(buf.String(), "span export failed"); n != 1 {
		t.Errorf("%d log lines for 5 failures in one interval, want 1:\n%s", n, buf.String())
	}
	if !strings.Contains(buf.String(), "collector unavailable") || !strings.Contains(buf.String(), "c:1") {
		t.Errorf("log line lacks the error or the collector: %s", buf.String())
	}
}

func TestRegistryErrors(t *testing.T) {
	g := NewRegistry(nil, nil)
	if _, err := g.Tracer(Config{}); err == nil || !strings.Contains(err.Error(), "exactly one") {
		t.Errorf("no exporter: %v", err)
	}
	if _, err := g.Tracer(Config{Exporter: Exporter{Cluster: "a", Target: "b"}}); err == nil {
		t.Error("two exporters accepted")
	}
	if _, err := g.Tracer(Config{Exporter: Exporter{Cluster: "otel"}}); err == nil || !strings.Contains(err.Error(), `"otel"`) {
		t.Errorf("cluster without a dialer: %v", err)
	}
	if _, err := g.Tracer(Config{Exporter: Exporter{URL: "http://c/v1/traces"}}); err == nil || !strings.Contains(err.Error(), "needs a cluster") {
		t.Errorf("OTLP/HTTP without a cluster: %v", err)
	}
	gd := NewRegistry(func(context.Context, string) (net.Conn, error) { return nil, errors.New("none") }, nil)
	if _, err := gd.Tracer(Config{Exporter: Exporter{URL: "https://c/v1/traces", Cluster: "c"}}); err == nil || !strings.Contains(err.Error(), "http:// URL is required") {
		t.Errorf("https OTLP/HTTP: %v", err)
	}
	if _, err := gd.Tracer(Config{Exporter: Exporter{URL: "http://c/v1/traces", Cluster: "c"}}); err != nil {
		t.Errorf("OTLP/HTTP: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	gd.Shutdown(ctx)
	if err := g.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Tracer(Config{Exporter: Exporter{Target: "127.0.0.1:1"}}); err == nil {
		t.Error("Tracer after Shutdown")
	}
}

// TestSampling checks parent-based sampling and propagation with the real
// SDK (the exporter's collector is never reached: nothing is sampled into
// it that the test waits for).
func TestSampling(t *testing.T) {
	dialed := make(chan string, 4)
	g := NewRegistry(func(ctx context.Context, cluster string) (net.Conn, error) {
		dialed <- cluster
		return nil, errors.New("no collector here")
	}, nil)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		g.Shutdown(ctx)
	}()
	cfg := DefaultConfig()
	cfg.RandomSampling = 0
	cfg.Exporter.Cluster = "otel"
	tr, err := g.Tracer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tr2, _ := g.Tracer(cfg)
	if tr.p != tr2.p {
		t.Error("two tracers of one exporter do not share a provider")
	}
	const parent = "0af7651916cd43dd8448eb211c80319c"
	for _, tc := range []struct {
		traceparent string
		sampled     bool
	}{{"", false}, {"00-" + parent + "-b7ad6b7169203331-01", true}, {"00-" + parent + "-b7ad6b7169203331-00", false}} {
		r := httptest.NewRequest("GET", "http://example.com/a?b=c", nil)
		if tc.traceparent != "" {
			r.Header.Set("Traceparent", tc.traceparent)
		}
		s := tr.Start(r)
		if s.Sampled() != tc.sampled {
			t.Errorf("traceparent %q: sampled %v, want %v", tc.traceparent, s.Sampled(), tc.sampled)
		}
		if tc.traceparent != "" && s.TraceID() != parent {
			t.Errorf("trace id %s, want the parent's", s.TraceID())
		}
		s.SetCluster("app")
		h := http.Header{"Tracestate": {"stale=1"}}
		a := s.StartAttempt(h, "127.0.0.1:8080")
		tp := h.Get("Traceparent")
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[1] != s.TraceID() || parts[2] == s.sc.SpanID().String() {
			t.Errorf("injected traceparent %q for trace %s", tp, s.TraceID())
		}
		if want := map[bool]string{true: "01", false: "00"}[tc.sampled]; parts[3] != want {
			t.Errorf("injected flags %s, want %s", parts[3], want)
		}
		if h.Get("Tracestate") == "stale=1" {
			t.Error("the client's tracestate went upstream unchanged from another context")
		}
		a.End(503, nil)
		a.End(200, nil) // only the first counts
		s.End(503, "", "127.0.0.1:8080")
	}
	r := httptest.NewRequest("GET", "http://example.com/", nil)
	r.Header.Set("Traceparent", "00-"+parent+"-b7ad6b7169203331-01")
	r.Header.Set("Tracestate", "vendor=x")
	s := tr.Start(r)
	h := http.Header{}
	s.StartAttempt(h, "h:1").End(0, errors.New("reset"))
	if h.Get("Tracestate") != "vendor=x" {
		t.Errorf("tracestate %q, want the parent's", h.Get("Tracestate"))
	}
	s.End(0, "UF", "")
}

func TestStartNames(t *testing.T) {
	g := NewRegistry(nil, nil)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		g.Shutdown(ctx)
	}()
	cfg := DefaultConfig()
	cfg.Exporter.Target = "127.0.0.1:1"
	cfg.Operation = "egress"
	tr, err := g.Tracer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "http://example.com/", nil)
	s := tr.Start(r)
	ro, ok := s.span.(sdktrace.ReadOnlySpan)
	if !ok || ro.Name() != "egress example.com" {
		t.Errorf("span %T, want a recording span named egress example.com", s.span)
	} else if ro.SpanKind() != trace.SpanKindServer {
		t.Errorf("kind %v", ro.SpanKind())
	}
	s.End(200, "", "")
}
