package coalesce

import (
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/outrigger-mesh/outrigger/internal/rawio"
)

// Socket is the proxy's side of one connection, shared by the listener's
// accepted connections and the transport's dialled ones: it reads and
// writes with raw system calls where rawio can (a non-blocking TCP socket)
// and through net otherwise, and once Coalesce is called its writes go
// through a Writer. Owners embed it and add their own Close, which calls
// StopWrites before closing the socket.
type Socket struct {
	net.Conn
	raw   *rawio.IO // nil unless a non-blocking TCP socket
	wb    atomic.Pointer[Writer]
	owner io.Closer
}

// NewSocket wraps c for owner, whose Close ends the connection after a
// coalesced write failed (so the owner's bookkeeping runs).
func NewSocket(c net.Conn, owner io.Closer) *Socket {
	return &Socket{Conn: c, raw: rawio.For(c), owner: owner}
}

// Read reads from the socket.
func (s *Socket) Read(p []byte) (int, error) {
	if s.raw != nil {
		return s.raw.Read(p)
	}
	return s.Conn.Read(p)
}

// Write writes through the Writer once coalescing, else to the socket.
func (s *Socket) Write(p []byte) (int, error) {
	if wb := s.wb.Load(); wb != nil {
		return wb.Write(p)
	}
	return s.WriteRaw(p)
}

// WriteRaw writes to the socket itself (Conn).
func (s *Socket) WriteRaw(p []byte) (int, error) {
	if s.raw != nil {
		return s.raw.Write(p)
	}
	return s.Conn.Write(p)
}

// Fail closes the owner after a coalesced write failed (Conn).
func (s *Socket) Fail() { _ = s.owner.Close() }

// SetSocketWriteDeadline sets the socket's own write deadline (Conn).
func (s *Socket) SetSocketWriteDeadline(t time.Time) error { return s.Conn.SetWriteDeadline(t) }

// SetWriteDeadline bounds later writes; once coalescing it goes to the
// Writer and never cuts a flush of bytes already accepted (crypto/tls
// sets a deadline of "now" right after queueing its close_notify).
func (s *Socket) SetWriteDeadline(t time.Time) error {
	if wb := s.wb.Load(); wb != nil {
		wb.SetWriteDeadline(t)
		return nil
	}
	return s.Conn.SetWriteDeadline(t)
}

// SetDeadline is SetReadDeadline and SetWriteDeadline.
func (s *Socket) SetDeadline(t time.Time) error {
	if wb := s.wb.Load(); wb != nil {
		wb.SetWriteDeadline(t)
		return s.Conn.SetReadDeadline(t)
	}
	return s.Conn.SetDeadline(t)
}

// Coalesce makes the writes of one scheduling round one system call, for
// a connection given to net/http's HTTP/2 server or client (which flush
// per frame group). HTTP/1.1 and TCP write once per event already.
func (s *Socket) Coalesce() { s.wb.Store(NewWriter(s)) }

// Coalescing reports whether Coalesce was called.
func (s *Socket) Coalescing() bool { return s.wb.Load() != nil }

// StopWrites ends coalesced writing before the owner closes the socket:
// what is queued is sent first (Writer.Close), or dropped when abort
// (Writer.Abort: closing everything at once). No-op when not coalescing.
func (s *Socket) StopWrites(abort bool) {
	wb := s.wb.Load()
	switch {
	case wb == nil:
	case abort:
		wb.Abort()
	default:
		wb.Close()
	}
}
