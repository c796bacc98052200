package lb

import "math/rand/v2"

// random picks a host at random in proportion to its weight (Envoy's RANDOM
// ignores weights; see docs/load-balancing.md). Equal weights take one
// random number; unequal ones a binary search over the running sums.
// math/rand/v2's global source is per-thread: no lock.
type random struct {
	hosts []*Host
	cum   []uint64 // running weight sums; nil when all weights are equal
}

func newRandom(hosts []*Host) *random {
	p := &random{hosts: hosts}
	if !equalWeights(hosts) {
		p.cum = cumulativeWeights(hosts)
	}
	return p
}

func (p *random) choose(uint64, int) *Host {
	switch n := len(p.hosts); {
	case n == 0:
		return nil
	case n == 1:
		return p.hosts[0]
	case p.cum == nil:
		return p.hosts[rand.Uint64N(uint64(n))]
	}
	return p.hosts[searchCum(p.cum, rand.Uint64N(p.cum[len(p.cum)-1]))]
}

// equalWeights reports whether every host has the same weight now.
func equalWeights(hosts []*Host) bool {
	for _, h := range hosts {
		if h.Weight() != hosts[0].Weight() {
			return false
		}
	}
	return true
}

// cumulativeWeights returns the running sums of the hosts' weights.
func cumulativeWeights(hosts []*Host) []uint64 {
	cum := make([]uint64, len(hosts))
	var sum uint64
	for i, h := range hosts {
		sum += uint64(h.Weight())
		cum[i] = sum
	}
	return cum
}

// searchCum returns the first index whose running sum exceeds x, for x in
// [0, cum[len-1]).
func searchCum(cum []uint64, x uint64) int {
	lo, hi := 0, len(cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}
