// Package transport builds the round trippers that carry requests to
// upstream hosts: HTTP/1.1 over its own keep-alive pool and client (the hot
// path: net/http's Transport cost ~35 allocations per proxied request),
// HTTP/2 over TLS (ALPN h2) and h2c with prior knowledge through net/http,
// HTTP/3 over QUIC through proxy/h3's client (the only door to quic-go),
// or the downstream request's own protocol. Every failure comes back as an
// *Error whose Kind says connect failure, reset, timeout or canceled.
package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/h3"
)

// Protocol is the upstream HTTP protocol.
type Protocol uint8

const (
	HTTP1      Protocol = iota // HTTP/1.1 with a keep-alive pool
	HTTP2                      // h2 over TLS, h2c prior knowledge without TLS
	Downstream                 // HTTP/2 iff the downstream request is HTTP/2
	HTTP3                      // HTTP/3 over QUIC (TLS required)
)

func (p Protocol) String() string {
	switch p {
	case HTTP1:
		return "HTTP/1.1"
	case HTTP2:
		return "HTTP/2"
	case Downstream:
		return "USE_DOWNSTREAM_PROTOCOL"
	case HTTP3:
		return "HTTP/3"
	}
	return "UNKNOWN"
}

// Defaults applied when Options leave a field zero (IdleTimeout excepted:
// its zero disables it).
const (
	DefaultConnectTimeout      = 5 * time.Second
	DefaultMaxIdleConnsPerHost = 1024
)

// Options configure a Transport. Zero values mean the defaults above.
type Options struct {
	Protocol Protocol
	// TLS to the upstream; nil is plaintext. It is cloned; NextProtos is
	// set from Protocol. An empty ServerName verifies against the dialed
	// host (an IP SAN for an IP address), like net/http.
	TLS            *tls.Config
	ConnectTimeout time.Duration
	// IdleTimeout closes a connection that has carried no request for
	// that long (common_http_protocol_options.idle_timeout). 0 disables
	// it, as Envoy's explicit 0 does (the caller fills in Envoy's 1h
	// default when the config gives none); negative is an error. HTTP/3 is the exception: QUIC's idle timeout is one of the
	// network, and 0 there is proxy/h3's default (1h).
	IdleTimeout         time.Duration
	MaxIdleConnsPerHost int
	// MaxRequestsPerConnection closes a connection after it carried this
	// many requests (HTTP/1.1: the last one goes out with Connection:
	// close; HTTP/2: the connection takes no new streams). 0 is no limit.
	MaxRequestsPerConnection uint32
	// Conns, if set, hears about every connection made or failed (and,
	// if it is an OverflowObserver, about circuit-breaker overflows).
	Conns ConnObserver
	// MaxConnections caps the HTTP/1.1 pool's connections (over all
	// hosts: one Transport serves one cluster); a request finding every
	// slot taken and no idle connection waits as pending, and fails with
	// KindOverflow when MaxPendingRequests already wait. 0: no cap.
	MaxConnections     int
	MaxPendingRequests int
}

// OverflowObserver hears about circuit-breaker overflows, for
// upstream_cx_overflow and upstream_rq_pending_overflow.
type OverflowObserver interface {
	ConnOverflow()
	PendingOverflow()
}

// ConnObserver hears about upstream connections, for cx_* counters.
type ConnObserver interface {
	// ConnOpened is called once a connection to addr is established (after
	// TLS). The returned func, if not nil, is called once when it closes.
	ConnOpened(addr string) (closed func())
	// ConnectFailed is called when a connection attempt to addr fails.
	ConnectFailed(addr string, err *Error)
}

// Transport carries requests upstream. It is safe for concurrent use.
type Transport struct {
	opts   Options
	scheme string
	h1     *h1Pool         // HTTP/1.1 (HTTP1, and Downstream for h1 requests)
	h2     *http.Transport // HTTP/2 (HTTP2, and Downstream for h2 requests)
	h3     *h3.Client      // HTTP/3 (HTTP3)

	// std is a net/http HTTP/1.1 transport built on demand for For's
	// callers; RoundTrip never uses it.
	std atomic.Pointer[http.Transport]
}

// New builds a Transport. It dials nothing until the first request.
func New(o Options) (*Transport, error) {
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.IdleTimeout < 0 {
		return nil, fmt.Errorf("transport: idle timeout %v is negative", o.IdleTimeout)
	}
	if o.MaxIdleConnsPerHost <= 0 {
		o.MaxIdleConnsPerHost = DefaultMaxIdleConnsPerHost
	}
	if o.Protocol > HTTP3 {
		return nil, errors.New("transport: unknown protocol")
	}
	if o.Protocol == HTTP3 {
		return newH3(o)
	}
	t := &Transport{opts: o, scheme: "http"}
	if o.TLS != nil {
		t.scheme = "https"
	}
	if o.Protocol == HTTP1 || o.Protocol == Downstream {
		t.h1 = newH1Pool(&t.opts)
	}
	if o.Protocol == HTTP2 || o.Protocol == Downstream {
		t.h2 = t.newHTTP(true)
	}
	return t, nil
}

func (t *Transport) newHTTP(h2 bool) *http.Transport {
	var p http.Protocols
	switch {
	case !h2:
		p.SetHTTP1(true)
	case t.opts.TLS != nil:
		p.SetHTTP2(true)
	default:
		// UnencryptedHTTP2 without HTTP1 is h2c with prior knowledge.
		p.SetUnencryptedHTTP2(true)
	}
	d := newDialer(&t.opts, h2)
	ht := &http.Transport{
		Proxy:                  nil, // never from the environment
		DialContext:            d.dial,
		DisableCompression:     true, // a proxy must not add Accept-Encoding
		MaxIdleConns:           0,    // no global cap; per host below
		MaxIdleConnsPerHost:    t.opts.MaxIdleConnsPerHost,
		IdleConnTimeout:        t.opts.IdleTimeout, // 0: no limit, for net/http too
		ForceAttemptHTTP2:      h2,
		Protocols:              &p,
		MaxResponseHeaderBytes: 0, // net/http's default; the HCM limits requests
		// ResponseHeaderTimeout stays unset: route timeouts arrive as the
		// request's context deadline. No HTTP2 WriteByteTimeout: h2
		// connections coalesce their writes (conn.coalesceWrites), so a
		// deadline around a Write would bound only the queueing.
	}
	if t.opts.TLS != nil {
		// Our own TLS dial so a handshake failure is a connect failure.
		ht.DialTLSContext = d.dialTLS
	}
	return ht
}

// Scheme is "https" for a TLS upstream, else "http": what an outgoing
// request's URL must carry.
func (t *Transport) Scheme() string { return t.scheme }

// Protocol reports the configured protocol.
func (t *Transport) Protocol() Protocol { return t.opts.Protocol }

// useH2 reports whether req goes over HTTP/2.
func (t *Transport) useH2(req *http.Request) bool {
	switch t.opts.Protocol {
	case HTTP1:
		return false
	case HTTP2:
		return true
	}
	return req.ProtoMajor == 2
}

// For returns a net/http transport for req's protocol, for callers that
// need a raw http.RoundTripper (errors then come unclassified). For
// HTTP/1.1 it is a net/http transport with the same settings, built on
// first use, whose connections are apart from RoundTrip's own pool. An
// HTTP/3 Transport returns nil: net/http has no HTTP/3.
func (t *Transport) For(req *http.Request) *http.Transport {
	if t.h3 != nil {
		return nil
	}
	if t.useH2(req) {
		return t.h2
	}
	if std := t.std.Load(); std != nil {
		return std
	}
	t.std.CompareAndSwap(nil, t.newHTTP(false))
	return t.std.Load()
}

// RoundTrip sends req, whose URL already names the upstream, and returns
// the response or an *Error. It always closes req.Body, possibly after it
// returns. Errors while reading the response body are *Error too (with
// AfterHeaders set) for HTTP/1.1, and unclassified for HTTP/2: pass either
// to Classify with afterHeaders set.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.h3 != nil {
		return t.roundTripH3(req)
	}
	if !t.useH2(req) {
		return t.h1.roundTrip(req)
	}
	ctx := req.Context()
	if t.opts.MaxRequestsPerConnection > 0 {
		req = t.countRequests(req)
	}
	resp, err := t.h2.RoundTrip(req)
	if err != nil {
		return nil, Classify(ctx, req.URL.Host, err, false)
	}
	return resp, nil
}

// countRequests adds a trace that marks the request that exhausts its
// connection's quota as the last on it. GotConn runs on this goroutine
// before the request is written, so setting Close there is ordered before
// the transport reads it. Only clusters with a limit pay for the trace.
func (t *Transport) countRequests(req *http.Request) *http.Request {
	var out *http.Request
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		c := unwrapConn(info.Conn)
		if c == nil {
			return
		}
		if c.requests.Add(1) >= uint64(t.opts.MaxRequestsPerConnection) {
			out.Close = true
		}
	}}
	out = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	return out
}

// CloseIdleConnections closes the pooled connections not carrying a request.
func (t *Transport) CloseIdleConnections() {
	if t.h3 != nil {
		t.h3.CloseIdleConnections()
	}
	if t.h1 != nil {
		t.h1.closeIdle()
	}
	if t.h2 != nil {
		t.h2.CloseIdleConnections()
	}
	t.closeStd()
}

// Close retires the Transport: it closes idle connections and stops the
// goroutine that reaps them, waiting for it. Connections carrying a request
// close when their response ends instead of returning to the pool. Requests
// sent after Close still work, on connections that are not kept.
func (t *Transport) Close() error {
	if t.h3 != nil {
		_ = t.h3.Close()
	}
	if t.h1 != nil {
		t.h1.close()
	}
	if t.h2 != nil {
		t.h2.CloseIdleConnections()
	}
	t.closeStd()
	return nil
}

func (t *Transport) closeStd() {
	if std := t.std.Load(); std != nil {
		std.CloseIdleConnections()
	}
}
