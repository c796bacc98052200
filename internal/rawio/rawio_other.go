//go:build !linux

package rawio

import "net"

// IO does a TCP connection's reads and writes (Linux only; elsewhere For
// returns nil and callers use the connection itself).
type IO struct{}

// For returns nil: raw I/O is implemented for Linux only.
func For(net.Conn) *IO { return nil }

// Read is never called: For returns nil.
func (*IO) Read([]byte) (int, error) { panic("rawio: not supported") }

// Write is never called: For returns nil.
func (*IO) Write([]byte) (int, error) { panic("rawio: not supported") }
