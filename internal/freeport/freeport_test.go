package freeport

import (
	"net"
	"strconv"
	"testing"
)

// A port comes from below the ephemeral range (when there is room) and
// can be bound at once.
func TestPortBelowEphemeralRange(t *testing.T) {
	lo, hi := Range()
	for range 20 {
		p, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if hi > lo && (p < lo || p >= hi) {
			t.Fatalf("port %d outside [%d, %d)", p, lo, hi)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("port %d: %v", p, err)
		}
		l.Close()
	}
	if a, err := Addr(); err != nil || a[:10] != "127.0.0.1:" {
		t.Fatalf("Addr() = %q, %v", a, err)
	}
}
