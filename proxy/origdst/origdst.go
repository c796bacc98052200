// Package origdst recovers the destination a connection was sent to before
// netfilter redirected it to the proxy (iptables REDIRECT/DNAT or nftables
// redirect, as `outrigger redirect-traffic` installs): getsockopt
// SO_ORIGINAL_DST for IPv4 and IP6T_SO_ORIGINAL_DST for IPv6, read from the
// connection's conntrack entry. It is what Envoy's
// envoy.filters.listener.original_dst listener filter does.
package origdst

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrUnsupported is returned where the platform has no SO_ORIGINAL_DST.
var ErrUnsupported = errors.New("origdst: SO_ORIGINAL_DST is only available on Linux")

// ErrNoOriginal is returned when the kernel has no original destination
// for the connection: it was not tracked by conntrack (no NAT rule saw it).
var ErrNoOriginal = errors.New("origdst: the connection has no conntrack entry (it was not redirected)")

// Get returns the original destination of an accepted TCP connection. A
// connection that conntrack tracked but no rule redirected reports its own
// local address; callers that must tell the two apart compare with
// c.LocalAddr() (Redirected does).
func Get(c net.Conn) (netip.AddrPort, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("origdst: %T is not a socket", c)
	}
	local, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("origdst: %v is not a TCP address", c.LocalAddr())
	}
	ip, _ := netip.AddrFromSlice(local.IP)
	raw, err := sc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("origdst: %w", err)
	}
	var (
		dst  netip.AddrPort
		oerr error
	)
	// An IPv4 connection accepted on a dual-stack socket has a v4-mapped
	// local address; conntrack tracks it as IPv4.
	v4 := ip.Unmap().Is4()
	if err := raw.Control(func(fd uintptr) { dst, oerr = get(int(fd), v4) }); err != nil {
		return netip.AddrPort{}, fmt.Errorf("origdst: %w", err)
	}
	if oerr != nil {
		return netip.AddrPort{}, oerr
	}
	return dst, nil
}

// Redirected is Get that also reports whether the original destination
// differs from the connection's local address (false: the connection
// reached the listener directly).
func Redirected(c net.Conn) (netip.AddrPort, bool, error) {
	dst, err := Get(c)
	if err != nil {
		return netip.AddrPort{}, false, err
	}
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	return dst, dst.Addr().Unmap() != local.Addr().Unmap() || dst.Port() != local.Port(), nil
}

// Conn is an accepted connection whose LocalAddr is the original
// destination, as Envoy's original_dst listener filter restores it (filter
// chain matching on destination_port and prefix_ranges, and an
// ORIGINAL_DST cluster, then see where the client was going).
type Conn struct {
	net.Conn
	// Original is the original destination; Accepted the address the
	// connection actually reached (the proxy's listener).
	Original, Accepted netip.AddrPort
}

// LocalAddr is the original destination.
func (c *Conn) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(c.Original) }

// Restore wraps a redirected connection in a Conn; a connection that was
// not redirected (no conntrack entry, or the original destination is its
// own local address) is returned as it is, with false.
func Restore(c net.Conn) (net.Conn, bool, error) {
	dst, redirected, err := Redirected(c)
	if errors.Is(err, ErrNoOriginal) {
		return c, false, nil
	}
	if err != nil {
		return c, false, err
	}
	if !redirected {
		return c, false, nil
	}
	return &Conn{Conn: c, Original: dst, Accepted: c.LocalAddr().(*net.TCPAddr).AddrPort()}, true, nil
}
