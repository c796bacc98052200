// Package freeport picks loopback TCP ports for tests and tools that must
// name a port before the process that binds it starts (a child process, a
// Consul agent, a config file). Probing with ":0" and closing hands out a
// port from the kernel's ephemeral range, where an outgoing connection's
// source port or another ":0" listener can take it before it is bound;
// ports below that range do not move under the caller.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Range is [lo, hi) below the ephemeral range of
// /proc/sys/net/ipv4/ip_local_port_range, or an empty range (use ":0")
// when that cannot be read or leaves too little room.
func Range() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	eph, err := strconv.Atoi(f[0])
	if err != nil || eph < floor+1000 {
		return 0, 0
	}
	return floor, eph
}

// floor keeps clear of the well-known and commonly configured ports.
const floor = 10000

// Port returns a loopback TCP port that was free a moment ago, from Range
// when it is not empty.
func Port() (int, error) {
	lo, hi := Range()
	var err error
	for range 100 {
		port := 0 // the kernel's choice, in the ephemeral range
		if hi > lo {
			port = lo + rand.IntN(hi-lo)
		}
		var l net.Listener
		if l, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err != nil {
			continue
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		return port, nil
	}
	return 0, fmt.Errorf("freeport: no free port in 100 tries in [%d, %d): %w", lo, hi, err)
}

// Addr is Port as "127.0.0.1:PORT".
func Addr() (string, error) {
	p, err := Port()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(p)), nil
}
