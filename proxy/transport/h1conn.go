package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// pconn is one persistent HTTP/1.1 connection. One request uses it at a
// time; between requests it sits in its pool. A request's context is
// honoured by closing the connection under it (see watch.go).
type pconn struct {
	pool *h1Pool
	addr string
	nc   net.Conn // as dialed: *conn, or *tls.Conn over one
	raw  *conn    // the TCP connection under nc
	br   *bufio.Reader
	bw   *bufio.Writer
	tls  *tls.ConnectionState
	idle idleProbe

	requests uint32    // requests sent, for MaxRequestsPerConnection
	reused   bool      // taken from the pool: it may have gone stale
	idleAt   time.Time // when it entered the pool

	w       watch
	done    chan struct{} // closed by close: the watcher exits
	closing sync.Once
	aborted atomic.Bool // closed under a request (context end, Close)
	// slotMoved: the pool gave this idle connection's slot to a request
	// for another address before closing it (set under the pool's lock).
	slotMoved bool

	// The request body, when there is one, is written by its own goroutine
	// while the response is read; wrote reports how that ended.
	writing      bool
	writeStarted bool // the writer owns (and closes) the request body
	wrote        chan error
}

func newPconn(p *h1Pool, addr string, nc net.Conn) *pconn {
	pc := &pconn{
		pool:  p,
		addr:  addr,
		nc:    nc,
		raw:   unwrapConn(nc),
		br:    bufio.NewReaderSize(nc, 4096),
		bw:    bufio.NewWriterSize(nc, 4096),
		done:  make(chan struct{}),
		wrote: make(chan error, 1),
	}
	if tc, ok := nc.(*tls.Conn); ok {
		cs := tc.ConnectionState()
		pc.tls = &cs
	}
	pc.w.pc = pc
	if pc.raw != nil {
		pc.idle.init(pc.raw.Conn)
		pc.raw.slow = &pc.w
	}
	return pc
}

// abort closes the connection under a request in flight, unblocking its
// reads and writes. The TCP connection is closed directly: a TLS
// close_notify could block behind a stuck write.
func (pc *pconn) abort() {
	pc.aborted.Store(true)
	if pc.raw != nil {
		pc.raw.Close()
	} else {
		pc.nc.Close()
	}
}

// close closes the connection for good. Safe to call more than once.
func (pc *pconn) close() {
	pc.closing.Do(func() {
		close(pc.done)
		pc.nc.Close()
		if pc.raw != nil {
			pc.raw.Close() // reports the close even if TLS's Close failed
		}
		if pc.pool.opts.MaxConnections > 0 && !pc.slotMoved {
			pc.pool.release(pc.addr)
		}
	})
}

// finish ends the request on the connection: back to the pool when reuse
// holds and nothing went wrong, else closed.
func (pc *pconn) finish(reuse bool) {
	pc.w.stop()
	if pc.writing {
		reuse = reuse && pc.waitWrite()
	}
	if reuse && !pc.aborted.Load() {
		pc.pool.put(pc)
		return
	}
	pc.close()
}

// writeGrace is how long a finished response waits for its request body's
// writer to report before giving up on reusing the connection, as
// net/http's 50ms wait in persistConn.wroteRequest.
const writeGrace = 50 * time.Millisecond

// waitWrite waits briefly for the request body writer and reports whether
// it finished cleanly. If it has not finished, the connection is aborted
// so the writer stops; it reports on pc.wrote, which nobody reads again.
func (pc *pconn) waitWrite() bool {
	var err error
	select {
	case err = <-pc.wrote:
	default:
		t := time.NewTimer(writeGrace)
		select {
		case err = <-pc.wrote:
			t.Stop()
		case <-t.C:
			pc.abort()
			return false
		}
	}
	pc.writing = false
	return err == nil
}

// stale reports whether err is what a connection the upstream closed while
// idle produces on the next exchange.
func stale(err error) bool {
	return err == io.EOF || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}

// errRetry wraps a failure on a reused connection that a new connection
// may not have: nothing of the request was processed.
type errRetry struct{ err error }

func (e *errRetry) Error() string { return e.err.Error() }
func (e *errRetry) Unwrap() error { return e.err }

// roundTrip sends req on pc and reads the response head. On an error the
// connection is closed; an *errRetry error means the request may be sent
// again on another connection.
func (pc *pconn) roundTrip(req *http.Request, r *response) (*http.Response, error) {
	ctx := req.Context()
	// No ctx.Done() != nil test to skip contexts that never end: a
	// cancelCtx allocates its Done channel on the first call, and the
	// watch asks for it only in the rare request that outlives watchAfter.
	// A context that never ends costs a deadline nobody hits.
	if err := ctx.Err(); err != nil {
		pc.finish(true) // untouched: back to the pool
		return nil, failure(ctx, pc.addr, err, false)
	}
	pc.w.start(ctx)
	pc.requests++
	last := req.Close
	if max := pc.pool.opts.MaxRequestsPerConnection; max > 0 && pc.requests >= max {
		last = true
	}
	withBody := hasBody(req)

	if err := pc.writeHead(req, last, withBody); err != nil {
		pc.finish(false)
		if isWriteErr(err) && pc.reused && ctx.Err() == nil && !pc.aborted.Load() {
			return nil, &errRetry{err}
		}
		return nil, failure(ctx, pc.addr, err, false)
	}
	if withBody {
		pc.writing, pc.writeStarted = true, true
		go pc.writeBody(req)
	}

	// The upstream has had no time to answer yet: reading now mostly
	// fails with EAGAIN and parks until a netpoll. Letting the other
	// runnable goroutines (other requests, the body writer just started)
	// go first usually finds the response there on the first read.
	runtime.Gosched()
	resp, err := pc.readResponse(req, r)
	if err != nil {
		if pc.writing {
			// The body writer's own failure is the better explanation.
			select {
			case werr := <-pc.wrote:
				pc.writing = false
				if werr != nil && !errors.Is(werr, net.ErrClosed) {
					err = werr
				}
			default:
			}
		}
		if pc.aborted.Load() && ctx.Err() == nil {
			err = errAborted
		}
		pc.finish(false)
		return nil, err
	}
	return resp, nil
}

// errAborted: the transport was closed under the request.
var errAborted = errors.New("connection closed by the transport")

// isWriteErr marks an error from writing the head (not a validation error).
func isWriteErr(err error) bool {
	var we *writeErr
	return errors.As(err, &we)
}

type writeErr struct{ err error }

func (e *writeErr) Error() string { return "write request: " + e.err.Error() }
func (e *writeErr) Unwrap() error { return e.err }

// readResponse reads response heads until a final one (skipping 1xx but
// 101) and attaches the body.
func (pc *pconn) readResponse(req *http.Request, r *response) (*http.Response, error) {
	ctx := req.Context()
	resp := &r.resp
	for interim := 0; ; interim++ {
		s, n, err := nextHead(pc.br)
		if err != nil {
			if interim == 0 && n == 0 && pc.reused && stale(err) && !pc.writing &&
				isIdempotent(req) && ctx.Err() == nil && !pc.aborted.Load() {
				return nil, &errRetry{err}
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, failure(ctx, pc.addr, err, false)
		}
		*resp = http.Response{}
		h, err := parseHead(s, req.Method, resp, r.vals[:])
		if err != nil {
			return nil, failure(ctx, pc.addr, err, false)
		}
		code := resp.StatusCode
		if code == http.StatusSwitchingProtocols {
			resp.Request, resp.TLS, resp.ContentLength = req, pc.tls, -1
			resp.Body = &upgraded{pc: pc}
			return resp, nil
		}
		if code >= 200 {
			pc.attachBody(req, r, h)
			return resp, nil
		}
		if interim >= 10 {
			return nil, failure(ctx, pc.addr, malformed("too many 1xx responses"), false)
		}
	}
}

func (pc *pconn) attachBody(req *http.Request, r *response, h head) {
	resp := &r.resp
	b := &r.body
	b.pc, b.resp, b.ctx, b.addr = pc, resp, req.Context(), pc.addr
	b.reuse = h.keepAlive && !req.Close && !pc.lastRequest()
	switch {
	case h.noBody:
		b.mode = bodyNone
	case h.chunked:
		b.mode = bodyChunked
	case h.length >= 0:
		b.mode, b.remain = bodyLength, h.length
	default:
		b.mode = bodyClose
	}
	resp.Close = !b.reuse
	resp.Request, resp.TLS, resp.Body = req, pc.tls, b
	if b.mode == bodyNone || (b.mode == bodyLength && b.remain == 0) {
		// Nothing to read: the connection is free now.
		b.err = io.EOF
		b.release(true)
	}
}

func (pc *pconn) lastRequest() bool {
	max := pc.pool.opts.MaxRequestsPerConnection
	return max > 0 && pc.requests >= max
}

// failure builds the *Error for a failed exchange: the request's context
// ending (route timeout, client gone) wins over what it did to the
// connection, and carries the context's error so errors.Is sees
// context.DeadlineExceeded.
func failure(ctx context.Context, addr string, err error, afterHeaders bool) error {
	if kind := contextKind(ctx); kind != 0 {
		return &Error{Kind: kind, Addr: addr, AfterHeaders: afterHeaders, Err: ctx.Err()}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return &Error{Kind: KindTimeout, Addr: addr, AfterHeaders: afterHeaders, Err: err}
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: KindReset, Addr: addr, AfterHeaders: afterHeaders, Err: err}
}
