package listener

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
)

// scanConn runs the framing scanner over everything net/http reads from an
// HTTP/1.1 connection (plaintext, or TLS after the handshake).
type scanConn struct {
	net.Conn
	sc    *framingScanner
	stats *stats
	// upgraded is set when the connection is hijacked (WebSocket, CONNECT):
	// the bytes after that are not HTTP/1.1 messages.
	upgraded atomic.Bool
	// served counts requests handed to the handler; only the goroutine
	// serving the connection touches it (HTTP/1.1 requests are sequential).
	served int64
	// timedOut: a header timeout was counted (reader goroutine only).
	timedOut bool
}

func (c *scanConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && !c.upgraded.Load() {
		c.sc.scan(p[:n])
	}
	if err != nil && !c.timedOut && !c.upgraded.Load() && c.sc.inHeader() {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// net/http may read again after the deadline; count once.
			c.timedOut = true
			c.stats.headerTimeouts.Add(1)
		}
	}
	return n, err
}

func (c *scanConn) base() *scanConn { return c }

type scanConnHolder interface{ base() *scanConn }

type scanConnKey struct{}

// connContext puts the connection's scanner where the guard handler finds it.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if h, ok := c.(scanConnHolder); ok {
		return context.WithValue(ctx, scanConnKey{}, h.base())
	}
	return ctx
}

// connState turns scanning off once net/http gives the conn to a hijacker.
func connState(c net.Conn, st http.ConnState) {
	if st != http.StateHijacked {
		return
	}
	if h, ok := c.(scanConnHolder); ok {
		h.base().upgraded.Store(true)
	}
}

// guardHandler refuses requests the framing scanner condemned (smuggling
// attempts, oversize headers) before the chain's handler sees them, and
// enforces the exact header size limit on HTTP/2 requests.
type guardHandler struct {
	next           http.Handler
	maxHeaderBytes int
	stats          *stats
}

func (g *guardHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor == 1 {
		if c, ok := r.Context().Value(scanConnKey{}).(*scanConn); ok {
			idx := c.served
			c.served++
			if reason := c.sc.verdict(idx); reason != rejectNone {
				g.refuse(w, reason)
				return
			}
		}
	} else if g.maxHeaderBytes > 0 && h2HeaderSize(r) > g.maxHeaderBytes {
		g.stats.headersTooLarge.Add(1)
		http.Error(w, "Request Header Fields Too Large", http.StatusRequestHeaderFieldsTooLarge)
		return
	}
	g.next.ServeHTTP(w, r)
}

func (g *guardHandler) refuse(w http.ResponseWriter, reason rejectReason) {
	// Connection: close makes net/http close the connection after this
	// response, so nothing after the condemned message is read as a request.
	w.Header().Set("Connection", "close")
	if reason == rejectHeadersTooLarge {
		g.stats.headersTooLarge.Add(1)
		http.Error(w, "Request Header Fields Too Large", http.StatusRequestHeaderFieldsTooLarge)
		return
	}
	g.stats.smugglingRejected.Add(1)
	http.Error(w, "Bad Request: "+reason.String(), http.StatusBadRequest)
}

// h2HeaderSize approximates Envoy's header byte count for an HTTP/2 request:
// names and values of the regular and pseudo headers.
func h2HeaderSize(r *http.Request) int {
	n := len(":method") + len(r.Method) + len(":path") + len(r.RequestURI) +
		len(":authority") + len(r.Host) + len(":scheme") + len("https")
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v)
		}
	}
	return n
}
