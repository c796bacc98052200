package lb

import "sync"

// RoundRobin is nginx's smooth weighted round robin: over any window of
// sum(weights) picks among available hosts each host is chosen exactly
// weight times, and picks of one host are spread out rather than bunched.
// Unavailable hosts are skipped without disturbing the others' rhythm.
//
// The state is one int64 per host behind a mutex: a pick is a short loop
// that allocates nothing. (A lock-free variant would need a CAS over the
// whole vector; at a few dozen nanoseconds the mutex is not the limit.)
type RoundRobin struct {
	hosts   []*Host
	weights []int64 // the weights as of construction

	mu      sync.Mutex
	current []int64
}

// NewRoundRobin builds a smooth weighted round robin over hosts, reading
// their weights now. The slice is not copied: callers hand it over.
func NewRoundRobin(hosts []*Host) *RoundRobin {
	rr := &RoundRobin{
		hosts:   hosts,
		weights: make([]int64, len(hosts)),
		current: make([]int64, len(hosts)),
	}
	for i, h := range hosts {
		rr.weights[i] = int64(h.Weight())
	}
	return rr
}

// Pick returns the next host, or nil when none is available.
func (rr *RoundRobin) Pick(_ *Request) *Host {
	switch len(rr.hosts) {
	case 0:
		return nil
	case 1:
		// Nothing to balance; skip the lock.
		if h := rr.hosts[0]; h.Available() {
			return h
		}
		return nil
	}
	rr.mu.Lock()
	best := -1
	var total int64
	for i, h := range rr.hosts {
		if !h.Available() {
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
