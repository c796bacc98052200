//go:build linux

package tcpproxy

import (
	"net"
	"runtime"
	"syscall"
	"testing"
)

func init() { spliceFloor = startSpliceFloor }

// startSpliceFloor runs the least a user-space relay can do between two
// TCP sockets on Linux, as a floor for BenchmarkThroughput: per direction
// one OS thread blocked in splice(2) (socket → pipe → socket, 1 MiB pipe,
// SPLICE_F_MOVE|SPLICE_F_MORE), no Go scheduler, no counting, no
// timeouts. What separates it from direct is the kernel's work for the
// extra loopback hop; what separates the proxy from it is the proxy's own.
func startSpliceFloor(b *testing.B, target string) string {
	return serveTCP(b, func(c *net.TCPConn) {
		u, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer u.Close()
		up := u.(*net.TCPConn)
		done := make(chan struct{})
		go func() {
			defer close(done)
			floorPump(b, up, c)
		}()
		floorPump(b, c, up)
		<-done
	})
}

// floorPump splices src to dst in blocking mode until src's end of stream,
// then half-closes dst.
func floorPump(b *testing.B, dst, src *net.TCPConn) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	s, d := rawFD(src), rawFD(dst)
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_CLOEXEC); err != nil {
		b.Error(err)
		return
	}
	defer syscall.Close(p[0])
	defer syscall.Close(p[1])
	const fSetPipeSz = 1031
	_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, uintptr(p[0]), fSetPipeSz, 1<<20)
	const moveMore = 1 | 4 // SPLICE_F_MOVE | SPLICE_F_MORE
	for {
		n, err := syscall.Splice(s, nil, p[1], nil, 1<<20, moveMore)
		if err == syscall.EINTR {
			continue
		}
		if n <= 0 || err != nil {
			_ = syscall.Shutdown(d, syscall.SHUT_WR)
			return
		}
		for n > 0 {
			m, err := syscall.Splice(p[0], nil, d, nil, int(n), moveMore)
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				return
			}
			n -= m
		}
	}
}

// rawFD is c's descriptor, switched to blocking mode for floorPump.
func rawFD(c *net.TCPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	_ = rc.Control(func(f uintptr) {
		fd = int(f)
		_ = syscall.SetNonblock(fd, false)
	})
	return fd
}
