package tracing

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

var (
	w3c        = propagation.TraceContext{}
	serverKind = trace.WithSpanKind(trace.SpanKindServer) // built once: an option is an allocation
	clientKind = trace.WithSpanKind(trace.SpanKindClient)
)

// Span is the server span of one downstream request. An unsampled
// request never reaches the SDK: it only has span ids to propagate.
type Span struct {
	t       *Tracer
	ctx     context.Context // nil when unsampled
	span    trace.Span      // nil when unsampled
	sc      trace.SpanContext
	cluster string
	method  string
	path    string
}

// Start begins the server span of r: its parent is the context r carries
// (W3C traceparent/tracestate, else B3), whose sampled flag decides;
// without one the tracer's sampling percentages do.
func (t *Tracer) Start(r *http.Request) *Span {
	var parent trace.SpanContext
	if len(r.Header["Traceparent"]) > 0 {
		parent = trace.SpanContextFromContext(w3c.Extract(context.Background(), propagation.HeaderCarrier(r.Header)))
	}
	var sampled bool
	if parent.IsValid() {
		sampled = parent.IsSampled()
	} else if sc, deferred, ok := extractB3(r.Header); ok {
		parent, sampled = sc, sc.IsSampled()
		if deferred {
			sampled = t.decide(r.Header)
		}
	} else {
		sampled = t.decide(r.Header)
	}
	s := &Span{t: t, method: r.Method, path: r.URL.Path}
	if !sampled {
		tid := parent.TraceID()
		if !parent.IsValid() {
			tid = newTraceID()
		}
		s.sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: newSpanID(), TraceState: parent.TraceState()})
		return s
	}
	ctx := r.Context()
	if parent.IsValid() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, parent.WithTraceFlags(parent.TraceFlags()|trace.FlagsSampled))
	}
	name := t.cfg.Operation
	if name == "" {
		name = "ingress"
	}
	if name == "egress" {
		name = "egress " + r.Host
	}
	s.ctx, s.span = t.p.tracer.Start(ctx, name, serverKind)
	s.sc = s.span.SpanContext()
	pname, pver := protocol(r)
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", r.Method),
		attribute.String("url.path", r.URL.Path),
		attribute.String("server.address", hostOnly(r.Host)),
		attribute.String("network.protocol.name", pname),
		attribute.String("network.protocol.version", pver),
	}
	if r.URL.RawQuery != "" {
		attrs = append(attrs, attribute.String("url.query", r.URL.RawQuery))
	}
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		attrs = append(attrs, attribute.String("user_agent.original", ua[0]))
	}
	if id := r.Header["X-Request-Id"]; len(id) > 0 {
		attrs = append(attrs, attribute.String("guid:x-request-id", id[0]))
	}
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		attrs = append(attrs, attribute.String("client.address", ip))
	}
	s.span.SetAttributes(attrs...)
	return s
}

// newTraceID and newSpanID are random non-zero ids for unsampled spans
// (math/rand/v2's per-thread generator: no lock, no allocation).
func newTraceID() trace.TraceID {
	var id trace.TraceID
	for id == (trace.TraceID{}) {
		hi, lo := rand.Uint64(), rand.Uint64()
		for i := 0; i < 8; i++ {
			id[i], id[8+i] = byte(hi>>(56-8*i)), byte(lo>>(56-8*i))
		}
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for id == (trace.SpanID{}) {
		v := rand.Uint64()
		for i := 0; i < 8; i++ {
			id[i] = byte(v >> (56 - 8*i))
		}
	}
	return id
}

// TraceID is the span's trace id in hex ("" when invalid).
func (s *Span) TraceID() string {
	if !s.sc.HasTraceID() {
		return ""
	}
	return s.sc.TraceID().String()
}

// Sampled says whether the span is exported.
func (s *Span) Sampled() bool { return s.span != nil }

// SetCluster names the upstream cluster the request is routed to; the
// attempt spans carry it too.
func (s *Span) SetCluster(name string) { s.cluster = name }

// End finishes the server span with the response status (0: none was
// sent, e.g. a reset) and Envoy's response flags.
func (s *Span) End(status int, flags, upstreamHost string) {
	if s.span == nil {
		return
	}
	if s.span.IsRecording() {
		if s.cluster != "" {
			s.span.SetAttributes(attribute.String("upstream_cluster", s.cluster))
		}
		if upstreamHost != "" {
			s.span.SetAttributes(attribute.String("upstream_address", upstreamHost))
		}
		if flags != "" {
			s.span.SetAttributes(attribute.String("response_flags", flags))
		}
		endStatus(s.span, status, nil)
	}
	s.span.End()
}

// Attempt is the client span of one upstream attempt; the zero Attempt
// is no span (tracing off).
type Attempt struct {
	span trace.Span
}

// Active says the attempt has a span.
func (a Attempt) Active() bool { return a.span != nil }

// StartAttempt begins a client span for an attempt to host, a child of
// the server span, and writes its context into h (W3C traceparent and
// tracestate), the attempt's own request headers.
func (s *Span) StartAttempt(h http.Header, host string) Attempt {
	if s.span == nil {
		// Unsampled: a fresh span id carries the decision on.
		inject(h, trace.NewSpanContext(trace.SpanContextConfig{TraceID: s.sc.TraceID(), SpanID: newSpanID(), TraceState: s.sc.TraceState()}))
		return Attempt{}
	}
	_, span := s.t.p.tracer.Start(s.ctx, "router "+s.cluster+" egress", clientKind)
	span.SetAttributes(
		attribute.String("http.request.method", s.method),
		attribute.String("url.path", s.path),
		attribute.String("server.address", hostOnly(host)),
		attribute.String("upstream_cluster", s.cluster),
		attribute.String("upstream_address", host),
	)
	if p := port(host); p != 0 {
		span.SetAttributes(attribute.Int("server.port", p))
	}
	inject(h, span.SpanContext())
	return Attempt{span: span}
}

// End finishes the attempt's span with the upstream's status, or err when
// the attempt failed (reset, timeout, lost a hedge). Only the first call
// counts (an ended span no longer records).
func (a Attempt) End(status int, err error) {
	if a.span == nil {
		return
	}
	if a.span.IsRecording() {
		endStatus(a.span, status, err)
	}
	a.span.End()
}

func endStatus(span trace.Span, status int, err error) {
	if status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", status))
	}
	switch {
	case err != nil:
		span.SetAttributes(attribute.String("error.type", errorType(err)))
		span.SetStatus(codes.Error, err.Error())
	case status == 0:
		span.SetAttributes(attribute.String("error.type", "reset"))
		span.SetStatus(codes.Error, "no response")
	case status >= 500:
		span.SetAttributes(attribute.String("error.type", strconv.Itoa(status)))
		span.SetStatus(codes.Error, "")
	}
}

func errorType(err error) string {
	if t, ok := err.(interface{ Timeout() bool }); ok && t.Timeout() {
		return "timeout"
	}
	return "reset"
}

func protocol(r *http.Request) (string, string) {
	switch r.ProtoMajor {
	case 3:
		return "http", "3"
	case 2:
		return "http", "2"
	}
	if r.ProtoMinor == 0 {
		return "http", "1.0"
	}
	return "http", "1.1"
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

func port(hostport string) int {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// inject writes sc as W3C traceparent (and its tracestate, or none) into
// h: one string and its one-element value.
func inject(h http.Header, sc trace.SpanContext) {
	const hexdigits = "0123456789abcdef"
	var b [55]byte // 00-{32}-{16}-{2}
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	for i, c := range tid {
		b[3+2*i], b[4+2*i] = hexdigits[c>>4], hexdigits[c&15]
	}
	b[35] = '-'
	for i, c := range sid {
		b[36+2*i], b[37+2*i] = hexdigits[c>>4], hexdigits[c&15]
	}
	b[52] = '-'
	f := byte(sc.TraceFlags() & trace.FlagsSampled)
	b[53], b[54] = '0', hexdigits[f]
	h["Traceparent"] = []string{string(b[:])}
	if ts := sc.TraceState(); ts.Len() > 0 {
		h["Tracestate"] = []string{ts.String()}
	} else {
		delete(h, "Tracestate")
	}
}
