package tracing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

var wellFormedTraceparent = regexp.MustCompile(`\A00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]\z`)

// FuzzTraceparent feeds arbitrary W3C traceparent/tracestate and B3
// (single b3, and multi x-b3-*) headers to the parsers and to Tracer.Start:
// nothing may panic; an accepted context round-trips (written back in its
// own format it reads the same); the request's upstream attempt carries a
// well-formed traceparent that continues the trace it came with, W3C first
// and B3 second, with the parent's sampling decision.
func FuzzTraceparent(f *testing.F) {
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	f.Add("00-"+tid+"-"+sid+"-01", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "", "", "", "", "")
	f.Add("00-"+tid+"-"+sid+"-00", "", "", "", "", "", "")
	f.Add("01-"+tid+"-"+sid+"-09-extra", "a=1,a=2", "", "", "", "", "")
	f.Add("00-00000000000000000000000000000000-"+sid+"-01", "", tid+"-"+sid+"-1", "", "", "", "")
	f.Add("ff-"+tid+"-"+sid+"-01", "", tid+"-"+sid+"-d-"+sid, "", "", "", "")
	f.Add("", "", "a3ce929d0e0e4736-"+sid+"-0", "", "", "", "")
	f.Add("", "", tid+"-"+sid, "", "", "", "")
	f.Add("", "", "1", "", "", "", "")
	f.Add("", "", "", tid, sid, "1", "")
	f.Add("", "", "", "a3ce929d0e0e4736", sid, "", "1")
	f.Add("", "", "", tid, sid, "true", "0")
	f.Add("00-"+tid+"-"+sid+"-01", "", "", tid, "0000000000000000", "1", "")
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample())) // no exporter: spans go nowhere
	f.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	cfg := DefaultConfig()
	cfg.RandomSampling = 0 // only a parent's decision samples
	tr := &Tracer{p: &provider{tp: tp, tracer: tp.Tracer("fuzz")}, cfg: cfg}

	f.Fuzz(func(t *testing.T, traceparent, tracestate, b3, b3Trace, b3Span, b3Sampled, b3Flags string) {
		h := http.Header{}
		for k, v := range map[string]string{
			"Traceparent": traceparent, "Tracestate": tracestate, "B3": b3,
			"X-B3-Traceid": b3Trace, "X-B3-Spanid": b3Span, "X-B3-Sampled": b3Sampled, "X-B3-Flags": b3Flags,
		} {
			if v != "" {
				h[k] = []string{v}
			}
		}

		// W3C: what the propagator accepts, inject writes back the same.
		var w3cParent trace.SpanContext
		if traceparent != "" {
			w3cParent = trace.SpanContextFromContext(w3c.Extract(context.Background(), propagation.HeaderCarrier(h)))
		}
		if w3cParent.IsValid() {
			out := http.Header{}
			inject(out, w3cParent)
			if !wellFormedTraceparent.MatchString(out.Get("Traceparent")) {
				t.Fatalf("inject wrote traceparent %q", out.Get("Traceparent"))
			}
			back := trace.SpanContextFromContext(w3c.Extract(context.Background(), propagation.HeaderCarrier(out)))
			if back.TraceID() != w3cParent.TraceID() || back.SpanID() != w3cParent.SpanID() ||
				back.IsSampled() != w3cParent.IsSampled() || back.TraceState().String() != w3cParent.TraceState().String() {
				t.Fatalf("traceparent %q tracestate %q: read %v, written %v, read back %v", traceparent, tracestate, w3cParent, out, back)
			}
		}

		// B3: an accepted context, written back as a single b3 header,
		// reads the same.
		b3Parent, deferred, b3OK := extractB3(h)
		if b3OK {
			if !b3Parent.IsValid() || !b3Parent.IsRemote() {
				t.Fatalf("b3 accepted an invalid or local context %v", b3Parent)
			}
			single := b3Parent.TraceID().String() + "-" + b3Parent.SpanID().String()
			if !deferred {
				single += map[bool]string{true: "-1", false: "-0"}[b3Parent.IsSampled()]
			}
			back, backDeferred, ok := extractB3(http.Header{"B3": {single}})
			if !ok || back.TraceID() != b3Parent.TraceID() || back.SpanID() != b3Parent.SpanID() ||
				back.IsSampled() != b3Parent.IsSampled() || backDeferred != deferred {
				t.Fatalf("b3 %q / %q %q %q %q: read %v (deferred %v), written %q, read back %v (%v, deferred %v)",
					b3, b3Trace, b3Span, b3Sampled, b3Flags, b3Parent, deferred, single, back, ok, backDeferred)
			}
		}

		r := httptest.NewRequest("GET", "http://example.com/a", nil)
		r.Header = h
		s := tr.Start(r)
		out := http.Header{}
		a := s.StartAttempt(out, "127.0.0.1:8080")
		a.End(200, nil)
		s.End(200, "", "127.0.0.1:8080")
		tpOut := out.Get("Traceparent")
		if !wellFormedTraceparent.MatchString(tpOut) {
			t.Fatalf("upstream traceparent %q", tpOut)
		}
		sent := trace.SpanContextFromContext(w3c.Extract(context.Background(), propagation.HeaderCarrier(out)))
		if !sent.IsValid() {
			t.Fatalf("upstream traceparent %q does not parse", tpOut)
		}
		if ts := out.Get("Tracestate"); ts != "" {
			if _, err := trace.ParseTraceState(ts); err != nil {
				t.Fatalf("upstream tracestate %q: %v", ts, err)
			}
		}
		var parent trace.SpanContext
		switch {
		case w3cParent.IsValid():
			parent = w3cParent
			if out.Get("Tracestate") != w3cParent.TraceState().String() {
				t.Fatalf("upstream tracestate %q, parent's %q", out.Get("Tracestate"), w3cParent.TraceState())
			}
		case b3OK:
			parent = b3Parent
		default:
			if s.Sampled() {
				t.Fatalf("sampled without a parent at 0%% sampling (headers %v)", h)
			}
			return
		}
		if sent.TraceID() != parent.TraceID() {
			t.Fatalf("upstream trace %s, parent's %s (headers %v)", sent.TraceID(), parent.TraceID(), h)
		}
		if sent.SpanID() == parent.SpanID() {
			t.Fatalf("upstream span id is the parent's %s", parent.SpanID())
		}
		if w3cParent.IsValid() || !deferred {
			if sent.IsSampled() != parent.IsSampled() || s.Sampled() != parent.IsSampled() {
				t.Fatalf("parent sampled %v, span sampled %v, upstream sampled %v (headers %v)", parent.IsSampled(), s.Sampled(), sent.IsSampled(), h)
			}
		}
	})
}
