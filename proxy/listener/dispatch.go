package listener

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"time"
)

// tlsRecordHandshake is the first byte of a TLS ClientHello record.
const tlsRecordHandshake = 0x16

// http2Preface is the client connection preface of HTTP/2 (h2c prior
// knowledge in plaintext).
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

var (
	errNoChain = errors.New("no filter chain matches")
	// errPassthrough ends the TLS handshake once the ClientHello picked a
	// chain that forwards TLS as it came.
	errPassthrough = errors.New("TLS passthrough chain")
)

// dispatch classifies one accepted connection, terminates TLS when its chain
// has it, and hands it to the chain's TCP handler, h1 codec (HTTP/1.1) or
// http.Server (HTTP/2).
func (l *Listener) dispatch(c *trackedConn) {
	if l.origDst {
		l.restoreOriginalDst(c)
	}
	sel := l.selectorFor(c)
	isTLS := sel.hasTLS
	if sel.hasTLS && sel.hasPlain {
		var err error
		if isTLS, err = l.peekTLS(c); err != nil {
			l.log.Debug("connection closed before protocol detection", "remote", c.RemoteAddr(), "error", err)
			_ = c.Close()
			return
		}
	}
	if !isTLS {
		cs := sel.forPlaintext()
		if cs == nil {
			l.rejectNoChain(c, "plaintext")
			return
		}
		if !l.admit(cs, c, nil) {
			return
		}
		if cs.tcp != nil {
			l.serveTCP(cs, c)
			return
		}
		switch cs.settings.Codec {
		case CodecHTTP2:
			// h2c prior knowledge only: net/http refuses HTTP/1.1 here.
			c.Coalesce()
			c.bufferReads()
			l.deliver(cs, c)
		case CodecHTTP1:
			l.serveH1(cs, c)
		default:
			isH2C, err := l.peekH2CPreface(c, cs.settings.RequestHeadersTimeout)
			switch {
			case err != nil:
				if isTimeout(err) {
					l.stats.headerTimeouts.Add(1)
				}
				l.log.Debug("connection closed before protocol detection", "remote", c.RemoteAddr(), "error", err)
				_ = c.Close()
			case isH2C:
				c.Coalesce()
				c.bufferReads()
				l.deliver(cs, c)
			default:
				l.serveH1(cs, c)
			}
		}
		return
	}
	l.serveTLS(c, sel)
}

// peekH2CPreface reads (for replay) as much of the first bytes as it takes
// to tell the h2c prior-knowledge preface from HTTP/1.1: one byte that
// differs from the preface is enough.
func (l *Listener) peekH2CPreface(c *trackedConn, timeout time.Duration) (bool, error) {
	buf := make([]byte, len(c.peeked), len(http2Preface))
	copy(buf, c.peeked)
	if timeout > 0 {
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		defer func() { _ = c.SetReadDeadline(time.Time{}) }()
	}
	for len(buf) < len(http2Preface) && http2Preface[:len(buf)] == string(buf) {
		n, err := c.Conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if n > 0 && http2Preface[:len(buf)] != string(buf) {
				break // HTTP/1.1 after all; the codec sees the error next
			}
			return false, err
		}
	}
	c.peeked = buf
	return string(buf) == http2Preface, nil
}

// serveH1 hands an HTTP/1.1 connection to the chain's codec.
func (l *Listener) serveH1(cs *chainServer, c net.Conn) {
	if err := cs.h1.Serve(c); err != nil {
		l.log.Debug("connection not served", "remote", c.RemoteAddr(), "error", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// peekTLS reads the first byte (kept for replay) to tell a TLS ClientHello
// from plaintext.
func (l *Listener) peekTLS(c *trackedConn) (bool, error) {
	_ = c.SetReadDeadline(time.Now().Add(l.detectTimeout))
	var b [1]byte
	if _, err := io.ReadFull(c.Conn, b[:]); err != nil {
		return false, err
	}
	_ = c.SetReadDeadline(time.Time{})
	c.peeked = append(c.peeked[:0], b[0])
	return b[0] == tlsRecordHandshake, nil
}

// serveTLS reads the ClientHello to pick the chain, then terminates TLS,
// or, for a passthrough chain, hands the connection over as it came with
// every byte read so far to replay.
func (l *Listener) serveTLS(c *trackedConn, sel *chainSelector) {
	var picked *chainServer
	var conn net.Conn = c
	var rec *recordingConn
	if sel.hasPassthrough {
		rec = &recordingConn{trackedConn: c}
		conn = rec
	}
	cfg := &tls.Config{
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			picked = sel.forTLS(hello.ServerName, hello.SupportedProtos)
			if picked == nil {
				return nil, errNoChain
			}
			if rec != nil {
				if picked.tls == nil {
					rec.passthrough = true
					return nil, errPassthrough
				}
				rec.stop()
			}
			return picked.tls, nil
		},
	}
	tc := tls.Server(conn, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.detectTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil && rec != nil && rec.passthrough && errors.Is(err, errPassthrough) {
		c.peeked = rec.recorded
		if l.admit(picked, c, nil) {
			l.serveTCP(picked, c)
		}
		return
	}
	if err != nil {
		l.stats.tlsHandshakeErrs.Add(1)
		if picked == nil && errors.Is(err, errNoChain) {
			l.rejectNoChain(tc, "tls")
			return
		}
		l.log.Debug("TLS handshake failed", "remote", c.RemoteAddr(), "error", err)
		_ = tc.Close()
		return
	}
	if len(picked.filters) > 0 {
		st := tc.ConnectionState()
		if !l.admit(picked, tc, &st) {
			return
		}
	}
	if picked.tcp != nil {
		l.serveTCP(picked, tc)
		return
	}
	if tc.ConnectionState().NegotiatedProtocol == protoH2 {
		// net/http serves h2 only on a real *tls.Conn (ALPN via TLSNextProto);
		// HTTP/2 framing has no smuggling ambiguity to scan for.
		c.Coalesce()
		l.deliver(picked, tc)
		return
	}
	l.serveH1(picked, tc)
}

// admit runs the chain's network filters on a new connection and closes
// it when one refuses it.
func (l *Listener) admit(cs *chainServer, c net.Conn, st *tls.ConnectionState) bool {
	if len(cs.filters) == 0 {
		return true
	}
	info := ConnInfo{Local: c.LocalAddr(), Remote: c.RemoteAddr(), TLS: st}
	for _, f := range cs.filters {
		if !f.Admit(&info) {
			l.stats.cxFiltered.Add(1)
			_ = c.Close()
			return false
		}
	}
	return true
}

func (l *Listener) deliver(cs *chainServer, c net.Conn) {
	if !cs.ln.deliver(c) {
		_ = c.Close()
	}
}

func (l *Listener) rejectNoChain(c net.Conn, kind string) {
	l.stats.cxRejected.Add(1)
	l.log.Debug("no filter chain matches; closing", "remote", c.RemoteAddr(), "transport", kind)
	_ = c.Close()
}

// serveTCP hands a connection to the chain's TCP handler for its whole
// life. It runs on the connection's own goroutine, which the listener
// waits for on Close; ctx ends when the listener closes its connections.
func (l *Listener) serveTCP(cs *chainServer, c net.Conn) {
	l.stats.tcpConns.Add(1)
	cs.tcp.ServeConn(l.connCtx, c)
	_ = c.Close() // the handler closed it; make sure the listener forgets it
}

// recordingConn keeps every byte the TLS handshake reads until the chain
// is picked: a passthrough chain replays them (the ClientHello and
// anything after it) to its upstream. It answers nothing while it
// records: the alert a handshake aborted for passthrough would send is
// dropped. Reads and the flags are used only by the handshake's goroutine.
type recordingConn struct {
	*trackedConn
	recorded    []byte
	stopped     bool // the chain terminates TLS: record no more
	passthrough bool // the chain passes TLS through: write nothing
}

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.trackedConn.Read(p)
	if !r.stopped {
		r.recorded = append(r.recorded, p[:n]...)
	}
	return n, err
}

func (r *recordingConn) Write(p []byte) (int, error) {
	if r.passthrough {
		return 0, errPassthrough
	}
	return r.trackedConn.Write(p)
}

func (r *recordingConn) stop() {
	r.stopped = true
	r.recorded = nil
}
