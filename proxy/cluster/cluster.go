package cluster

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/healthcheck"
	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/outlier"
	"github.com/outrigger-mesh/outrigger/proxy/transport"
)

// Host is the balancer's view of one upstream address.
type Host = lb.Host

// Cluster is one upstream cluster at run time. Pick and RoundTrip are the
// hot path: they take no lock and Pick allocates nothing.
type Cluster struct {
	name  string
	log   hclog.Logger
	cfg   atomic.Pointer[Config]
	hosts atomic.Pointer[hostSet]
	gen   atomic.Pointer[generation]
	stats Stats

	hostsMu sync.Mutex // serializes host-set writers (Update, DNS)
	ready   chan struct{}
	readyMu sync.Once
	dns     *dnsRunner // nil unless STRICT_DNS or LOGICAL_DNS
	// orig holds an ORIGINAL_DST cluster's hosts (nil for the other
	// kinds); origRun sweeps the unused ones.
	orig    atomic.Pointer[origHosts]
	origRun *origRunner

	// Passive and active health: nil when not configured.
	outlier atomic.Pointer[outlier.Detector]
	hc      atomic.Pointer[healthcheck.Checker]
	ewma    atomic.Bool // the policy wants latency samples

	retryWindow retryWindow // the retry budget's ratio rule
}

// generation is one transport with the requests it is carrying, so a
// transport replaced by a config update can close its pool once they end.
type generation struct {
	tr      *transport.Transport
	active  atomic.Int64
	retired atomic.Bool
	closed  atomic.Bool
}

func (g *generation) release() {
	if g.active.Add(-1) == 0 && g.retired.Load() {
		g.close()
	}
}

// retire closes the transport now if it carries nothing, else when the
// last request in flight ends; idle connections close at once either way.
func (g *generation) retire() {
	g.retired.Store(true)
	g.tr.CloseIdleConnections()
	if g.active.Load() == 0 {
		g.close()
	}
}

// close releases the transport (its pool and reaper) exactly once.
func (g *generation) close() {
	if g.closed.CompareAndSwap(false, true) {
		_ = g.tr.Close()
	}
}

// Name is the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Config returns the configuration in force. Callers must not modify it.
func (c *Cluster) Config() *Config { return c.cfg.Load() }

// Ready is closed once the cluster knows its hosts: at once for STATIC,
// after the first resolution attempt (successful or not) for the DNS kinds.
func (c *Cluster) Ready() <-chan struct{} { return c.ready }

func (c *Cluster) markReady() { c.readyMu.Do(func() { close(c.ready) }) }

// UsesOriginalDst says the cluster is ORIGINAL_DST: callers pass the
// original destination in lb.Request.OriginalDst.
func (c *Cluster) UsesOriginalDst() bool { return c.orig.Load() != nil }

// Pick chooses the host for the next attempt; r may be nil.
//
// An ORIGINAL_DST cluster picks the host at r.OriginalDst, made on first
// use; without one it fails with ErrNoOriginalDst.
func (c *Cluster) Pick(r *lb.Request) (*Host, error) {
	if o := c.orig.Load(); o != nil {
		if r == nil || !r.OriginalDst.IsValid() {
			return nil, ErrNoOriginalDst
		}
		return o.pick(r.OriginalDst), nil
	}
	if h := c.hosts.Load().picker.Pick(r); h != nil {
		return h, nil
	}
	return nil, ErrNoHealthyUpstream
}

// Hosts returns the current hosts (an ORIGINAL_DST cluster's, by
// address). Callers must not modify the slice.
func (c *Cluster) Hosts() []*Host {
	if o := c.orig.Load(); o != nil {
		return o.list()
	}
	return c.hosts.Load().hosts
}

// Stats returns the cluster's counters.
func (c *Cluster) Stats() *Stats { return &c.stats }

// RoundTrip sends req to h, a host this cluster picked. It points the
// request's URL at h (scheme from the cluster's TLS setting), chooses the
// protocol, and counts the request on the host and the cluster until its
// response body is read to the end or closed. Errors are *transport.Error
// (connect failure, reset, timeout, canceled), also when reading the body.
// A 101 response's body is an io.ReadWriteCloser, as with net/http.
func (c *Cluster) RoundTrip(req *http.Request, h *Host) (*http.Response, error) {
	if c.stats.RqActive.Load() >= c.cfg.Load().Thresholds.maxRequests() {
		c.stats.RqPendingOverflow.Add(1)
		closeRequestBody(req)
		return nil, ErrOverflow
	}
	g := c.gen.Load()
	g.active.Add(1)
	req.URL.Scheme = g.tr.Scheme()
	req.URL.Host = h.Address
	c.stats.RqTotal.Add(1)
	c.stats.RqActive.Add(1)
	h.Stats.RqTotal.Add(1)
	h.Stats.RqActive.Add(1)

	ctx := req.Context()
	start := time.Now()
	resp, err := g.tr.RoundTrip(req)
	if err != nil {
		c.finish(g, h, 0, 0, start, err)
		return nil, err
	}
	if c.ewma.Load() {
		h.ObserveLatency(time.Since(start))
	}
	b := &body{rc: resp.Body, c: c, g: g, h: h, ctx: ctx, status: resp.StatusCode, outcome: upstreamStatus(resp), start: start}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if w, ok := resp.Body.(io.Writer); ok {
			resp.Body = &upgradeBody{body: b, w: w}
			return resp, nil
		}
	}
	resp.Body = b
	return resp, nil
}

// finish ends one request's accounting. status is the response's HTTP
// status (the cluster's 5xx count), outcome what it counts as for the host
// and the outlier detector (upstreamStatus: a trailers-only gRPC error
// maps to its HTTP status, as in Envoy); both 0 when no response came.
func (c *Cluster) finish(g *generation, h *Host, status, outcome int, start time.Time, err error) {
	c.stats.RqTime.Observe(time.Since(start))
	c.stats.RqActive.Add(-1)
	h.Stats.RqActive.Add(-1)
	var kind transport.Kind
	if err != nil { // KindOf's errors.As target escapes: skip it on success
		kind = transport.KindOf(err)
	}
	switch kind {
	case 0:
		if err == nil && outcome < 500 {
			h.Stats.RqSuccess.Add(1)
		} else {
			h.Stats.RqError.Add(1)
		}
		if err == nil {
			c.stats.RqCompleted.Add(1)
		}
	case transport.KindConnect:
		c.stats.RqConnectFail.Add(1)
		h.Stats.RqError.Add(1)
	case transport.KindReset:
		c.stats.RqReset.Add(1)
		h.Stats.RqError.Add(1)
	case transport.KindTimeout:
		c.stats.RqTimeout.Add(1)
		h.Stats.RqTimeout.Add(1)
		h.Stats.RqError.Add(1)
	case transport.KindCanceled:
		c.stats.RqCanceled.Add(1)
	}
	if status >= 500 {
		c.stats.Rq5xx.Add(1)
	}
	c.reportOutcome(h, outcome, kind)
	g.release()
}

// body counts the request as active until the body ends and classifies
// read errors. It is the one allocation RoundTrip adds per request.
type body struct {
	rc      io.ReadCloser
	c       *Cluster
	g       *generation
	h       *Host
	ctx     context.Context
	status  int // HTTP
	outcome int // upstreamStatus
	start   time.Time
	done    atomic.Bool
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	switch {
	case err == nil:
	case err == io.EOF:
		b.end(nil)
	case b.done.Load():
		// Read after Close: not the upstream's failure.
	default:
		err = transport.Classify(b.ctx, b.h.Address, err, true)
		b.end(err)
	}
	return n, err
}

func (b *body) Close() error {
	err := b.rc.Close()
	b.end(nil)
	return err
}

func (b *body) end(err error) {
	if b.done.CompareAndSwap(false, true) {
		b.c.finish(b.g, b.h, b.status, b.outcome, b.start, err)
	}
}

// upgradeBody keeps a 101 response's body writable (WebSocket tunnels).
type upgradeBody struct {
	*body
	w io.Writer
}

func (u *upgradeBody) Write(p []byte) (int, error) { return u.w.Write(p) }

// ConnOpened implements transport.ConnObserver for cx_total and cx_active.
func (c *Cluster) ConnOpened(addr string) func() {
	c.stats.CxTotal.Add(1)
	c.stats.CxActive.Add(1)
	h := c.hostByAddr(addr)
	if h != nil {
		h.Stats.CxTotal.Add(1)
		h.Stats.CxActive.Add(1)
	}
	return func() {
		c.stats.CxActive.Add(-1)
		if h != nil {
			h.Stats.CxActive.Add(-1)
		}
	}
}

// closeRequestBody closes the body of a request that will not be sent, as
// RoundTrip must.
func closeRequestBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// ConnOverflow implements transport.OverflowObserver: a request found
// max_connections reached and queued.
func (c *Cluster) ConnOverflow() { c.stats.CxOverflow.Add(1) }

// PendingOverflow implements transport.OverflowObserver: a request found
// max_pending_requests reached and was refused.
func (c *Cluster) PendingOverflow() { c.stats.RqPendingOverflow.Add(1) }

// ConnectFailed implements transport.ConnObserver for cx_connect_fail.
func (c *Cluster) ConnectFailed(addr string, err *transport.Error) {
	c.stats.CxConnectFail.Add(1)
	if transport.ConnectTimeout(err) {
		c.stats.CxConnectTimeout.Add(1)
	}
	if h := c.hostByAddr(addr); h != nil {
		h.Stats.CxConnectFail.Add(1)
	}
	c.log.Debug("upstream connect failed", "address", addr, "error", err)
}
