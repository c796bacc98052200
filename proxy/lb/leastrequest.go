package lb

import (
	"math"
	"math/rand/v2"
	"sync"
)

// leastRequest is Envoy's LEAST_REQUEST.
//
// With equal weights it is the power of ChoiceCount choices: sample that
// many hosts at random (with replacement, as Envoy does) and take the one
// with the fewest active requests, the first sampled on a tie. Lock-free.
//
// With unequal weights it is Envoy's weighted form: an earliest-deadline-
// first schedule where a host is re-queued, each time it is picked, with
// weight / (active+1)^ActiveRequestBias, its active requests counted at that
// moment. This is Envoy's algorithm exactly, and costs O(log n) under a
// mutex. (A lock-free weighted random draw over the same effective weights
// would be O(n) per pick: 100 hosts would cost a microsecond.)
type leastRequest struct {
	hosts   []*Host
	choices int
	bias    float64
	edf     *edf // nil when all weights are equal
}

func newLeastRequest(hosts []*Host, choices int, bias float64) *leastRequest {
	p := &leastRequest{hosts: hosts, choices: choices, bias: bias}
	if !equalWeights(hosts) {
		p.edf = newEDF(len(hosts), func(i int) float64 { return p.weight(hosts[i]) })
	}
	return p
}

func (p *leastRequest) choose(uint64, int) *Host {
	n := len(p.hosts)
	switch {
	case n == 0:
		return nil
	case n == 1:
		return p.hosts[0]
	case p.edf != nil:
		return p.hosts[p.edf.pick()]
	}
	best := p.hosts[rand.IntN(n)]
	bestActive := active(best)
	for range p.choices - 1 {
		h := p.hosts[rand.IntN(n)]
		if a := active(h); a < bestActive {
			best, bestActive = h, a
		}
	}
	return best
}

// weight is Envoy's effective weight: weight / (active+1)^bias, with
// bias 1 and 0 spared the pow.
func (p *leastRequest) weight(h *Host) float64 {
	w := float64(h.Weight())
	switch p.bias {
	case 0:
		return w
	case 1:
		return w / float64(active(h)+1)
	}
	return w / math.Pow(float64(active(h)+1), p.bias)
}

// active is h's active request count, never negative.
func active(h *Host) int64 { return max(h.Stats.RqActive.Load(), 0) }

// edf is Envoy's earliest-deadline-first scheduler over n entries: each
// pick takes the entry with the earliest deadline, advances the clock to it
// and re-queues the entry at clock + 1/weight. Ties go to the entry queued
// first. The heap is a fixed slice: picks allocate nothing.
type edf struct {
	weight func(index int) float64

	mu   sync.Mutex
	now  float64
	seq  uint64
	heap []edfEntry
}

type edfEntry struct {
	deadline float64
	seq      uint64
	index    int
}

func newEDF(n int, weight func(int) float64) *edf {
	e := &edf{weight: weight, heap: make([]edfEntry, 0, n)}
	for i := range n {
		e.heap = append(e.heap, edfEntry{deadline: 1 / weight(i), seq: e.seq, index: i})
		e.seq++
		e.up(len(e.heap) - 1)
	}
	return e
}

// pick returns the index due next and re-queues it with its weight now.
func (e *edf) pick() int {
	e.mu.Lock()
	top := e.heap[0]
	e.now = top.deadline
	e.heap[0] = edfEntry{deadline: e.now + 1/e.weight(top.index), seq: e.seq, index: top.index}
	e.seq++
	e.down(0)
	e.mu.Unlock()
	return top.index
}

func (e *edf) less(i, j int) bool {
	a, b := &e.heap[i], &e.heap[j]
	if a.deadline != b.deadline {
		return a.deadline < b.deadline
	}
	return a.seq < b.seq
}

func (e *edf) up(i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !e.less(i, parent) {
			return
		}
		e.heap[i], e.heap[parent] = e.heap[parent], e.heap[i]
		i = parent
	}
}

func (e *edf) down(i int) {
	n := len(e.heap)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && e.less(r, l) {
			m = r
		}
		if !e.less(m, i) {
			return
		}
		e.heap[i], e.heap[m] = e.heap[m], e.heap[i]
		i = m
	}
}
