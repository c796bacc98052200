package h1

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const (
	stateNew int32 = iota
	stateActive
	stateIdle
	stateHijacked
)

// Background-read states (client-gone detection).
const (
	bgOff     = iota // not armed
	bgArmed          // timer running
	bgWaiting        // timer fired, waiting for the body to be consumed
	bgRunning        // a goroutine is blocked in a 1-byte read
)

// conn is one HTTP/1.1 connection and everything reused across its
// requests.
type conn struct {
	s          *Server
	rwc        net.Conn
	created    time.Time
	remoteAddr string
	tlsState   *tls.ConnectionState
	baseCtx    context.Context
	state      atomic.Int32

	cr connReader
	br *bufio.Reader
	bw *bufio.Writer

	// Reused per request.
	req    http.Request
	url    url.URL
	hdr    http.Header
	head   []byte // raw header block
	keyBuf []byte
	w      response
	body   *body // nil when the request has none

	hijacked bool

	// wmu orders a 100 Continue (written from a body Read, maybe on another
	// goroutine) against the response header.
	wmu sync.Mutex

	// Client-gone watch; mu guards bg, bodyDone, cancel, gone.
	mu       sync.Mutex
	bg       int
	bodyDone bool
	cancel   context.CancelFunc
	// connCancel cancels the connection's request context (set on the
	// first request; called when the connection ends).
	connCancel context.CancelFunc
	gone       bool
	timer      *time.Timer
	bgDone     chan struct{}
}

// connReader sits under the bufio.Reader so a byte read by the background
// read is returned first.
type connReader struct {
	c       net.Conn
	hasByte bool
	b       [1]byte
}

func (r *connReader) Read(p []byte) (int, error) {
	if r.hasByte {
		if len(p) == 0 {
			return 0, nil
		}
		p[0] = r.b[0]
		r.hasByte = false
		return 1, nil
	}
	return r.c.Read(p)
}

func (s *Server) newConn(rwc net.Conn) *conn {
	c := &conn{s: s, rwc: rwc, created: time.Now(), hdr: http.Header{}}
	c.remoteAddr = rwc.RemoteAddr().String()
	if tc, ok := rwc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tlsState = &st
	}
	c.baseCtx = context.WithValue(context.Background(), http.LocalAddrContextKey, rwc.LocalAddr())
	c.cr.c = rwc
	c.w.c = c
	c.w.header = http.Header{}
	return c
}

func (c *conn) serve() {
	c.br = c.s.getReader(&c.cr)
	c.bw = c.s.getWriter(c.rwc)
	defer c.finish()
	hdrTimeout := c.s.cfg.RequestHeadersTimeout
	for first := true; ; first = false {
		// Wait for the first byte of the next request: idle between
		// requests, the header timeout before the first one.
		armed := false // a read deadline is set on the connection
		if c.br.Buffered() == 0 {
			var d time.Duration
			if first {
				d = hdrTimeout
			} else {
				c.state.Store(stateIdle)
				if c.s.draining.Load() {
					return
				}
				c.s.signal()
				d = c.s.cfg.IdleTimeout
				// The response has only just been written, so the next
				// request is rarely here yet: reading now mostly fails
				// with EAGAIN, parks, and reads again after a netpoll.
				// Letting the other runnable connections go first gives
				// the client time to send, and one read usually finds
				// the request (a yield costs far less than that round).
				runtime.Gosched()
			}
			if d > 0 {
				_ = c.rwc.SetReadDeadline(time.Now().Add(d))
				armed = true
			}
			if _, err := c.br.Peek(1); err != nil {
				if first && isTimeout(err) {
					c.s.headerTimeout()
				}
				return
			}
		}
		// A request that reached an idle connection as a drain began is
		// served, with Connection: close: dropping it would reset a client
		// that could not know (Shutdown closes only connections still idle).
		c.state.Store(stateActive)
		// The header timeout bounds the reads of one header block: a block
		// already whole in the buffer (the common case) needs none, which
		// spares a deadline change (a runtime timer update and three clock
		// reads) per request.
		if hdrTimeout > 0 && !headBuffered(c.br) {
			_ = c.rwc.SetReadDeadline(time.Now().Add(hdrTimeout))
			armed = true
		}
		head, err := readHead(c.br, c.head, c.s.cfg.MaxRequestHeadersBytes)
		c.head = head[:0]
		if err != nil {
			var re *requestError
			if errors.As(err, &re) {
				c.refuse(re)
			} else if isTimeout(err) {
				c.s.headerTimeout()
			}
			return
		}
		if armed {
			_ = c.rwc.SetReadDeadline(time.Time{})
		}
		p, rerr := parseRequest(head, &c.req, c.hdr, &c.url, &c.keyBuf)
		if rerr != nil {
			c.refuse(rerr)
			return
		}
		if !c.serveRequest(&p) {
			return
		}
	}
}

// serveRequest runs the handler for the parsed request and reports whether
// the connection stays open for another.
func (c *conn) serveRequest(p *parsed) (keep bool) {
	r := &c.req
	r.RemoteAddr = c.remoteAddr
	r.TLS = c.tlsState
	c.body = nil
	switch {
	case p.chunked || p.contentLength > 0:
		c.body = &body{c: c, r: r, chunked: p.chunked, remain: p.contentLength,
			cont: p.expectContinue && r.ProtoMinor >= 1}
		if p.chunked {
			c.body.remain = 0
		}
		r.Body = c.body
	default:
		r.Body = http.NoBody
	}
	c.w.reset(r, p)
	if p.expectOther {
		c.w.header.Set("Connection", "close")
		c.w.WriteHeader(http.StatusExpectationFailed)
		c.w.finish()
		if c.body != nil {
			c.lingerClose()
		}
		return false
	}

	// One cancelable context per connection, set on the reused request
	// once: requests on a connection run one at a time, and a client that
	// goes away ends the connection, so per-request contexts would only
	// cost two allocations each.
	if c.connCancel == nil {
		ctx, cancel := context.WithCancel(c.baseCtx)
		*r = *r.WithContext(ctx)
		c.connCancel = cancel
	}
	c.mu.Lock()
	c.cancel = c.connCancel
	c.bodyDone = c.body == nil
	c.bg = bgArmed
	c.mu.Unlock()
	c.armWatch()

	if !c.runHandler() {
		c.connCancel()
		return false
	}
	c.stopWatch()
	if c.hijacked {
		c.connCancel()
		return false
	}
	c.w.finish()
	keep = !c.w.closeAfter
	if c.body != nil && !c.body.finish(keep) {
		keep = false
		c.lingerClose()
	}
	if c.gone || c.w.err != nil {
		keep = false
	}
	return keep
}

// runHandler calls the handler; false means it panicked (the connection
// is then closed without more output).
func (c *conn) runHandler() (ok bool) {
	defer func() {
		if v := recover(); v != nil {
			ok = false
			if v != http.ErrAbortHandler {
				buf := make([]byte, 64<<10)
				buf = buf[:runtime.Stack(buf, false)]
				c.s.log.Error("panic serving request", "remote", c.remoteAddr, "panic", v, "stack", string(buf))
			}
			c.stopWatch()
			if c.body != nil {
				c.body.mu.Lock()
				c.body.closed = true
				c.body.mu.Unlock()
			}
			if !c.hijacked {
				_ = c.bw.Flush() // like net/http: what was flushed to the conn buffer goes
			}
		}
	}()
	h := c.s.cfg.Handler
	if c.req.Method == http.MethodOptions && c.req.RequestURI == "*" {
		h = globalOptions{} // as net/http: "OPTIONS *" is the server's
	}
	h.ServeHTTP(&c.w, &c.req)
	return true
}

// globalOptions answers "OPTIONS *" like net/http's server does.
type globalOptions struct{}

func (globalOptions) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	if r.ContentLength != 0 {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 4<<10))
	}
}

// finish releases the connection after the last request.
func (c *conn) finish() {
	if c.connCancel != nil {
		c.connCancel()
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.hijacked {
		c.s.forget(c)
		return
	}
	_ = c.bw.Flush()
	_ = c.rwc.Close()
	c.s.putReader(c.br)
	c.s.putWriter(c.bw)
	c.br, c.bw = nil, nil
	c.s.forget(c)
}

// refuse answers a request refused before the handler and lingers so the
// client reads the answer rather than a reset.
func (c *conn) refuse(re *requestError) {
	c.s.reject(re.kind)
	text := http.StatusText(re.status)
	msg := strconv.Itoa(re.status) + " " + text
	if re.status == http.StatusBadRequest {
		msg += ": " + re.msg
	}
	b := appendStatusLine(nil, re.status, true)
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(msg)), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, msg...)
	_ = c.rwc.SetWriteDeadline(time.Now().Add(lingerTimeout))
	if _, err := c.bw.Write(b); err == nil {
		_ = c.bw.Flush()
	}
	c.lingerClose()
}

// lingerClose half-closes the connection and drains what the client still
// sends for a moment, like net/http's closeWriteAndWait, so an unread
// request does not turn the response into a TCP reset.
func (c *conn) lingerClose() {
	_ = c.bw.Flush()
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := c.rwc.(closeWriter); ok {
		_ = cw.CloseWrite()
	} else if tc, ok := c.rwc.(*tls.Conn); ok {
		_ = tc.CloseWrite()
	}
	_ = c.rwc.SetReadDeadline(time.Now().Add(lingerTimeout))
	_, _ = io.Copy(io.Discard, io.LimitReader(c.br, lingerBytes))
}

// writeContinue sends "100 Continue" unless the response has begun.
func (c *conn) writeContinue() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.w.wroteHeader || c.hijacked {
		return
	}
	_, _ = c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	_ = c.bw.Flush()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
