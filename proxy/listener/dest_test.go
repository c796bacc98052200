package listener

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
)

// Destination matching on loopback: a listener on 0.0.0.0 sees the
// address a client dialled (127.0.0.1 or 127.0.0.2) as its local
// address, so prefix_ranges and destination_port pick chains for real
// connections, with Envoy's precedence (port, then the longest prefix,
// then the rest; no fallback to less specific chains).
func TestDestinationMatch(t *testing.T) {
	checkNoGoroutineLeak(t)
	probe, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("127.0.0.2 is not usable here: %v", err)
	}
	_ = probe.Close()

	wide, narrow, byPort, plainOnly, def := newEchoTCP("wide"), newEchoTCP("narrow"), newEchoTCP("port"), newEchoTCP("plain"), newEchoTCP("default")
	ln, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	_ = ln.Close()
	otherPort := port + 1
	if otherPort == 0 {
		otherPort = 2
	}
	l := startListener(t, Config{
		Address: net.JoinHostPort("0.0.0.0", strconv.Itoa(int(port))),
		FilterChains: []FilterChain{
			// 127.0.0.0/8 on any port.
			{Name: "wide", TCP: wide, Match: ChainMatch{PrefixRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}},
			// 127.0.0.2/32: longer, wins for 127.0.0.2 — but only takes
			// TLS, so plaintext to 127.0.0.2 goes to the default chain
			// rather than falling back to "wide".
			{Name: "narrow", TCP: narrow, Match: ChainMatch{PrefixRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}, TransportProtocol: "tls"}},
			// A chain on another port never sees this listener's
			// connections.
			{Name: "port", TCP: byPort, Match: ChainMatch{DestinationPort: otherPort}},
			{Name: "plain", TCP: plainOnly, Match: ChainMatch{TransportProtocol: "raw_buffer", PrefixRanges: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}},
		},
		DefaultChain: &FilterChain{Name: "default", TCP: def},
	})
	dial := func(ip string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", net.JoinHostPort(ip, strconv.Itoa(int(port))))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		_, _ = c.Write([]byte("x")) // plaintext
		return c
	}
	if got := readN(t, dial("127.0.0.1"), 5); got != "wide:" {
		t.Errorf("127.0.0.1 served by %q, want the /8 chain", got)
	}
	if got := readN(t, dial("127.0.0.2"), 8); got != "default:" {
		t.Errorf("plaintext to 127.0.0.2 served by %q, want the default chain (the /32 chain takes only TLS, no fallback to /8)", got)
	}
	if n := l.Stats().OriginalDstRestored; n != 0 {
		t.Errorf("OriginalDstRestored = %d without the original_dst filter", n)
	}
}

// With the original_dst filter on, a connection that was not redirected
// keeps its local address (no conntrack entry, or the same address).
func TestOriginalDstNotRedirected(t *testing.T) {
	h := newEchoTCP("tcp")
	l := startListener(t, Config{OriginalDst: true, FilterChains: []FilterChain{{Name: "tcp", TCP: h}}})
	c := dialRaw(t, l)
	if got := readN(t, c, 4); got != "tcp:" {
		t.Fatalf("greeting %q", got)
	}
	st := l.Stats()
	if st.OriginalDstRestored != 0 || st.OriginalDstErrors != 0 {
		t.Errorf("restored %d, errors %d for a direct connection; want 0, 0", st.OriginalDstRestored, st.OriginalDstErrors)
	}
}

// The index alone: port first, then the longest prefix, v4-mapped
// addresses as IPv4, and the default chain when nothing matches.
func TestDestIndexPick(t *testing.T) {
	mk := func(name string, port uint16, prefixes ...string) *chainServer {
		cs := &chainServer{name: name, tcp: newEchoTCP(name), catchAll: true}
		cs.match.DestinationPort = port
		for _, p := range prefixes {
			cs.match.PrefixRanges = append(cs.match.PrefixRanges, netip.MustParsePrefix(p))
		}
		return cs
	}
	any80 := mk("any80", 80)
	net10 := mk("net10", 80, "10.0.0.0/8")
	host := mk("host", 80, "10.1.2.3/32", "2001:db8::1/128")
	any := mk("any", 0)
	def := mk("default", 0)
	d := newDestIndex([]*chainServer{any80, net10, host, any}, def)
	for _, tc := range []struct {
		dst  string
		want string
	}{
		{"10.1.2.3:80", "host"},
		{"[::ffff:10.1.2.3]:80", "host"},
		{"[2001:db8::1]:80", "host"},
		{"10.9.9.9:80", "net10"},
		{"192.168.0.1:80", "any80"},
		{"[2001:db8::2]:80", "any80"},
		{"10.1.2.3:81", "any"}, // no chain on 81: the port-less chains
	} {
		sel := d.pick(netip.MustParseAddrPort(tc.dst))
		got := sel.forPlaintext()
		if got == nil || got.name != tc.want {
			t.Errorf("%s: chain %v, want %s", tc.dst, got, tc.want)
		}
	}
	// Only chains on port 80: port 81 gets the default chain.
	d = newDestIndex([]*chainServer{net10}, def)
	if got := d.pick(netip.MustParseAddrPort("10.0.0.1:81")).forPlaintext(); got != def {
		t.Errorf("unmatched port: %v, want the default chain", got)
	}
	if got := d.pick(netip.MustParseAddrPort("11.0.0.1:80")).forPlaintext(); got != def {
		t.Errorf("unmatched address: %v, want the default chain", got)
	}
	if hasDestMatch([]*chainServer{any}) || !hasDestMatch([]*chainServer{any, net10}) {
		t.Error("hasDestMatch wrong")
	}
}

func TestPrefixRangesValidation(t *testing.T) {
	cfg := Config{Name: "l", FilterChains: []FilterChain{{Name: "c", TCP: newEchoTCP("c"), Match: ChainMatch{PrefixRanges: []netip.Prefix{{}}}}}}
	if err := cfg.Validate(); err == nil || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Validate with an invalid prefix = %v", err)
	}
}
