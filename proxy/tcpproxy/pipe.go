package tcpproxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// spliceChunk is how much one splice copy moves before it returns to
// count the bytes: large enough that the extra call costs nothing, small
// enough that the counters stay current.
const spliceChunk = 4 << 20

// copyBufPool holds the buffers of copies that cannot splice (TLS on
// either side).
var copyBufPool = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

// session is one proxied connection pair.
type session struct {
	p *Proxy
	// downstream is the connection the listener handed over (closing it
	// lets the listener forget it); down is what is read and written: the
	// socket itself when the listener handed it over raw.
	downstream net.Conn
	down, up   net.Conn
	// The sockets under down and up, when known, for the idle timeout's
	// kernel byte counts.
	downSock, upSock *net.TCPConn

	rx, tx    atomic.Int64 // bytes from and to the downstream
	idleFired atomic.Bool
	closeOnce sync.Once
}

func newSession(p *Proxy, downstream, down, up net.Conn, upSock *net.TCPConn) *session {
	s := &session{p: p, downstream: downstream, down: down, up: up, upSock: upSock}
	s.downSock, _ = down.(*net.TCPConn)
	return s
}

// run writes prefix upstream, then copies both ways until both directions
// have ended, and closes both connections.
func (s *session) run(ctx context.Context, prefix []byte) {
	stop := context.AfterFunc(ctx, s.abort)
	defer stop()
	if d := s.p.cfg.IdleTimeout; d > 0 {
		w := s.watchIdle(d)
		defer w.stop()
	}
	defer s.abort()
	if len(prefix) > 0 {
		n, err := s.up.Write(prefix)
		s.count(&s.rx, &s.p.stats.RxBytes, int64(n))
		if err != nil {
			return
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.pump(s.up, s.down, &s.rx, &s.p.stats.RxBytes)
	}()
	s.pump(s.down, s.up, &s.tx, &s.p.stats.TxBytes)
	<-done
}

// pump copies src to dst. At src's end of stream it half-closes dst (the
// FIN travels on) and returns, leaving the other direction running; on any
// error it closes both connections, which ends the other direction too.
func (s *session) pump(dst, src net.Conn, n *atomic.Int64, total *atomic.Uint64) {
	if err := s.copy(dst, src, n, total); err != nil {
		s.abort()
		return
	}
	if err := closeWrite(dst); err != nil {
		s.abort()
	}
}

// copy moves bytes from src to dst until src's end of stream (nil) or an
// error. Between two TCP sockets it splices; otherwise it copies through a
// pooled buffer.
func (s *session) copy(dst, src net.Conn, n *atomic.Int64, total *atomic.Uint64) error {
	if canSplice {
		if d, ok := dst.(*net.TCPConn); ok {
			if sc, ok := src.(*net.TCPConn); ok {
				return s.splice(d, sc, n, total)
			}
		}
	}
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	// Plain Read and Write: io.Copy would hand the copy to a ReadFrom that
	// allocates its own buffer and counts nothing until the end.
	for {
		nr, er := src.Read(buf)
		if nr > 0 {
			nw, ew := dst.Write(buf[:nr])
			s.count(n, total, int64(nw))
			if ew != nil {
				return ew
			}
			if nw != nr {
				return io.ErrShortWrite
			}
		}
		if er == io.EOF {
			return nil
		}
		if er != nil {
			return er
		}
	}
}

// splice copies with (*net.TCPConn).ReadFrom, which uses splice(2) when
// its source is a *net.TCPConn, also inside an *io.LimitedReader: each
// chunk returns to count its bytes.
func (s *session) splice(dst, src *net.TCPConn, n *atomic.Int64, total *atomic.Uint64) error {
	lr := &io.LimitedReader{R: src}
	for {
		lr.N = spliceChunk
		w, err := dst.ReadFrom(lr)
		s.count(n, total, w)
		if err != nil {
			return err
		}
		if lr.N > 0 {
			return nil // end of stream before the chunk was full
		}
	}
}

func (s *session) count(n *atomic.Int64, total *atomic.Uint64, d int64) {
	if d > 0 {
		n.Add(d)
		total.Add(uint64(d))
	}
}

// abort closes both connections; idempotent.
func (s *session) abort() {
	s.closeOnce.Do(func() {
		_ = s.downstream.Close()
		if s.down != s.downstream {
			_ = s.down.Close()
		}
		_ = s.up.Close()
	})
}

// closeWrite half-closes c: a FIN for TCP, close_notify for TLS (whose
// peer reads it as the end of stream).
func closeWrite(c net.Conn) error {
	switch v := c.(type) {
	case *net.TCPConn:
		return v.CloseWrite()
	case *tls.Conn:
		return v.CloseWrite()
	case interface{ CloseWrite() error }:
		return v.CloseWrite()
	}
	// Cannot half-close: end the whole connection rather than leave the
	// peer waiting for a FIN that never comes.
	return c.Close()
}
