package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/outrigger-mesh/outrigger/internal/coalesce"
)

// keepAlive is the TCP keep-alive probe period for upstream connections.
const keepAlive = 30 * time.Second

// dialer makes upstream connections and marks every failure as a connect
// failure, so classification never has to guess from error strings.
type dialer struct {
	opts *Options
	net  net.Dialer
	tls  *tls.Config // nil for plaintext
	h2   bool        // connections for net/http's HTTP/2: writes coalesced
}

func newDialer(o *Options, h2 bool) *dialer {
	d := &dialer{opts: o, net: net.Dialer{KeepAlive: keepAlive}, h2: h2}
	if o.TLS != nil {
		// The caller's config is never modified. ALPN offers only the
		// protocol this pool speaks; a session cache makes reconnects cheap.
		d.tls = o.TLS.Clone()
		if h2 {
			d.tls.NextProtos = []string{"h2"}
		} else {
			d.tls.NextProtos = []string{"http/1.1"}
		}
		if d.tls.ClientSessionCache == nil {
			d.tls.ClientSessionCache = tls.NewLRUClientSessionCache(0)
		}
	}
	return d
}

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.ConnectTimeout)
	defer cancel()
	c, err := d.dialTCP(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cc := newConn(c)
	if d.h2 {
		cc.Coalesce()
	}
	d.opened(cc, addr)
	return cc, nil
}

func (d *dialer) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	// One budget for TCP and the handshake, as Envoy's connect_timeout.
	ctx, cancel := context.WithTimeout(ctx, d.opts.ConnectTimeout)
	defer cancel()
	raw, err := d.dialTCP(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	cfg := d.tls
	if cfg.ServerName == "" {
		cfg = cfg.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	cc := newConn(raw)
	tc := tls.Client(cc, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		tc.Close()
		return nil, d.failed(addr, err, true)
	}
	if d.h2 {
		cc.Coalesce() // after the handshake, which writes per flight
	}
	d.opened(cc, addr) // counted once usable, as for plaintext
	return tc, nil
}

func (d *dialer) dialTCP(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.net.DialContext(ctx, network, addr)
	if err != nil {
		return nil, d.failed(addr, err, false)
	}
	return c, nil
}

func (d *dialer) failed(addr string, err error, handshake bool) *Error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		err = &timeoutErr{err}
	}
	e := &Error{Kind: KindConnect, Addr: addr, TLS: handshake, Err: err}
	if o := d.opts.Conns; o != nil {
		o.ConnectFailed(addr, e)
	}
	return e
}

// timeoutErr keeps a connect timeout visible as such in the message while
// hiding context.DeadlineExceeded from errors.Is, so a caller testing for a
// route timeout does not mistake a connect timeout for one.
type timeoutErr struct{ err error }

func (e *timeoutErr) Error() string { return "connect timeout: " + e.err.Error() }
func (e *timeoutErr) Timeout() bool { return true }

// ConnectTimeout reports whether err is a connect failure caused by the
// connect timeout.
func ConnectTimeout(err error) bool {
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindConnect {
		return false
	}
	var t *timeoutErr
	return errors.As(e.Err, &t)
}

// opened reports a usable connection. It runs before the conn is handed to
// net/http, so nothing can close it concurrently with setting the hook.
func (d *dialer) opened(cc *conn, addr string) {
	if o := d.opts.Conns; o != nil {
		cc.closed = o.ConnOpened(addr)
	}
}

// conn counts requests (for MaxRequestsPerConnection) and reports its close
// once (for cx_active). On an HTTP/1.1 pool connection, slow is the
// request's context watch: its deadline errors are retried after it hands
// the context to its watcher (see watch.go).
type conn struct {
	// Socket does the raw reads and writes, and coalesces writes on
	// HTTP/2 connections (net/http flushes per frame group).
	*coalesce.Socket
	requests atomic.Uint64
	once     atomic.Bool
	closed   func()
	slow     *watch
}

func newConn(c net.Conn) *conn {
	cc := &conn{}
	cc.Socket = coalesce.NewSocket(c, cc)
	return cc
}

func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Socket.Read(p)
	for n == 0 && err != nil && c.slow != nil && c.slow.fired(err) {
		n, err = c.Socket.Read(p)
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	if c.Coalescing() {
		return c.Socket.Write(p)
	}
	n, err := c.WriteRaw(p)
	for err != nil && c.slow != nil && c.slow.fired(err) {
		var m int
		m, err = c.WriteRaw(p[n:])
		n += m
	}
	return n, err
}

func (c *conn) Close() error {
	c.StopWrites(false)
	err := c.Conn.Close()
	if c.once.CompareAndSwap(false, true) && c.closed != nil {
		c.closed()
	}
	return err
}

// ReadFrom and WriteTo keep the kernel fast paths (splice, sendfile) of the
// TCP connection underneath.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok && c.slow == nil && !c.Coalescing() {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c}, r)
}

func (c *conn) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := c.Conn.(io.WriterTo); ok && c.slow == nil {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{c})
}

// unwrapConn finds our conn under a TLS connection, or under the tls.Conn
// shell net/http puts around an h2c connection.
func unwrapConn(c net.Conn) *conn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if u, ok := c.(interface{ UnencryptedNetConn() net.Conn }); ok {
		c = u.UnencryptedNetConn()
	}
	cc, _ := c.(*conn)
	return cc
}
