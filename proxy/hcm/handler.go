package hcm

import (
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/outrigger-mesh/outrigger/proxy/fault"
	"github.com/outrigger-mesh/outrigger/proxy/forward"
	"github.com/outrigger-mesh/outrigger/proxy/grpcweb"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
	"github.com/outrigger-mesh/outrigger/proxy/tracing"
)

// Clusters resolves a cluster name to what forwarding needs. The server
// adapts proxy/cluster's manager to it.
type Clusters interface {
	Upstream(name string) (forward.Upstream, bool)
}

// Observer receives one call per finished request (metrics). It must not
// block.
type Observer interface {
	Observe(e *telemetry.Entry)
}

// Deps are what the handler uses but does not own.
type Deps struct {
	Clusters Clusters
	Classify forward.Classifier
	Logs     []*telemetry.AccessLogger
	Observer Observer
	// Listener names the listener, for logs.
	Listener string
	// TLS says the downstream connection is TLS (x-forwarded-proto).
	TLS bool
	// Tracer starts a server span per request and a client span per
	// upstream attempt (Config.Tracing made it); nil: no tracing.
	Tracer *tracing.Tracer
	// LocalCertificate returns the certificate this listener presents
	// (nil when it has none): its URI SANs are the By of the
	// x-forwarded-client-cert elements it adds.
	LocalCertificate func() *x509.Certificate
}

// Handler is one connection manager's request path. Its route table can be
// swapped at run time (RDS) without a lock.
type Handler struct {
	cfg    Config
	deps   Deps
	routes atomic.Pointer[router.Table]
	// Shared header values, built once (len == cap so an append copies).
	scheme []string
	server []string
	// steps are the filters before the router, in order: a fault filter
	// or an HTTPFilter each. faults are the fault filters among them.
	steps  []step
	faults []*fault.Filter
	// webAt is where the grpc_web filter sits among the steps (it runs
	// before steps[webAt]); -1 without one. webClassify is Deps.Classify
	// that also knows a text-mode body that is not base64.
	webAt       int
	webClassify forward.Classifier
}

// step is one filter before the router: exactly one field is set.
type step struct {
	fault *fault.Filter
	http  HTTPFilter
}

// entryPool recycles access-log entries: loggers and observers encode them
// synchronously and keep no reference.
var entryPool = sync.Pool{New: func() any { return new(telemetry.Entry) }}

// New builds a handler; table may be nil until a route table arrives
// (requests then get 404 like Envoy's empty route config).
func New(cfg Config, table *router.Table, deps Deps) *Handler {
	h := &Handler{cfg: cfg, deps: deps, scheme: []string{"http"}}
	if deps.TLS {
		h.scheme = []string{"https"}
	}
	if !cfg.ServerHeaderPassThrough {
		name := cfg.ServerName
		if name == "" {
			name = "outrigger"
		}
		h.server = []string{name}
	}
	h.webAt = -1
	for _, f := range cfg.Filters {
		switch {
		case f.Fault != nil:
			ff := fault.New(f.Fault)
			h.faults = append(h.faults, ff)
			h.steps = append(h.steps, step{fault: ff})
		case f.HTTP != nil:
			if u, ok := f.HTTP.(ClusterUser); ok && deps.Clusters != nil {
				u.UseClusters(deps.Clusters)
			}
			h.steps = append(h.steps, step{http: f.HTTP})
		case f.GRPCWeb && h.webAt < 0:
			h.webAt = len(h.steps)
		}
	}
	if h.webAt >= 0 {
		classify := deps.Classify
		h.webClassify = func(err error) (forward.Reason, bool) {
			if errors.Is(err, grpcweb.ErrBadText) {
				return forward.ReasonBadRequest, true
			}
			if classify != nil {
				return classify(err)
			}
			return 0, false
		}
	}
	h.routes.Store(table)
	return h
}

// SetRoutes swaps the route table (RDS update).
func (h *Handler) SetRoutes(t *router.Table) { h.routes.Store(t) }

// Routes returns the table in force.
func (h *Handler) Routes() *router.Table { return h.routes.Load() }

// ServeHTTP runs one request through the connection manager.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	e := entryPool.Get().(*telemetry.Entry)
	*e = telemetry.Entry{
		Start:          start,
		Method:         r.Method,
		Authority:      r.Host,
		Path:           requestURI(r),
		Protocol:       r.Proto,
		ClientAddress:  r.RemoteAddr,
		Listener:       h.deps.Listener,
		RequestHeaders: r.Header,
	}
	if !h.cfg.UseRemoteAddress && len(r.Header["X-Forwarded-For"]) > 0 {
		// Envoy's downstream_remote_address: trusted from XFF at a
		// non-edge proxy (xff_num_trusted_hops), the peer otherwise.
		e.ClientAddress = h.ClientAddress(r)
	}
	if ua := r.Header["User-Agent"]; len(ua) > 0 {
		e.UserAgent = ua[0]
	}
	var span *tracing.Span
	if h.deps.Tracer != nil {
		span = h.deps.Tracer.Start(r)
		if len(h.deps.Logs) > 0 {
			e.TraceID = span.TraceID()
		}
	}
	abort, web := h.serve(w, r, e, span)
	if web != nil && !abort {
		if gs, _ := web.Finish(); gs != "" {
			e.GRPCStatus = gs
		}
	}
	e.Duration = time.Since(start)
	e.ResponseHeaders = w.Header()
	if span != nil {
		status := e.Status
		if abort {
			status = 0
		}
		span.End(status, e.ResponseFlags, e.UpstreamHost)
	}
	for _, l := range h.deps.Logs {
		l.Log(e)
	}
	if h.deps.Observer != nil {
		h.deps.Observer.Observe(e)
	}
	*e = telemetry.Entry{}
	entryPool.Put(e)
	if abort {
		// Reset the downstream stream: a truncated body must not look whole.
		panic(http.ErrAbortHandler)
	}
}

// serve runs the request path. web is the gRPC-Web translation when the
// request is gRPC-Web and the grpc_web filter was reached; the caller
// finishes it unless abort. span is the request's server span (nil
// without tracing).
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, e *telemetry.Entry, span *tracing.Span) (abort bool, web *grpcweb.ResponseWriter) {
	hdr := r.Header
	upgrade := forward.UpgradeType(r)
	if upgrade != "" && !h.upgradeAllowed(upgrade) {
		h.local(w, r, e, forward.ReasonUpgradeRejected)
		return false, nil
	}
	if upgrade != "" && r.ProtoMajor == 2 {
		// RFC 8441 extended CONNECT: from here on it is the HTTP/1.1
		// upgrade it stands for (a GET to the same path), routed and
		// forwarded as one; the upstream's 101 becomes a 200.
		w, r = forward.ExtendedConnect(w, r, upgrade)
		hdr = r.Header
	}
	var webMode grpcweb.Mode
	if h.webAt >= 0 && upgrade == "" {
		webMode = grpcweb.Detect(r)
	}
	forward.PrepareRequestHeaders(hdr, upgrade)
	h.forwardedFor(r)
	h.clientCert(r)
	e.RequestID = h.requestID(hdr)

	table := h.routes.Load()
	var route *router.Route
	var vh *router.VirtualHost
	if table != nil {
		route, vh = table.Match(r)
	}
	if webMode != 0 && (route == nil || route.Direct != nil || route.Redirect != nil) {
		// Envoy's router makes these replies, after the grpc_web filter.
		web = grpcweb.Begin(w, r, webMode)
		w = web
	}
	if route == nil {
		h.local(w, r, e, forward.ReasonNoRoute)
		return false, web
	}
	e.Route = route.Name

	a := route.Forward
	var name string
	var wc *router.WeightedCluster
	if a != nil {
		name, wc = a.PickCluster(pickN(a.TotalWeight))
		e.UpstreamCluster = name
		if span != nil {
			span.SetCluster(name)
		}
	}
	faultFlag := ""
	if len(h.steps) > 0 {
		in := FilterInput{Route: route, VHost: vh, Cluster: name, ClientAddress: hostAddr(e.ClientAddress)}
		for i, f := range h.steps {
			if webMode != 0 && i == h.webAt && web == nil {
				web = grpcweb.Begin(w, r, webMode)
				w = web
			}
			if len(h.server) > 0 {
				w.Header()["Server"] = h.server
			}
			if f.http != nil {
				if v := f.http.Decode(w, r, &in); v.Stopped() {
					e.Status, e.ResponseFlags, e.GRPCStatus = v.Status, joinFlags(faultFlag, v.Flag), v.GRPCStatus
					return false, web
				}
				continue
			}
			if a == nil {
				continue // fault filters act on forwarded requests only
			}
			out := f.fault.Apply(w, r, name)
			if out.Done() {
				e.Status, e.ResponseFlags, e.GRPCStatus = out.Status, joinFlags(faultFlag, out.Flag), out.GRPCStatus
				return false, web
			}
			faultFlag = joinFlags(faultFlag, out.Flag)
		}
	}

	switch {
	case route.Direct != nil:
		table.EditResponse(w.Header(), vh, route, nil)
		d := route.Direct
		if len(d.Body) > 0 {
			w.Header().Set("Content-Type", "text/plain")
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(d.Body)))
		w.WriteHeader(d.Status)
		if r.Method != http.MethodHead {
			n, _ := w.Write(d.Body)
			e.BytesSent = int64(n)
		}
		e.Status = d.Status
		return false, web
	case route.Redirect != nil:
		table.EditResponse(w.Header(), vh, route, nil)
		w.Header().Set("Location", route.RedirectLocation(r, h.deps.TLS))
		status := route.Redirect.StatusCode()
		w.WriteHeader(status)
		e.Status = status
		return false, web
	}

	if webMode != 0 && web == nil {
		web = grpcweb.Begin(w, r, webMode)
		w = web
	}
	up, ok := h.deps.Clusters.Upstream(name)
	if !ok {
		h.local(w, r, e, forward.ReasonNoCluster)
		return false, web
	}
	table.EditRequest(hdr, vh, route, wc)

	p := forward.Params{
		Upstream:    up,
		Classify:    h.deps.Classify,
		Host:        a.HostRewriteLiteral,
		AutoHost:    a.AutoHostRewrite,
		Timeout:     a.Timeout,
		IdleTimeout: a.IdleTimeout,
		Upgrade:     upgrade,
		ServerValue: h.server,
		Trace:       span,
	}
	p.Table, p.VHost, p.Route, p.Weighted = table, vh, route, wc
	if webMode&grpcweb.TextRequest != 0 {
		p.Classify = h.webClassify
	}
	// A route without idle_timeout inherits stream_idle_timeout; an
	// explicit 0 disables the idle timeout for the route.
	if !a.IdleTimeoutSet && p.IdleTimeout == 0 {
		p.IdleTimeout = h.cfg.StreamIdleTimeout
	}
	p.RequestTimeout = h.cfg.RequestTimeout
	// The route's max_stream_duration replaces the connection manager's.
	msd := h.cfg.MaxStreamDuration
	if a.MaxStreamDuration > 0 {
		msd = a.MaxStreamDuration
	}
	if msd > 0 && (p.Timeout == 0 || msd < p.Timeout) {
		p.Timeout = msd
	}
	if d, ok := forward.ParseGRPCTimeout(hdr); ok && forward.IsGRPC(r) {
		if m := a.GRPCTimeoutHeaderMax; m > 0 && d > m {
			d = m
		}
		if off := a.GRPCTimeoutHeaderOffset; off > 0 && d > off {
			d -= off
		}
		if p.Timeout == 0 || d < p.Timeout {
			p.Timeout = d
		}
	}
	if path := route.RewritePath(r.URL.Path); path != r.URL.Path {
		p.Path = path
	}
	p.Retry = a.Retry
	p.Hedge = a.HedgeOnPerTryTimeout
	p.RetryBufferLimit = int(a.RetryBufferLimit)
	if len(a.HashPolicies) > 0 {
		hash, ok, setCookie := a.Hash(r, h.ClientAddress(r))
		p.LB.Hash, p.LB.HasHash = hash, ok
		if setCookie != "" {
			w.Header().Add("Set-Cookie", setCookie)
		}
	}

	if od, ok := up.(originalDstUser); ok && od.UsesOriginalDst() {
		// ORIGINAL_DST: the host is where the connection was going
		// (the listener restored it as the local address).
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok {
			ap := a.AddrPort()
			p.LB.OriginalDst = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	res := forward.Forward(w, r, &p)
	e.Status = res.Status
	e.ResponseFlags = joinFlags(faultFlag, res.Flag)
	if st := forward.TunnelFailed(w); st != 0 {
		e.Status, e.ResponseFlags = st, joinFlags(faultFlag, forward.FlagUpgradeFailed)
	}
	e.UpstreamHost = res.UpstreamHost
	e.Attempts = res.Attempts
	e.BytesReceived = res.BytesReceived
	e.BytesSent = res.BytesSent
	e.GRPCStatus = res.GRPCStatus
	if res.Flag == forward.FlagDownstreamTerm && res.Status == 0 {
		e.Status = forward.StatusClientClosed
	}
	return res.Abort, web
}

// local writes a local reply and records it.
func (h *Handler) local(w http.ResponseWriter, r *http.Request, e *telemetry.Entry, reason forward.Reason) {
	if len(h.server) > 0 {
		w.Header()["Server"] = h.server
	}
	e.Status = forward.WriteLocalReply(w, r, reason, "")
	e.ResponseFlags = reason.Flag()
	if forward.IsGRPC(r) {
		e.GRPCStatus = w.Header().Get("Grpc-Status")
	}
}

func (h *Handler) upgradeAllowed(t string) bool {
	for _, u := range h.cfg.Upgrades {
		if u == t {
			return true
		}
	}
	return false
}

// forwardedFor applies Envoy's x-forwarded-for / x-forwarded-proto rules:
// with use_remote_address the peer is the client, appended to XFF and the
// downstream scheme overwrites XFP; otherwise XFF is left alone and XFP is
// set only when absent.
func (h *Handler) forwardedFor(r *http.Request) {
	hdr := r.Header
	if !h.cfg.UseRemoteAddress {
		if len(hdr["X-Forwarded-Proto"]) == 0 {
			hdr["X-Forwarded-Proto"] = h.scheme
		}
		return
	}
	hdr["X-Forwarded-Proto"] = h.scheme
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	if h.internal(ip) {
		hdr["X-Envoy-Internal"] = trueValue
	} else {
		// Envoy's sanitizing of an external request: nothing a client
		// outside the mesh says in these headers is believed.
		for _, k := range externalSanitized {
			delete(hdr, k)
		}
		hdr["X-Envoy-External-Address"] = []string{ip}
	}
	if h.cfg.SkipXFFAppend {
		return
	}
	if prior := hdr["X-Forwarded-For"]; len(prior) > 0 {
		hdr["X-Forwarded-For"] = []string{strings.Join(prior, ", ") + ", " + ip}
	} else {
		hdr["X-Forwarded-For"] = []string{ip}
	}
}

// internal says whether a peer address is in internal_address_config's
// CIDR ranges (none by default: every client is external, as in current
// Envoy).
func (h *Handler) internal(ip string) bool {
	if len(h.cfg.InternalAddresses) == 0 {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range h.cfg.InternalAddresses {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

var trueValue = []string{"true"}

// originalDstUser is an upstream cluster of type ORIGINAL_DST
// (*cluster.Cluster), which picks the request's original destination.
type originalDstUser interface{ UsesOriginalDst() bool }

// hostAddr parses "ip" or "ip:port"; the zero Addr when it is neither.
func hostAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	a, _ := netip.ParseAddr(s)
	return a.Unmap()
}

// externalSanitized are the request headers Envoy removes from an
// external request at the edge (use_remote_address): they steer routing,
// retries, timeouts and tracing, or claim an identity. x-forwarded-for,
// x-forwarded-proto, x-request-id and x-forwarded-client-cert have rules
// of their own.
var externalSanitized = []string{
	"X-Envoy-Decorator-Operation",
	"X-Envoy-Downstream-Service-Cluster",
	"X-Envoy-Downstream-Service-Node",
	"X-Envoy-Expected-Rq-Timeout-Ms",
	"X-Envoy-External-Address",
	"X-Envoy-Force-Trace",
	"X-Envoy-Internal",
	"X-Envoy-Ip-Tags",
	"X-Envoy-Max-Retries",
	"X-Envoy-Retry-Grpc-On",
	"X-Envoy-Retry-On",
	"X-Envoy-Upstream-Alt-Stat-Name",
	"X-Envoy-Upstream-Rq-Per-Try-Timeout-Ms",
	"X-Envoy-Upstream-Rq-Timeout-Alt-Response",
	"X-Envoy-Upstream-Rq-Timeout-Ms",
}

// ClientAddress is the client's address as the connection manager sees it:
// the peer with use_remote_address, else the XFF entry xff_num_trusted_hops
// from the right (the peer when XFF is too short).
func (h *Handler) ClientAddress(r *http.Request) string {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	if h.cfg.UseRemoteAddress {
		return ip
	}
	var hops []string
	for _, v := range r.Header["X-Forwarded-For"] {
		for _, part := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(part))
		}
	}
	i := len(hops) - 1 - int(h.cfg.XFFNumTrustedHops)
	if i < 0 || i >= len(hops) {
		return ip
	}
	return hops[i]
}

// requestID keeps or makes x-request-id. At the edge (use_remote_address)
// an id from the client is replaced unless preserve_external_request_id.
func (h *Handler) requestID(hdr http.Header) string {
	if v := hdr["X-Request-Id"]; len(v) > 0 && v[0] != "" {
		if !h.cfg.UseRemoteAddress || h.cfg.PreserveExternalRequestID || !h.cfg.GenerateRequestID {
			return v[0]
		}
	} else if !h.cfg.GenerateRequestID {
		return ""
	}
	v := newRequestID()
	hdr["X-Request-Id"] = v
	return v[0]
}

// idBox holds a request id and the one-element header value pointing at it,
// so a new id costs one allocation.
type idBox struct {
	b [36]byte
	v [1]string
}

// newRequestID is a random (version 4) UUID as a header value.
// math/rand/v2's per-thread ChaCha8 is plenty for correlation ids and costs
// no lock.
func newRequestID() []string {
	const hex = "0123456789abcdef"
	box := new(idBox)
	b := &box.b
	hi, lo := rand.Uint64(), rand.Uint64()
	hi = hi&^(0xf<<12) | 4<<12         // version 4
	lo = lo&^(0x3<<62) | uint64(2)<<62 // variant 10
	var raw [16]byte
	for i := 0; i < 8; i++ {
		raw[i] = byte(hi >> (56 - 8*i))
		raw[8+i] = byte(lo >> (56 - 8*i))
	}
	j := 0
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			b[j] = '-'
			j++
		}
		b[j] = hex[c>>4]
		b[j+1] = hex[c&15]
		j += 2
	}
	box.v[0] = unsafe.String(&box.b[0], len(box.b))
	return box.v[:]
}

// requestURI is the path and query as the client sent them, without the
// allocation of URL.RequestURI when the request line already has it.
func requestURI(r *http.Request) string {
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// joinFlags joins response flags as Envoy prints several: "DI,UF".
func joinFlags(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "," + b
}

func pickN(total uint32) uint32 {
	if total <= 1 {
		return 0
	}
	return rand.Uint32N(total)
}
