package tcpproxy

import (
	"net"

	"golang.org/x/sys/unix"
)

// canSplice: io.Copy between two *net.TCPConn uses splice(2) here.
const canSplice = true

// socketBytes is the kernel's count of bytes received on c plus bytes it
// sent that the peer acknowledged (TCP_INFO), 0 when c is nil or closed.
// It sees the bytes a splice is moving before the splice returns.
func socketBytes(c *net.TCPConn) uint64 {
	if c == nil {
		return 0
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var n uint64
	_ = rc.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err == nil {
			n = info.Bytes_acked + info.Bytes_received
		}
	})
	return n
}
