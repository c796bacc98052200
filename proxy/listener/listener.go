package listener

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/internal/coalesce"
)

// ErrInvalidConfig is wrapped by New's errors for a Config it cannot serve.
var ErrInvalidConfig = errors.New("invalid listener config")

// ErrBind is wrapped by New's error when the address cannot be bound.
var ErrBind = errors.New("cannot bind listener address")

const (
	// defaultDetectTimeout bounds the first-byte peek and the TLS handshake
	// (Envoy's listener_filters_timeout default is 15s).
	defaultDetectTimeout = 15 * time.Second
	acceptBackoffMin     = 5 * time.Millisecond
	acceptBackoffMax     = time.Second
)

// Listener accepts connections for one Envoy Listener and serves each on
// the filter chain it matches.
type Listener struct {
	name   string
	log    hclog.Logger
	ln     net.Listener
	chains []*chainServer // every chain's server, the default one included
	sel    *chainSelector
	// dest picks the selector by destination when chains match on it;
	// nil when none does (sel serves every connection).
	dest    *destIndex
	origDst bool // the original_dst listener filter
	stats   stats

	detectTimeout time.Duration

	started  atomic.Bool
	closing  atomic.Bool
	aborting atomic.Bool   // Close: connections are cut, not flushed
	detached atomic.Bool   // the socket was handed to a successor: never close it
	accepted chan struct{} // closed when the accept loop has returned
	stopOnce sync.Once
	stopped  chan struct{} // closed once accepting has stopped for good
	finished chan struct{} // closed when Shutdown or Close is done
	finOnce  sync.Once
	wg       sync.WaitGroup // accept loop, classifiers, chain servers

	mu      sync.Mutex
	conns   map[*trackedConn]struct{}
	drained chan struct{} // closed when conns becomes empty after stop

	// connCtx is given to TCP handlers; cancelConns ends it when the
	// listener closes its connections (Close, or the end of a drain).
	connCtx     context.Context
	cancelConns context.CancelFunc
}

// New validates cfg and binds its address, so that a busy port fails here
// and port 0 is resolved before Serve.
func New(cfg Config, logger hclog.Logger) (*Listener, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("listener %q on %s: %w: %w", cfg.Name, cfg.Address, ErrBind, err)
	}
	return newOn(cfg, ln, logger), nil
}

// Adopt is New on a socket that is already bound: the one a predecessor
// handed over with Detach, so an updated listener takes over its address
// without a moment of refused connections. cfg must have been validated by
// a New or Adopt that it replaces; Adopt checks it again.
func Adopt(cfg Config, ln net.Listener, logger hclog.Logger) (*Listener, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return newOn(cfg, ln, logger), nil
}

// Validate checks cfg without binding anything.
func (cfg *Config) Validate() error {
	if len(cfg.FilterChains) == 0 && cfg.DefaultChain == nil {
		return fmt.Errorf("listener %q: %w: no filter chains", cfg.Name, ErrInvalidConfig)
	}
	for i := range cfg.FilterChains {
		if err := validateChain(&cfg.FilterChains[i]); err != nil {
			return fmt.Errorf("listener %q: %w", cfg.Name, err)
		}
	}
	if cfg.DefaultChain != nil {
		if err := validateChain(cfg.DefaultChain); err != nil {
			return fmt.Errorf("listener %q: default chain: %w", cfg.Name, err)
		}
	}
	return nil
}

func newOn(cfg Config, ln net.Listener, logger hclog.Logger) *Listener {
	l := &Listener{
		name:          cfg.Name,
		log:           logger.Named("listener").With("listener", cfg.Name),
		ln:            ln,
		detectTimeout: defaultDetectTimeout,
		stopped:       make(chan struct{}),
		finished:      make(chan struct{}),
		accepted:      make(chan struct{}),
		conns:         map[*trackedConn]struct{}{},
	}
	l.connCtx, l.cancelConns = context.WithCancel(context.Background())
	var servers []*chainServer
	for i := range cfg.FilterChains {
		servers = append(servers, newChainServer(&cfg.FilterChains[i], ln.Addr(), &l.stats, l.log))
	}
	var def *chainServer
	if cfg.DefaultChain != nil {
		def = newChainServer(cfg.DefaultChain, ln.Addr(), &l.stats, l.log)
	}
	l.chains = servers
	if def != nil {
		l.chains = append(l.chains, def)
	}
	l.sel = newChainSelector(servers, def)
	if hasDestMatch(servers) {
		l.dest = newDestIndex(servers, def)
	} else {
		for _, name := range l.sel.narrowLevels() {
			l.log.Warn("a TLS connection for this server name that matches none of its filter chains (ALPN, transport_protocol) gets the default filter chain, not a chain of a less specific server name",
				"server_name", name)
		}
	}
	l.origDst = cfg.OriginalDst
	return l
}

// Detach stops accepting without closing the socket and returns it for a
// successor (Adopt). Connections already accepted stay with l: drain them
// with Shutdown, which then leaves the socket open. Connections the kernel
// queued meanwhile wait in the backlog for the successor.
func (l *Listener) Detach() net.Listener {
	l.detached.Store(true)
	l.closing.Store(true)
	if l.started.Load() {
		if d, ok := l.ln.(interface{ SetDeadline(time.Time) error }); ok {
			_ = d.SetDeadline(time.Unix(1, 0)) // wakes Accept
			<-l.accepted
			_ = d.SetDeadline(time.Time{})
		}
	}
	l.stopAccepting()
	return l.ln
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Serve accepts connections until Shutdown or Close, or until ctx ends
// (which closes the listener at once). It returns nil once the listener
// is shut down, or the accept error that stopped it.
func (l *Listener) Serve(ctx context.Context) error {
	if !l.started.CompareAndSwap(false, true) {
		return fmt.Errorf("listener %q: Serve called twice", l.name)
	}
	for _, cs := range l.chains {
		if cs.srv == nil {
			continue // a TCP chain: dispatch serves its connections
		}
		if !l.goOwned(func() {
			_ = cs.srv.Serve(cs.ln) // returns ErrServerClosed on Shutdown/Close
		}) {
			close(l.accepted) // no accept loop will run
			<-l.finished
			return nil
		}
	}
	// The ctx watcher is not in wg: it may call Close, which waits on wg.
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-ctx.Done():
			_ = l.Close()
		case <-l.stopped:
		}
	}()
	err := l.acceptLoop()
	if err != nil {
		_ = l.Close()
	}
	<-l.finished
	<-watcherDone
	return err
}

// goOwned runs f in a goroutine that finish waits for, unless the listener
// is already stopping (then it reports false). Adding under mu, after
// checking closing, keeps wg.Add from racing finish's wg.Wait.
func (l *Listener) goOwned(f func()) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closing.Load() {
		return false
	}
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
	return true
}

func (l *Listener) acceptLoop() error {
	defer close(l.accepted)
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.closing.Load() {
				return nil
			}
			if !isTemporaryAcceptError(err) {
				return fmt.Errorf("listener %q: accept: %w", l.name, err)
			}
			l.stats.acceptErrors.Add(1)
			backoff = min(max(backoff*2, acceptBackoffMin), acceptBackoffMax)
			l.log.Warn("accept failed; retrying", "error", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.stopped:
				t.Stop()
				return nil
			}
			continue
		}
		backoff = 0
		tc := l.track(c)
		if tc == nil {
			continue // shutting down
		}
		if !l.goOwned(func() { l.dispatch(tc) }) {
			_ = tc.Close()
		}
	}
}

// isTemporaryAcceptError reports accept errors worth retrying: running out
// of descriptors or buffers, or a connection aborted before accept.
func isTemporaryAcceptError(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// stopAccepting closes the socket; idempotent.
func (l *Listener) stopAccepting() {
	l.stopOnce.Do(func() {
		l.closing.Store(true)
		if !l.detached.Load() {
			_ = l.ln.Close()
		}
		l.mu.Lock()
		l.drained = make(chan struct{})
		if len(l.conns) == 0 {
			close(l.drained)
		}
		l.mu.Unlock()
		close(l.stopped)
	})
}

// Shutdown drains the listener: it stops accepting, sends Connection: close
// (HTTP/1.1) and GOAWAY (HTTP/2), closes idle connections and lets requests
// in flight finish until ctx ends (or each chain's DrainTimeout passes);
// then it closes whatever is left. TCP proxy connections, which have no
// way to be told, keep running until they end or ctx does. It returns
// ctx's error if the drain was cut short.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.stopAccepting()
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for _, cs := range l.chains {
		if cs.srv == nil {
			continue // a TCP chain
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx := ctx
			if d := cs.settings.DrainTimeout; d > 0 {
				var cancel context.CancelFunc
				sctx, cancel = context.WithTimeout(ctx, d)
				defer cancel()
			}
			// HTTP/2 (net/http) and HTTP/1.1 (h1) drain side by side.
			var h1Err error
			h1Done := make(chan struct{})
			go func() {
				defer close(h1Done)
				if cs.h1 != nil {
					h1Err = cs.h1.Shutdown(sctx)
				}
			}()
			err := cs.srv.Shutdown(sctx)
			<-h1Done
			if err == nil {
				err = h1Err
			}
			if err != nil {
				// Cut short: connections close without sending what they
				// still queue (a peer that stopped reading holds nothing).
				l.aborting.Store(true)
				_ = cs.srv.Close()
				if cs.h1 != nil {
					_ = cs.h1.Close()
				}
				errMu.Lock()
				if first == nil {
					first = fmt.Errorf("listener %q chain %q: drain cut short: %w", l.name, cs.name, err)
				}
				errMu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Hijacked (upgraded) connections are no longer net/http's, and TCP
	// proxy connections never were: give them the rest of ctx, then close
	// them.
	l.mu.Lock()
	drained := l.drained
	l.mu.Unlock()
	select {
	case <-drained:
	case <-ctx.Done():
		if first == nil {
			first = fmt.Errorf("listener %q: drain cut short: %w", l.name, ctx.Err())
		}
	}
	l.closeAll()
	l.finish()
	return first
}

// Close closes the listener and every connection at once.
func (l *Listener) Close() error {
	l.aborting.Store(true) // connections close without sending what is queued
	l.stopAccepting()
	for _, cs := range l.chains {
		if cs.srv == nil {
			continue // a TCP chain: closeAll ends its connections
		}
		_ = cs.srv.Close()
		_ = cs.ln.Close()
		if cs.h1 != nil {
			_ = cs.h1.Close()
		}
	}
	l.closeAll()
	l.finish()
	return nil
}

func (l *Listener) closeAll() {
	l.cancelConns()
	l.mu.Lock()
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// finish waits for the listener's goroutines, then releases Serve.
func (l *Listener) finish() {
	l.wg.Wait()
	l.finOnce.Do(func() { close(l.finished) })
}

// trackedConn is an accepted connection the listener can close on Close,
// even after net/http has let go of it (hijacked). It also replays the
// bytes peeked to tell TLS from plaintext.
type trackedConn struct {
	// Socket does the raw reads and writes, and coalesces writes once
	// the connection serves HTTP/2 (dispatch).
	*coalesce.Socket
	l      *Listener
	peeked []byte
	// rbuf, when set (plaintext HTTP/2), holds what one read system call
	// returned beyond what the reader asked for: net/http's HTTP/2 server
	// reads each frame's 9-byte header and then its payload straight
	// from the connection, two system calls per frame without it.
	rbuf []byte
	rpos int // rbuf[rpos:] is unread
	once sync.Once
	// local replaces the socket's local address: the original
	// destination the original_dst filter restored.
	local net.Addr
}

// LocalAddr is the connection's original destination when the
// original_dst filter restored one, else the socket's.
func (c *trackedConn) LocalAddr() net.Addr {
	if c.local != nil {
		return c.local
	}
	return c.Conn.LocalAddr()
}

func (c *trackedConn) Read(p []byte) (int, error) {
	if len(c.peeked) > 0 {
		n := copy(p, c.peeked)
		c.peeked = c.peeked[n:]
		return n, nil
	}
	if c.rbuf == nil || len(p) >= cap(c.rbuf) {
		if c.rpos < len(c.rbuf) {
			return c.readBuffered(p), nil
		}
		return c.Socket.Read(p)
	}
	if c.rpos == len(c.rbuf) {
		n, err := c.Socket.Read(c.rbuf[:cap(c.rbuf)])
		c.rbuf, c.rpos = c.rbuf[:n], 0
		if n == 0 {
			return 0, err
		}
	}
	return c.readBuffered(p), nil
}

func (c *trackedConn) readBuffered(p []byte) int {
	n := copy(p, c.rbuf[c.rpos:])
	c.rpos += n
	return n
}

// bufferReads makes reads go through a buffer (see rbuf). Call it before
// the connection is shared; reads must come from one goroutine at a time.
func (c *trackedConn) bufferReads() { c.rbuf = make([]byte, 0, 4<<10) }

// Raw implements RawConn: the socket and the bytes peeked from it.
func (c *trackedConn) Raw() (net.Conn, []byte) {
	b := c.peeked
	c.peeked = nil
	if c.rpos < len(c.rbuf) {
		b = append(b, c.rbuf[c.rpos:]...)
		c.rpos = len(c.rbuf)
	}
	return c.Conn, b
}

// CloseWrite half-closes TCP, so a refused client reads the answer and
// an EOF while the codec drains what it still sends. Coalesced writes are
// sent first (no write may follow).
func (c *trackedConn) CloseWrite() error {
	c.StopWrites(false)
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *trackedConn) Close() error {
	c.StopWrites(c.l.aborting.Load())
	err := c.Conn.Close()
	c.once.Do(func() { c.l.untrack(c) })
	return err
}

func (l *Listener) track(c net.Conn) *trackedConn {
	tc := &trackedConn{l: l}
	tc.Socket = coalesce.NewSocket(c, tc)
	l.mu.Lock()
	if l.closing.Load() {
		l.mu.Unlock()
		_ = c.Close()
		return nil
	}
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	l.stats.cxTotal.Add(1)
	l.stats.cxActive.Add(1)
	return tc
}

func (l *Listener) untrack(c *trackedConn) {
	l.mu.Lock()
	delete(l.conns, c)
	if len(l.conns) == 0 && l.drained != nil {
		select {
		case <-l.drained:
		default:
			close(l.drained)
		}
	}
	l.mu.Unlock()
	l.stats.cxActive.Add(-1)
}
