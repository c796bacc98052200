package lb

import (
	"sync"
	"sync/atomic"
)

// RoundRobin is nginx's smooth weighted round robin: over any window of
// sum(weights) picks among available hosts each host is chosen exactly
// weight times, and picks of one host are spread out rather than bunched.
// Unavailable hosts are skipped without disturbing the others' rhythm.
//
// When all weights are equal a pick is one atomic increment. Otherwise the
// state is one int64 per host behind a mutex: a pick is a short loop that
// allocates nothing. (A lock-free variant would need a CAS over the whole
// vector; at a few dozen nanoseconds the mutex is not the limit.)
type RoundRobin struct {
	hosts   []*Host
	weights []int64 // the weights as of construction
	equal   bool    // all weights equal: rotate with next, no lock
	// filter skips unavailable hosts. NewRoundRobin sets it; New does not,
	// handing over the hosts to balance (healthy ones, or all in panic).
	filter bool

	next atomic.Uint64

	mu      sync.Mutex
	current []int64
}

// NewRoundRobin builds a smooth weighted round robin over hosts, reading
// their weights now. The slice is not copied: callers hand it over.
func NewRoundRobin(hosts []*Host) *RoundRobin { return newRoundRobin(hosts, true) }

func newRoundRobin(hosts []*Host, filter bool) *RoundRobin {
	rr := &RoundRobin{
		hosts:   hosts,
		weights: make([]int64, len(hosts)),
		equal:   true,
		filter:  filter,
	}
	for i, h := range hosts {
		rr.weights[i] = int64(h.Weight())
		if rr.weights[i] != rr.weights[0] {
			rr.equal = false
		}
	}
	if !rr.equal {
		rr.current = make([]int64, len(hosts))
	}
	return rr
}

// Pick returns the next host, or nil when none is available. A host r's
// retry predicate rejects is skipped by picking again, up to r.MaxAttempts
// more times; if every pick is rejected the last one is returned.
func (rr *RoundRobin) Pick(r *Request) *Host {
	h := rr.choose(0, 0)
	for i := 0; i < r.retries() && h != nil && r.Rejects(h); i++ {
		h = rr.choose(0, i+1)
	}
	return h
}

func (rr *RoundRobin) choose(uint64, int) *Host {
	n := len(rr.hosts)
	switch {
	case n == 0:
		return nil
	case n == 1:
		// Nothing to balance; skip the counter and the lock.
		if h := rr.hosts[0]; !rr.filter || h.Available() {
			return h
		}
		return nil
	case rr.equal:
		// Each skipped host consumes a turn too, so the available ones
		// keep alternating evenly around a hole.
		for range n {
			h := rr.hosts[(rr.next.Add(1)-1)%uint64(n)]
			if !rr.filter || h.Available() {
				return h
			}
		}
		return nil
	}
	rr.mu.Lock()
	best := -1
	var total int64
	for i, h := range rr.hosts {
		if rr.filter && !h.Available() {
			continue
		}
		w := rr.weights[i]
		rr.current[i] += w
		total += w
		if best < 0 || rr.current[i] > rr.current[best] {
			best = i
		}
	}
	if best < 0 {
		rr.mu.Unlock()
		return nil
	}
	rr.current[best] -= total
	rr.mu.Unlock()
	return rr.hosts[best]
}

// Hosts returns the hosts the picker chooses from. Callers must not modify it.
func (rr *RoundRobin) Hosts() []*Host { return rr.hosts }
