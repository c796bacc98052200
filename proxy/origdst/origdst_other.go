//go:build !linux

package origdst

import "net/netip"

func get(int, bool) (netip.AddrPort, error) { return netip.AddrPort{}, ErrUnsupported }
