package forward

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/tracing"
)

// Upstream is what forwarding needs of a cluster (proxy/cluster's Cluster
// is one): a host per attempt, and a round trip to it.
type Upstream interface {
	// Pick chooses the host for one attempt; r may be nil.
	Pick(r *lb.Request) (*lb.Host, error)
	// RoundTrip sends req to h; it fills in the URL's scheme and host and
	// picks the protocol. When the cluster's circuit breakers are full it
	// fails at once with an error the Classifier maps to ReasonOverflow.
	RoundTrip(req *http.Request, h *lb.Host) (*http.Response, error)
	// AdmitRetry asks the cluster's circuit breakers (max_retries and the
	// retry budget) for one more retry; false is an overflow, counted by
	// the cluster. Every true is followed by exactly one ReleaseRetry when
	// that attempt ends, saying whether it succeeded.
	AdmitRetry() bool
	ReleaseRetry(success bool)
}

// Params says how to forward one request. The connection manager fills it
// from the matched route.
type Params struct {
	Upstream Upstream
	// Classify maps Pick and RoundTrip errors to reasons.
	Classify Classifier
	// Path replaces the request's path when non-empty (rewrites done).
	Path string
	// Host replaces the authority when non-empty; AutoHost uses the
	// endpoint's address instead.
	Host     string
	AutoHost bool
	// Timeout bounds the whole exchange until the response body is done;
	// 0 disables. IdleTimeout resets the stream after that long without a
	// byte moving either way; 0 disables.
	Timeout     time.Duration
	IdleTimeout time.Duration
	// RequestTimeout bounds receiving the whole request (the connection
	// manager's request_timeout); it is disarmed once the request body is
	// read or the response starts. 0 disables.
	RequestTimeout time.Duration
	// Upgrade is the allowed upgrade type of this request ("websocket"),
	// empty when the request is no upgrade.
	Upgrade string
	// ServerValue overwrites the upstream's server header unless empty. It
	// is shared and must have len == cap, so an append copies it.
	ServerValue []string
	// Table, VHost, Route and Weighted name the match whose response
	// header edits apply (Table nil: none).
	Table    *router.Table
	VHost    *router.VirtualHost
	Route    *router.Route
	Weighted *router.WeightedCluster

	// Retry is the route's retry policy; nil makes one attempt. Upgrades
	// are never retried.
	Retry *router.RetryPolicy
	// Hedge is hedge_on_per_try_timeout: a per-try timeout starts another
	// attempt without cancelling the late one, and the first response
	// that is not retriable wins. It needs Retry.
	Hedge bool
	// LB is passed to Upstream.Pick: the route's hash. Forward fills Tried
	// (Retry.PreviousHosts) and MaxAttempts
	// (Retry.HostSelectionMaxAttempts) across attempts itself.
	LB lb.Request
	// RetryBufferLimit is how many request body bytes are kept for
	// replays (0: DefaultRetryBufferLimit). A longer body is streamed on
	// and the request is no longer retried, as in Envoy.
	RetryBufferLimit int

	// Trace is the request's server span: each attempt gets a client span
	// under it (retries and hedges are siblings) and carries its context
	// upstream. nil: no tracing.
	Trace *tracing.Span
}

// Result says what happened, for the access log and metrics.
type Result struct {
	Status int
	// Flag holds Envoy's response flags, comma-separated in Envoy's order
	// when there are several (e.g. "UF,URX").
	Flag string
	// UpstreamHost is the host whose response was relayed, or of the last
	// attempt when the proxy answered.
	UpstreamHost  string
	BytesReceived int64 // request body bytes read from the client
	BytesSent     int64 // response body bytes written to the client
	GRPCStatus    string
	// Attempts counts the upstream attempts made (round trips started):
	// 0 when no host could be picked, 1 without retries.
	Attempts int
	// Abort is set when the response was cut mid-stream: the caller must
	// reset the downstream stream (panic(http.ErrAbortHandler)) after
	// logging, so the client never mistakes a truncated body for a whole one.
	Abort bool
}

// The causes our timers end an exchange with. They report Timeout(), so the
// transport counts them as timeouts rather than as a client going away.
var (
	errRouteTimeout   error = timeoutError("upstream request timeout")
	errRequestTimeout error = timeoutError("request timeout")
	errStreamIdle     error = timeoutError("stream idle timeout")
)

type timeoutError string

func (e timeoutError) Error() string { return string(e) }
func (timeoutError) Timeout() bool   { return true }

// bufPool holds the copy buffers: a fresh 32 KiB per request is a known cost
// of naive Go proxies.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

// Forward sends r upstream per p and writes the response to w. r.Header is
// modified in place (hop-by-hop headers are the caller's to strip first).
// With p.Retry set it may make several attempts (see retry.go); the
// response of at most one reaches w.
func Forward(w http.ResponseWriter, r *http.Request, p *Params) Result {
	if rp := p.Retry; rp != nil && p.Upgrade == "" {
		retriable := rp.On != 0 && requestRetriable(rp, r)
		if retriable || rp.PerTryTimeout > 0 || rp.PerTryIdleTimeout > 0 {
			return forwardRetry(w, r, p, retriable)
		}
	}
	return forwardOnce(w, r, p)
}

// forwardOnce is the path without a retry policy: one attempt, nothing
// buffered.
func forwardOnce(w http.ResponseWriter, r *http.Request, p *Params) Result {
	var res Result
	var lbr *lb.Request
	if p.LB.HasHash || len(p.LB.Tried) > 0 || p.LB.OriginalDst.IsValid() {
		c := p.LB // Pick's argument escapes: copy, so p does not
		lbr = &c
	}
	host, err := p.Upstream.Pick(lbr)
	if err != nil {
		reason := ReasonNoHealthyUpstream
		if p.Classify != nil {
			if rs, ok := p.Classify(err); ok {
				reason = rs
			}
		}
		res.Status = WriteLocalReply(w, r, reason, "")
		res.Flag = reason.Flag()
		return res
	}
	res.UpstreamHost = host.Address
	res.Attempts = 1

	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(context.Canceled)
	var tm *streamTimer
	var gen uint64
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	reqTimeout := p.RequestTimeout
	if !hasBody {
		reqTimeout = 0 // the whole request is already here
	}
	if p.Timeout > 0 || p.IdleTimeout > 0 || reqTimeout > 0 {
		var bodyFrom http.ResponseWriter
		if hasBody {
			bodyFrom = w
		}
		tm = startStreamTimer(p.Timeout, p.IdleTimeout, reqTimeout, cancel, bodyFrom)
		gen = tm.gen.Load()
		defer tm.stop()
	}
	if p.Timeout > 0 && IsGRPC(r) {
		// The backend should give up when we do.
		d := p.Timeout
		if c, ok := ParseGRPCTimeout(r.Header); ok && c < d {
			d = c
		}
		r.Header["Grpc-Timeout"] = []string{formatGRPCTimeout(d)}
	}

	out := r.WithContext(ctx)
	u := *r.URL
	out.URL = &u
	if p.Path != "" {
		u.Path = p.Path
		u.RawPath = ""
	}
	out.RequestURI = ""
	out.Close = false
	switch {
	case p.AutoHost:
		out.Host = res.UpstreamHost
	case p.Host != "":
		out.Host = p.Host
	}
	var body *countingBody
	if !hasBody {
		out.Body = nil
		out.ContentLength = 0
	} else {
		body = &countingBody{rc: r.Body, tm: tm, gen: gen}
		out.Body = body
		if r.ProtoMajor == 1 {
			// A proxy streams both ways at once: without this, net/http's
			// HTTP/1 server would read and discard what is left of the
			// request body when the response starts, stealing it from the
			// upstream.
			_ = http.NewResponseController(w).EnableFullDuplex()
		}
	}
	var sent sentBody
	if body != nil {
		sent = body
	}

	var span tracing.Attempt
	if p.Trace != nil {
		span = p.Trace.StartAttempt(out.Header, host.Address)
	}
	resp, err := p.Upstream.RoundTrip(out, host)
	if body != nil {
		res.BytesReceived = body.n.Load()
	}
	if err == nil && ctx.Err() != nil {
		// Our timer (or the client leaving) ended the exchange while the
		// response raced in: it may answer a truncated request. The
		// cancellation wins.
		resp.Body.Close()
		resp, err = nil, context.Cause(ctx)
	}
	if span.Active() {
		endAttemptSpan(span, resp, err)
	}
	if err != nil {
		reason := classifyTimed(ctx, r.Context(), err, p.Classify, tm)
		res.Flag = reason.Flag()
		closeIfBodyUnread(w, r, sent)
		res.Status = WriteLocalReply(w, r, reason, "")
		return res
	}
	relay(w, r, resp, p, ctx, tm, gen, sent, &res)
	return res
}

// relay sends the chosen response to the client: status, headers, body
// and trailers, or completes an upgrade. ctx is the attempt's context
// (what a body read failure is classified against); sent is the request
// body (nil: none).
func relay(w http.ResponseWriter, r *http.Request, resp *http.Response, p *Params, ctx context.Context, tm *streamTimer, gen uint64, sent sentBody, res *Result) {
	defer resp.Body.Close()
	if tm != nil {
		tm.requestDone(gen) // the response started
	}

	if resp.StatusCode == http.StatusSwitchingProtocols {
		if tm != nil {
			tm.disableDeadline() // an upgraded stream lives as long as it is active
		}
		*res = serveUpgrade(w, r, resp, p, tm, gen, *res)
		return
	}

	h := w.Header()
	for k, vv := range resp.Header {
		h[k] = vv
	}
	removeHopByHop(h)
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil // relay as is: no sniffed Content-Type
	}
	announced := 0
	if len(resp.Trailer) > 0 {
		keys := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		h["Trailer"] = []string{strings.Join(keys, ", ")}
		announced = len(keys)
		// Trailers need a chunked HTTP/1.1 body: a Content-Length (an h2
		// or h3 upstream may send one with trailers) would frame the body
		// and leave nowhere for them. HTTP/2 and HTTP/3 do not need it.
		delete(h, "Content-Length")
	}
	if len(p.ServerValue) > 0 {
		h["Server"] = p.ServerValue
	}
	if p.Table != nil {
		p.Table.EditResponse(h, p.VHost, p.Route, p.Weighted)
	}
	if gs := resp.Header["Grpc-Status"]; len(gs) > 0 {
		res.GRPCStatus = gs[0]
	}
	w.WriteHeader(resp.StatusCode)
	res.Status = resp.StatusCode

	// Flush every chunk when the length is unknown (streams, gRPC, SSE): a
	// stream must reach the client as it is produced.
	flush := resp.ContentLength < 0
	n, werr, rerr := copyBody(w, resp.Body, flush, tm, gen)
	res.BytesSent = n
	if sent != nil {
		res.BytesReceived = sent.bytesRead()
	}
	switch {
	case werr != nil || r.Context().Err() != nil:
		res.Flag = FlagDownstreamTerm
		res.Abort = true
		return
	case rerr != nil:
		reason := classifyTimed(ctx, r.Context(), rerr, p.Classify, tm)
		res.Flag = reason.Flag()
		res.Abort = true
		return
	}

	if len(resp.Trailer) > 0 {
		for k, vv := range resp.Trailer {
			if announced > 0 {
				h[k] = vv
			} else {
				h[http.TrailerPrefix+k] = vv
			}
		}
		if gs := resp.Trailer["Grpc-Status"]; len(gs) > 0 {
			res.GRPCStatus = gs[0]
		}
	}
}

// copyBody streams src to w with a pooled buffer. It returns the bytes
// written and which side failed, if any.
func copyBody(w http.ResponseWriter, src io.Reader, flush bool, tm *streamTimer, gen uint64) (int64, error, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var written int64
	var rc *http.ResponseController
	if flush {
		rc = http.NewResponseController(w)
	}
	for {
		nr, rerr := src.Read(buf)
		if nr > 0 {
			if tm != nil {
				tm.touch(gen)
			}
			nw, werr := w.Write(buf[:nr])
			written += int64(nw)
			if werr != nil {
				return written, werr, nil
			}
			if flush {
				if ferr := rc.Flush(); ferr != nil {
					return written, ferr, nil
				}
			}
		}
		if rerr == io.EOF {
			return written, nil, nil
		}
		if rerr != nil {
			return written, nil, rerr
		}
	}
}

// closeIfBodyUnread ends an HTTP/1.x connection after a local reply sent
// before the client's request body was read to the end: we stop reading it,
// so the connection cannot carry another request.
func closeIfBodyUnread(w http.ResponseWriter, r *http.Request, body sentBody) {
	if body != nil && r.ProtoMajor == 1 && !body.sawEOF() {
		w.Header()["Connection"] = connectionClose
	}
}

// sentBody is the request body as forwarding reads it from the client.
type sentBody interface {
	bytesRead() int64 // bytes read from the client
	sawEOF() bool     // the whole body was read
}

var connectionClose = []string{"close"}

// countingBody counts request body bytes and marks stream activity.
type countingBody struct {
	rc  io.ReadCloser
	tm  *streamTimer
	gen uint64
	// n is read by Forward while the transport's writer may still be
	// reading the body (an early response): atomic.
	n   atomic.Int64
	eof atomic.Bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n.Add(int64(n))
	if b.tm != nil {
		if n > 0 {
			b.tm.touch(b.gen)
		}
		if err == io.EOF {
			b.tm.requestDone(b.gen)
		}
	}
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

func (b *countingBody) Close() error { return b.rc.Close() }

func (b *countingBody) bytesRead() int64 { return b.n.Load() }
func (b *countingBody) sawEOF() bool     { return b.eof.Load() }

// hopByHop are the headers that describe one connection, never forwarded
// (RFC 9110 §7.6.1).
var hopByHop = [...]string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopByHop deletes hop-by-hop headers and those the Connection header
// names.
func removeHopByHop(h http.Header) {
	for _, f := range h["Connection"] {
		for f != "" {
			var name string
			name, f, _ = strings.Cut(f, ",")
			if name = strings.TrimSpace(name); name != "" {
				delete(h, http.CanonicalHeaderKey(name))
			}
		}
	}
	if len(h) < len(hopByHop) {
		// A typical header map holds fewer entries than the list: one
		// pass over it is cheaper than nine hashed deletes that mostly
		// miss (this runs twice per proxied request).
		for k := range h {
			if isHopByHop(k) {
				delete(h, k)
			}
		}
		return
	}
	for _, k := range hopByHop {
		delete(h, k)
	}
}

// isHopByHop reports whether the canonical key k is in hopByHop.
func isHopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// PrepareRequestHeaders strips hop-by-hop headers from a request about to be
// forwarded, keeping "te: trailers" (gRPC needs it) and, for an allowed
// upgrade, the Connection/Upgrade pair.
func PrepareRequestHeaders(h http.Header, upgrade string) {
	teTrailers := false
	for _, v := range h["Te"] {
		if headerHasToken(v, "trailers") {
			teTrailers = true
		}
	}
	var up []string
	if upgrade != "" {
		up = h["Upgrade"]
	}
	removeHopByHop(h)
	if teTrailers {
		h["Te"] = []string{"trailers"}
	}
	if upgrade != "" {
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = up
	}
}

// headerHasToken reports whether a comma-separated header value holds token
// (case-insensitive).
func headerHasToken(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}

// UpgradeType returns the lower-case upgrade protocol a request asks for, or
// "": an HTTP/1.1 Upgrade (with Connection: upgrade), or an HTTP/2 extended
// CONNECT (RFC 8441), whose :protocol net/http's server puts in the
// ":protocol" header (see ExtendedConnect).
func UpgradeType(r *http.Request) string {
	if r.ProtoMajor == 2 {
		if p := r.Header[":protocol"]; r.Method == http.MethodConnect && len(p) > 0 {
			return strings.ToLower(strings.TrimSpace(p[0]))
		}
		return ""
	}
	if r.ProtoMajor != 1 {
		return ""
	}
	up := r.Header["Upgrade"]
	if len(up) == 0 {
		return ""
	}
	for _, c := range r.Header["Connection"] {
		if headerHasToken(c, "upgrade") {
			return strings.ToLower(strings.TrimSpace(up[0]))
		}
	}
	return ""
}

// endAttemptSpan ends an attempt's client span when its response headers
// (or its failure) are in.
func endAttemptSpan(span tracing.Attempt, resp *http.Response, err error) {
	if err != nil {
		span.End(0, err)
		return
	}
	span.End(resp.StatusCode, nil)
}
