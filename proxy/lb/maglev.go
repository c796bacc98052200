package lb

import (
	"math"
	"slices"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// maglev is Envoy's MAGLEV: a lookup table of a prime size filled by each
// host's permutation of the slots (offset xxHash64(address) and skip
// xxHash64(address, seed 1)), hosts taking turns in proportion to their
// normalized weights. A request goes to table[hash % size]: one load.
type maglev struct {
	hosts []*Host
	table []uint32 // indexes hosts
}

const maglevEmpty = math.MaxUint32

// newMaglev builds the table over hosts with their normalized weights.
func newMaglev(hosts []*Host, weights []float64, size uint64) *maglev {
	p := &maglev{hosts: hosts}
	if len(hosts) == 0 {
		return p
	}
	// Fill in a stable order (by address, as Envoy sorts by hash key) so
	// the same hosts give the same table whatever order they came in.
	entries := make([]maglevEntry, len(hosts))
	d := xxhash.NewWithSeed(1)
	maxWeight := 0.0
	for i, h := range hosts {
		d.ResetWithSeed(1)
		_, _ = d.WriteString(h.Address)
		entries[i] = maglevEntry{
			host:   uint32(i),
			pos:    xxhash.Sum64String(h.Address) % size, // the offset
			skip:   d.Sum64()%(size-1) + 1,
			weight: weights[i],
		}
		maxWeight = max(maxWeight, weights[i])
	}
	slices.SortStableFunc(entries, func(a, b maglevEntry) int {
		return strings.Compare(hosts[a.host].Address, hosts[b.host].Address)
	})
	table := make([]uint32, size)
	for i := range table {
		table[i] = maglevEmpty
	}
	// Each round every host whose weight has earned a turn claims its
	// next free preferred slot; the heaviest host claims one every round.
	filled := uint64(0)
	for round := 1.0; filled < size; round++ {
		for i := range entries {
			if filled == size {
				break
			}
			e := &entries[i]
			if round*e.weight < e.target {
				continue
			}
			e.target += maxWeight
			// Walk the host's permutation offset, offset+skip, ... (mod
			// size) to its next free slot.
			for table[e.pos] != maglevEmpty {
				e.advance(size)
			}
			table[e.pos] = e.host
			e.advance(size)
			filled++
		}
	}
	p.table = table
	return p
}

// maglevEntry is one host's state while the table fills.
type maglevEntry struct {
	host           uint32
	pos, skip      uint64 // pos: (offset + skip*next) % size, kept by addition
	weight, target float64
}

// advance moves to the next slot of the host's permutation without a
// division: skip < size, so one subtraction wraps it.
func (e *maglevEntry) advance(size uint64) {
	e.pos += e.skip
	if e.pos >= size {
		e.pos -= size
	}
}

func (p *maglev) choose(hash uint64, attempt int) *Host {
	if len(p.table) == 0 {
		return nil
	}
	if attempt > 0 {
		// Envoy's retry walk: XOR the hash with ~0 - attempt + 1. The
		// first retry lands far from the original slot; later ones land
		// near the first retry's (they differ in the low bits only).
		hash ^= math.MaxUint64 - uint64(attempt) + 1
	}
	return p.hosts[p.table[hash%uint64(len(p.table))]]
}
