package origdst

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h),
// which x/sys/unix does not name; it equals SO_ORIGINAL_DST.
const ip6tSOOriginalDst = 80

// get reads the option on fd. x/sys/unix has no getsockopt for a raw
// sockaddr, so the two calls whose result types have the room are used:
// IPv6Mreq (20 bytes) holds a sockaddr_in (16), IPv6MTUInfo (32) a
// sockaddr_in6 (28).
func get(fd int, v4 bool) (netip.AddrPort, error) {
	if v4 {
		m, err := unix.GetsockoptIPv6Mreq(fd, unix.SOL_IP, unix.SO_ORIGINAL_DST)
		if err != nil {
			return netip.AddrPort{}, wrap("SO_ORIGINAL_DST", err)
		}
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(m))
		if sa.Family != unix.AF_INET {
			return netip.AddrPort{}, fmt.Errorf("origdst: SO_ORIGINAL_DST gave address family %d, not AF_INET", sa.Family)
		}
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port(sa.Port)), nil
	}
	m, err := unix.GetsockoptIPv6MTUInfo(fd, unix.SOL_IPV6, ip6tSOOriginalDst)
	if err != nil {
		return netip.AddrPort{}, wrap("IP6T_SO_ORIGINAL_DST", err)
	}
	sa := &m.Addr
	if sa.Family != unix.AF_INET6 {
		return netip.AddrPort{}, fmt.Errorf("origdst: IP6T_SO_ORIGINAL_DST gave address family %d, not AF_INET6", sa.Family)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port(sa.Port)), nil
}

// port converts the sockaddr's network-order port, stored as a native
// uint16.
func port(p uint16) uint16 {
	var b [2]byte
	*(*uint16)(unsafe.Pointer(&b[0])) = p
	return binary.BigEndian.Uint16(b[:])
}

func wrap(opt string, err error) error {
	if errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%w (%s: %v)", ErrNoOriginal, opt, err)
	}
	return fmt.Errorf("origdst: getsockopt %s: %w", opt, err)
}
