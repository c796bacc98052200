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

var errNoChain = errors.New("no filter chain matches")

// dispatch classifies one accepted connection, terminates TLS when its chain
// has it, and hands it to the chain's http.Server.
func (l *Listener) dispatch(c *trackedConn) {
	isTLS := l.sel.hasTLS
	if l.sel.hasTLS && l.sel.hasPlain {
		var err error
		if isTLS, err = l.peekTLS(c); err != nil {
			l.log.Debug("connection closed before protocol detection", "remote", c.RemoteAddr(), "error", err)
			_ = c.Close()
			return
		}
	}
	if !isTLS {
		cs := l.sel.forPlaintext()
		if cs == nil {
			l.rejectNoChain(c, "plaintext")
			return
		}
		l.deliver(cs, l.newScanConn(c, cs))
		return
	}
	l.serveTLS(c)
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

func (l *Listener) serveTLS(c *trackedConn) {
	var picked *chainServer
	cfg := &tls.Config{
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			picked = l.sel.forTLS(hello.ServerName, hello.SupportedProtos)
			if picked == nil {
				return nil, errNoChain
			}
			return picked.tls, nil
		},
	}
	tc := tls.Server(c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), l.detectTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
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
	if tc.ConnectionState().NegotiatedProtocol == protoH2 {
		// net/http serves h2 only on a real *tls.Conn (ALPN via TLSNextProto);
		// HTTP/2 framing has no smuggling ambiguity to scan for.
		l.deliver(picked, tc)
		return
	}
	sc := l.newScanConn(tc, picked)
	l.deliver(picked, &tlsScanConn{scanConn: sc, tc: tc})
}

func (l *Listener) newScanConn(c net.Conn, cs *chainServer) *scanConn {
	return &scanConn{
		Conn:  c,
		sc:    newFramingScanner(cs.settings.MaxRequestHeadersBytes, cs.tls == nil && cs.settings.Codec != CodecHTTP1),
		stats: &l.stats,
	}
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
