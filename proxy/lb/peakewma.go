package lb

import (
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// clockBase anchors the latency clock: nanoseconds since it, monotonic in
// production and fake inside a testing/synctest bubble (only differences
// of two readings are ever used).
var clockBase = time.Now()

func nanotime() int64 { return int64(time.Since(clockBase)) }

// latency is a host's peak-EWMA round-trip estimate (linkerd2-proxy's,
// from tower's PeakEwma). A sample above the estimate replaces it at once;
// one below moves it by 1-e^(-elapsed/decay), elapsed being the time since
// the previous sample. Writers serialize on a tiny mutex; readers load two
// atomics and never block.
type latency struct {
	mu    sync.Mutex
	est   atomic.Uint64 // float64 bits, nanoseconds; 0: no sample yet
	at    atomic.Int64  // nanotime of the last sample
	decay atomic.Int64  // time constant in ns; 0 means DefaultDecay
}

// ObserveLatency feeds one response's latency (the time to its headers)
// into h's peak-EWMA estimate, which PEAK_EWMA balancers read. Safe for
// concurrent use; cheap enough to call on every response.
func (h *Host) ObserveLatency(d time.Duration) {
	h.latency.observe(nanotime(), d)
}

// LatencyEstimate is h's peak-EWMA estimate as of its last sample, 0 if it
// has none (for /clusters).
func (h *Host) LatencyEstimate() time.Duration {
	return time.Duration(math.Float64frombits(h.latency.est.Load()))
}

func (l *latency) observe(now int64, d time.Duration) {
	rtt := float64(max(d, 1)) // 0 would read as "no sample"
	l.mu.Lock()
	defer l.mu.Unlock()
	est := math.Float64frombits(l.est.Load())
	if est != 0 && rtt < est {
		elapsed := float64(max(now-l.at.Load(), 0))
		w := math.Exp(-elapsed / l.tau())
		rtt = est*w + rtt*(1-w)
	}
	l.est.Store(math.Float64bits(rtt))
	l.at.Store(now)
}

func (l *latency) tau() float64 {
	if d := l.decay.Load(); d > 0 {
		return float64(d)
	}
	return float64(DefaultDecay)
}

// read is the estimate in ns a balancer uses at now: def for a host never
// sampled, and for one idle since its last sample an estimate above def
// decays toward def with the same time constant, so a host that was once
// slow gets probed again instead of starving forever.
func (l *latency) read(now int64, def float64) float64 {
	est := math.Float64frombits(l.est.Load())
	if est == 0 {
		return def
	}
	if est <= def {
		return est
	}
	elapsed := float64(max(now-l.at.Load(), 0))
	return def + (est-def)*math.Exp(-elapsed/l.tau())
}

// peakEWMA is our PEAK_EWMA policy (linkerd2-proxy's balancer): sample
// ChoiceCount distinct hosts (the first two distinct, any further with
// replacement) and take the cheapest, cost being the host's peak-EWMA
// latency × (active requests + 1) / weight. Lock-free.
type peakEWMA struct {
	hosts      []*Host
	choices    int
	defaultRTT float64 // ns
}

func newPeakEWMA(hosts []*Host, choices int, defaultRTT, decay time.Duration) *peakEWMA {
	for _, h := range hosts {
		h.latency.decay.Store(int64(decay))
	}
	return &peakEWMA{hosts: hosts, choices: choices, defaultRTT: float64(defaultRTT)}
}

func (p *peakEWMA) choose(uint64, int) *Host {
	n := len(p.hosts)
	switch n {
	case 0:
		return nil
	case 1:
		return p.hosts[0]
	}
	now := nanotime()
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	best, bestCost := p.hosts[i], p.cost(p.hosts[i], now)
	if c := p.cost(p.hosts[j], now); c < bestCost {
		best, bestCost = p.hosts[j], c
	}
	for range p.choices - 2 {
		h := p.hosts[rand.IntN(n)]
		if c := p.cost(h, now); c < bestCost {
			best, bestCost = h, c
		}
	}
	return best
}

func (p *peakEWMA) cost(h *Host, now int64) float64 {
	return h.latency.read(now, p.defaultRTT) * float64(active(h)+1) / float64(h.Weight())
}
