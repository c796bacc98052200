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
//
// A raw system call on a blocking descriptor would hold the P while it
// sleeps and freeze the process, so For refuses a socket whose descriptor
// is not non-blocking, and the descriptor of a connection given to For
// must never be handed out (File, Fd): that could make it blocking.
// Under the race detector the buffers are touched from Go as well, so
// races on them are still reported (the system calls themselves are not
// instrumented).
package rawio

import (
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// maxIO bounds one raw read or write system call; a longer write yields
// between its chunks, so a stop-the-world never waits on more than one.
const maxIO = 256 << 10

// IO does a TCP connection's reads and writes. The state of the read and
// the write in progress lives in it, with the functions given to
// syscall.RawConn bound once, so a read or a write allocates nothing.
type IO struct {
	c  *net.TCPConn
	rc syscall.RawConn

	rmu    sync.Mutex // one read at a time, as the poller's own lock
	rbuf   []byte
	rn     int
	rerrno syscall.Errno
	readFn func(uintptr) bool

	wmu     sync.Mutex
	wbuf    []byte
	wn      int
	werrno  syscall.Errno
	wshort  bool
	writeFn func(uintptr) bool
}

// For returns the raw I/O of c, nil when c is not a *net.TCPConn with a
// non-blocking descriptor (then use c itself).
func For(c net.Conn) *IO {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	nonblocking := false
	if err := rc.Control(func(fd uintptr) {
		flags, _, e := syscall.RawSyscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		nonblocking = e == 0 && flags&syscall.O_NONBLOCK != 0
	}); err != nil || !nonblocking {
		return nil
	}
	r := &IO{c: tc, rc: rc}
	r.readFn, r.writeFn = r.read, r.write
	return r
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
	r.rmu.Lock()
	r.rbuf, r.rn, r.rerrno = p, 0, 0
	err := r.rc.Read(r.readFn)
	n, errno := r.rn, r.rerrno
	r.rbuf = nil
	r.rmu.Unlock()
	if n > 0 {
		raceWrote(p[:n])
	}
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

// read is one attempt under the poller: false means EAGAIN (wait).
func (r *IO) read(fd uintptr) bool {
	p := r.rbuf
	for {
		r1, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch e {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		r.rn, r.rerrno = int(r1), e
		return true
	}
}

// Write writes all of p like net.Conn's Write, or returns the count
// written and why it stopped.
func (r *IO) Write(p []byte) (int, error) {
	raceRead(p)
	r.wmu.Lock()
	r.wbuf, r.wn, r.werrno, r.wshort = p, 0, 0, false
	err := r.rc.Write(r.writeFn)
	n, errno, short := r.wn, r.werrno, r.wshort
	r.wbuf = nil
	r.wmu.Unlock()
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

// write writes what it can under the poller: false means EAGAIN (wait
// for room, then go on).
func (r *IO) write(fd uintptr) bool {
	p := r.wbuf
	for chunks := 0; r.wn < len(p); chunks++ {
		if chunks > 0 {
			// A preemption point: a raw system call has none, and a
			// stop-the-world must not wait for a whole large write.
			runtime.Gosched()
		}
		chunk := p[r.wn:]
		if len(chunk) > maxIO {
			chunk = chunk[:maxIO]
		}
		r1, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&chunk[0])), uintptr(len(chunk)))
		switch e {
		case 0:
			if r1 == 0 {
				r.wshort = true
				return true
			}
			if int(r1) > len(chunk) {
				panic("rawio: write returned more than it was given")
			}
			r.wn += int(r1)
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false
		default:
			r.werrno = e
			return true
		}
	}
	return true
}

// opError wraps err as net's own Read and Write do (syscall.RawConn
// wraps its errors as a "raw-read" or "raw-write" *net.OpError: unwrapped
// first).
func (r *IO) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: r.c.LocalAddr(), Addr: r.c.RemoteAddr(), Err: err}
}
