//go:build unix

package transport

import (
	"net"
	"syscall"
)

// idleProbe looks at an idle connection's socket without blocking, to drop
// one the upstream closed (or wrote to) while it sat in the pool before a
// request is sent on it. A syscall per reuse is far cheaper than a request
// failing on a dead connection: only idempotent ones could be retried.
type idleProbe struct {
	rc   syscall.RawConn
	fn   func(fd uintptr) bool // preallocated: a probe allocates nothing
	buf  [1]byte
	live bool
}

func (p *idleProbe) init(c net.Conn) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	p.rc = rc
	p.fn = func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read is the only sign of a healthy idle connection:
		// EOF (n == 0), an error, or unsolicited bytes all mean drop it.
		p.live = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
		return true
	}
}

// alive reports whether the idle connection still looks usable.
func (p *idleProbe) alive() bool {
	if p.rc == nil {
		return true
	}
	p.live = false
	if err := p.rc.Read(p.fn); err != nil {
		return false
	}
	return p.live
}
