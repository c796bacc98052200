// Package h1 is a purpose-built HTTP/1.1 server codec: it serves one
// connection at a time by calling a standard http.Handler, reusing the
// request, URL, header maps and buffers across the requests of a
// connection, so a typical keep-alive request costs a handful of
// allocations instead of net/http's ~25. Its framing rules are strict
// where parsers disagree (request smuggling): Content-Length with
// Transfer-Encoding, any Transfer-Encoding but one "chunked", obs-fold,
// bad chunk lines and bare CRs are refused with 400 and the connection is
// closed. HTTP/2 is not its business.
package h1

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("h1: server closed")

const (
	// DefaultMaxRequestHeadersBytes applies when Config leaves it zero.
	DefaultMaxRequestHeadersBytes = 60 << 10
	bufSize                       = 4 << 10
	// newConnGrace: a connection that has sent nothing yet is closed by
	// Shutdown only after this long (net/http waits 5s too).
	newConnGrace = 5 * time.Second
	// bgReadDelay: the client-gone watch (a 1-byte read) starts only for
	// handlers that run longer than this, so fast requests never spawn it.
	bgReadDelay = 2 * time.Millisecond
	// lingerTimeout bounds how long a refused connection is drained after
	// its response, so the client reads the response instead of a reset.
	lingerTimeout = 500 * time.Millisecond
	lingerBytes   = 256 << 10
)

// Hooks receive events for statistics; nil members are skipped. They must
// not block.
type Hooks struct {
	// Rejected is called for each request refused before the handler.
	Rejected func(Reject)
	// HeaderTimeout is called when a connection is cut off because a header
	// block did not arrive in time.
	HeaderTimeout func()
}

// Config is one server's settings.
type Config struct {
	Handler http.Handler
	// MaxRequestHeadersBytes limits the whole header block, request line
	// and line ends included; larger gets 431.
	MaxRequestHeadersBytes int
	// RequestHeadersTimeout bounds reading one header block; 0 = none.
	RequestHeadersTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request; 0 = none.
	IdleTimeout time.Duration
	Logger      hclog.Logger
	Hooks       Hooks
}

// Server serves HTTP/1.1 connections handed to it with Serve.
type Server struct {
	cfg   Config
	log   hclog.Logger
	dates dateCache

	brPool sync.Pool
	bwPool sync.Pool

	draining atomic.Bool
	closed   atomic.Bool
	mu       sync.Mutex
	conns    map[*conn]struct{}
	changed  chan struct{} // signalled (non-blocking) when a conn leaves or idles
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	if cfg.MaxRequestHeadersBytes <= 0 {
		cfg.MaxRequestHeadersBytes = DefaultMaxRequestHeadersBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		conns:   map[*conn]struct{}{},
		changed: make(chan struct{}, 1),
	}
}

// Serve serves c in a goroutine the server owns until the connection ends
// (Shutdown waits for it; Close closes it). c may be a *tls.Conn whose
// handshake is done. It returns ErrServerClosed, closing c, once the
// server is shutting down.
func (s *Server) Serve(c net.Conn) error {
	cn := s.newConn(c)
	s.mu.Lock()
	// A connection accepted before a drain began (it may still have been in
	// protocol detection) is served like any other new one: its request
	// gets Connection: close, or Shutdown closes it after newConnGrace.
	// Refusing it would reset a client that connected in time.
	if s.closed.Load() {
		s.mu.Unlock()
		_ = c.Close()
		return ErrServerClosed
	}
	s.conns[cn] = struct{}{}
	s.mu.Unlock()
	go cn.serve()
	return nil
}

// Shutdown stops new requests: idle connections are closed at once, a
// response in flight carries Connection: close and its connection is
// closed after it. It returns when no connection is left, or ctx's error.
// Hijacked connections are no longer the server's.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	grace := time.NewTimer(newConnGrace)
	defer grace.Stop()
	for {
		if s.closeIdle(false) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.changed:
		case <-grace.C:
			s.closeIdle(true)
		}
	}
}

// closeIdle closes connections that have no request in progress (and,
// with newToo, connections that never sent one); it reports whether none
// is left.
func (s *Server) closeIdle(newToo bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		st := c.state.Load()
		if st == stateIdle || newToo && st == stateNew && time.Since(c.created) >= newConnGrace {
			_ = c.rwc.Close()
		}
	}
	return len(s.conns) == 0
}

// Close closes every connection at once; handlers still running see their
// connection fail and their context canceled.
func (s *Server) Close() error {
	s.draining.Store(true)
	s.closed.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.rwc.Close()
	}
	return nil
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.signal()
}

func (s *Server) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

func (s *Server) reject(k Reject) {
	if f := s.cfg.Hooks.Rejected; f != nil {
		f(k)
	}
}

func (s *Server) headerTimeout() {
	if f := s.cfg.Hooks.HeaderTimeout; f != nil {
		f()
	}
}

func (s *Server) getReader(r *connReader) *bufio.Reader {
	if v := s.brPool.Get(); v != nil {
		br := v.(*bufio.Reader)
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, bufSize)
}

func (s *Server) putReader(br *bufio.Reader) {
	br.Reset(nil)
	s.brPool.Put(br)
}

func (s *Server) getWriter(w net.Conn) *bufio.Writer {
	if v := s.bwPool.Get(); v != nil {
		bw := v.(*bufio.Writer)
		bw.Reset(w)
		return bw
	}
	return bufio.NewWriterSize(w, bufSize)
}

func (s *Server) putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	s.bwPool.Put(bw)
}
