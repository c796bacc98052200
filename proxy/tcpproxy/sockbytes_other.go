//go:build !linux

package tcpproxy

import "net"

// canSplice is false: Go splices only on Linux, so copies go through a
// buffer and count every read as it goes.
const canSplice = false

// socketBytes is 0 where the kernel's counts are not read: the bytes the
// buffered copies count tell the idle timeout of progress.
func socketBytes(*net.TCPConn) uint64 { return 0 }
