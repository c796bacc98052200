package tracing

import (
	"net/http"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// extractB3 reads a B3 context: the single b3 header
// ({trace}-{span}[-{sampled}[-{parent}]]) or the multi x-b3-* headers.
// A 64-bit trace id is left-padded to 128 bits. "d" (debug) and
// x-b3-flags: 1 mean sampled. A sampling-only b3 header ("0", "1") carries
// no context and is ignored. deferred: no sampling decision came with it
// (the proxy's percentages decide).
func extractB3(h http.Header) (sc trace.SpanContext, deferred, ok bool) {
	if v := h["B3"]; len(v) > 0 {
		parts := strings.Split(v[0], "-")
		if len(parts) < 2 {
			return trace.SpanContext{}, false, false
		}
		sampled := ""
		if len(parts) > 2 {
			sampled = parts[2]
		}
		return b3Context(parts[0], parts[1], sampled, false)
	}
	tid, sid := first(h, "X-B3-Traceid"), first(h, "X-B3-Spanid")
	if tid == "" || sid == "" {
		return trace.SpanContext{}, false, false
	}
	return b3Context(tid, sid, first(h, "X-B3-Sampled"), first(h, "X-B3-Flags") == "1")
}

func b3Context(tid, sid, sampled string, debug bool) (trace.SpanContext, bool, bool) {
	if len(tid) == 16 {
		tid = "0000000000000000" + tid
	}
	traceID, err := trace.TraceIDFromHex(tid)
	if err != nil {
		return trace.SpanContext{}, false, false
	}
	spanID, err := trace.SpanIDFromHex(sid)
	if err != nil {
		return trace.SpanContext{}, false, false
	}
	var flags trace.TraceFlags
	deferred := false
	switch sampled {
	case "1", "d", "true":
		flags = trace.FlagsSampled
	case "0", "false":
	case "":
		deferred = !debug
	default:
		return trace.SpanContext{}, false, false
	}
	if debug {
		flags = trace.FlagsSampled
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: traceID, SpanID: spanID, TraceFlags: flags, Remote: true})
	return sc, deferred, sc.IsValid()
}

func first(h http.Header, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}
