//go:build linux

// Package rawio reads and writes TCP sockets with raw system calls.
//
// Go's net package makes every read and write a "syscall" to the
// scheduler: with GOMAXPROCS=1 (a sidecar's usual setting) the scheduler's
// monitor takes the P away from a thread that stays in a system call for
// more than one of its ticks (20 µs) and hands it to another thread, and
// the first thread then has to sleep until it gets a P back: two context
// switches and often a CPU migration. A write to a loopback or
// same-host peer runs the peer's TCP receive path in the writer's system
// call and regularly crosses that line. The sockets are non-blocking, so a
// read or write never waits in the kernel; making them raw system calls
// keeps the P on its thread. Waiting for readiness still goes through the
// runtime's poller (syscall.RawConn), so deadlines and Close work as
// with net.Conn.
package rawio

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// maxIO bounds one raw read or write, so one call never holds the P for
// long (a stop-the-world waits for it).
const maxIO = 256 << 10

// IO does a TCP connection's reads and writes.
type IO struct {
	c  *net.TCPConn
	rc syscall.RawConn
}

// For returns the raw I/O of c, nil when c is not a *net.TCPConn.
func For(c net.Conn) *IO {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return &IO{c: tc, rc: rc}
}

// Read reads like net.Conn's Read: at least one byte, or io.EOF, or a
// *net.OpError as net's (wrapping os.ErrDeadlineExceeded, net.ErrClosed or
// an *os.SyscallError).
func (r *IO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > maxIO {
		p = p[:maxIO]
	}
	var n int
	var errno syscall.Errno
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			r1, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			n, errno = int(r1), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, r.opError("read", err)
	case errno != 0:
		return 0, r.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p like net.Conn's Write, or returns the count
// written and why it stopped.
func (r *IO) Write(p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	short := false
	err := r.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			chunk := p[n:]
			if len(chunk) > maxIO {
				chunk = chunk[:maxIO]
			}
			r1, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&chunk[0])), uintptr(len(chunk)))
			switch e {
			case 0:
				if r1 == 0 {
					short = true
					return true
				}
				n += int(r1)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return n, r.opError("write", err)
	case errno != 0:
		return n, r.opError("write", os.NewSyscallError("write", errno))
	case short:
		return n, r.opError("write", io.ErrShortWrite)
	}
	return n, nil
}

// opError wraps err as net's own Read and Write do.
func (r *IO) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: r.c.LocalAddr(), Addr: r.c.RemoteAddr(), Err: err}
}
