package listener

import (
	"errors"
	"net"
	"net/netip"
	"sort"

	"github.com/outrigger-mesh/outrigger/proxy/origdst"
)

// destIndex picks the chains a connection may use from its destination,
// Envoy's first two filter chain match steps: destination_port (the
// chains with the connection's port if any has it, else those with
// none), then prefix_ranges (the chains listing the longest prefix that
// contains the destination address; chains without prefix ranges count
// as 0.0.0.0/0 and ::/0). Neither step falls back to a less specific
// set when a more specific one matched: a connection whose set then
// matches nothing on server names, transport protocol or ALPN goes to
// the default chain. The rest of the matching runs over the set.
type destIndex struct {
	ports map[uint16][]prefixChains // port 0: chains without destination_port
	// none serves connections no chain's destination matches: the
	// default chain only.
	none *chainSelector
}

// prefixChains are the chains that list one prefix, longest prefixes
// first within a port.
type prefixChains struct {
	prefix netip.Prefix
	sel    *chainSelector
}

// anyPrefixes are what a chain without prefix_ranges matches.
var anyPrefixes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// hasDestMatch reports whether any chain matches on its destination.
func hasDestMatch(chains []*chainServer) bool {
	for _, c := range chains {
		if c.match.DestinationPort != 0 || len(c.match.PrefixRanges) > 0 {
			return true
		}
	}
	return false
}

func newDestIndex(chains []*chainServer, def *chainServer) *destIndex {
	type key struct {
		port   uint16
		prefix netip.Prefix
	}
	groups := map[key][]*chainServer{}
	var order []key
	for _, c := range chains {
		prefixes := c.match.PrefixRanges
		if len(prefixes) == 0 {
			prefixes = anyPrefixes
		}
		for _, p := range prefixes {
			k := key{c.match.DestinationPort, p.Masked()}
			if _, ok := groups[k]; !ok {
				order = append(order, k)
			}
			if g := groups[k]; len(g) == 0 || g[len(g)-1] != c {
				groups[k] = append(g, c)
			}
		}
	}
	d := &destIndex{ports: map[uint16][]prefixChains{}, none: newChainSelector(nil, def)}
	for _, k := range order {
		d.ports[k.port] = append(d.ports[k.port], prefixChains{prefix: k.prefix, sel: newChainSelector(groups[k], def)})
	}
	for _, ps := range d.ports {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].prefix.Bits() > ps[j].prefix.Bits() })
	}
	return d
}

// pick returns the selector for a connection to dst.
func (d *destIndex) pick(dst netip.AddrPort) *chainSelector {
	ps, ok := d.ports[dst.Port()]
	if !ok {
		ps = d.ports[0]
	}
	ip := dst.Addr().Unmap()
	for _, p := range ps {
		if p.prefix.Contains(ip) {
			return p.sel
		}
	}
	return d.none
}

// selectorFor returns the selector for c: the listener's only one, or
// the one for its destination when chains match on it.
func (l *Listener) selectorFor(c net.Conn) *chainSelector {
	if l.dest == nil {
		return l.sel
	}
	a, ok := c.LocalAddr().(*net.TCPAddr)
	if !ok {
		return l.dest.none
	}
	return l.dest.pick(a.AddrPort())
}

// restoreOriginalDst is the original_dst listener filter: a connection
// netfilter redirected to the listener gets its original destination as
// its local address, for chain matching, network filters and
// ORIGINAL_DST clusters. A connection that was not redirected (no
// conntrack entry, or its original destination is the listener's own
// address) keeps its own, as does one whose original destination cannot
// be read (counted and logged): Envoy's filter leaves the address alone
// then too.
func (l *Listener) restoreOriginalDst(c *trackedConn) {
	dst, redirected, err := origdst.Redirected(c.Conn)
	switch {
	case err == nil && redirected:
		c.local = net.TCPAddrFromAddrPort(dst)
		l.stats.origDstRestored.Add(1)
	case err == nil, errors.Is(err, origdst.ErrNoOriginal):
	default:
		l.stats.origDstErrors.Add(1)
		l.log.Debug("cannot read the original destination; keeping the local address", "remote", c.RemoteAddr(), "error", err)
	}
}
