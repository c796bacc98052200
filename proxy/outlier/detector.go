package outlier

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/sony/gobreaker/v2"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// Detector is one cluster's outlier detection. Report is the hot path and
// takes no lock; everything that ejects or returns a host, and the interval
// sweep, runs under the detector's mutex (Envoy runs it on the main thread).
type Detector struct {
	cfg         Config
	maxEjection time.Duration
	log         hclog.Logger

	// table is the host set, replaced whole by SetHosts.
	table atomic.Pointer[hostTable]

	mu     sync.Mutex // guards the fields below and hostState's "under mu" part
	closed bool
	active int // ejections_active
	stats  Stats
	// roll(n) is the enforcement dice, uniform in [0, n); jitter(n) the
	// ejection-time jitter in [0, n). Tests replace them.
	roll   func(n int) int
	jitter func(n int64) int64

	stop chan struct{}
	done chan struct{}
}

// hostTable is an immutable host set: Report looks a host up without a lock.
type hostTable struct {
	byHost map[*lb.Host]*hostState
	hosts  []*hostState // SetHosts order, so sweeps are deterministic
}

// Host phases, mirrored from the host's breaker so Report reads one atomic.
const (
	phaseClosed   uint32 = iota // counting; no breaker, or a closed one
	phaseOpen                   // ejected
	phaseHalfOpen               // back in service; its next result decides
)

// hostState is the detector's view of one host.
type hostState struct {
	host *lb.Host

	// Hot path, atomic.
	phase         atomic.Uint32
	consec5xx     atomic.Uint32
	consecGateway atomic.Uint32
	consecLocal   atomic.Uint32
	ext, local    accumulator // success-rate counts, external and local origin

	// Under Detector.mu.
	cb           *gobreaker.CircuitBreaker[struct{}] // this ejection's breaker; nil when never ejected
	reason       Reason                              // of the last ejection
	ejections    uint32                              // Envoy's num_ejections
	backoff      uint32                              // ejection-time multiplier
	ejectedAt    time.Time
	ejectedUntil time.Time
	unejectedAt  time.Time // zero until the first un-ejection
	timer        *time.Timer
	seq          uint64 // ejection number the timer belongs to
	successRate  float64
	localRate    float64
}

func newHostState(h *lb.Host) *hostState {
	hs := &hostState{host: h, successRate: -1, localRate: -1}
	hs.ext.init()
	hs.local.init()
	return hs
}

// accumulator counts requests and successes of the current interval into one
// bucket while the sweep reads the other, as Envoy's SuccessRateAccumulator.
type accumulator struct {
	cur     atomic.Pointer[bucket]
	buckets [2]bucket
	// The last complete interval, under Detector.mu.
	lastTotal, lastSuccess uint64
}

type bucket struct{ total, success atomic.Uint64 }

func (a *accumulator) init() { a.cur.Store(&a.buckets[0]) }

// rotate starts a new interval and keeps the one that ended. A Report that
// loaded the old bucket just before may land in it after the read; it is
// lost, as in Envoy.
func (a *accumulator) rotate() {
	old := a.cur.Load()
	next := &a.buckets[0]
	if old == next {
		next = &a.buckets[1]
	}
	next.total.Store(0)
	next.success.Store(0)
	a.cur.Store(next)
	// success first: a writer adds total before success, so this order
	// never sees more successes than requests.
	s := old.success.Load()
	a.lastTotal = old.total.Load()
	a.lastSuccess = min(s, a.lastTotal)
}

// HostInfo is one host as the admin /clusters page shows it.
type HostInfo struct {
	Ejected bool
	// HalfOpen: the host's ejection time is up and it is back in service;
	// its next result closes the breaker or ejects it again.
	HalfOpen bool
	// EjectionCount is how often the detector has ejected the host.
	EjectionCount uint32
	// EjectedUntil is when the current ejection ends; zero unless Ejected.
	EjectedUntil time.Time
	// LastReason is why the host was last ejected, ReasonNone if never.
	LastReason Reason
	// SuccessRate and LocalOriginSuccessRate are the percentages computed
	// at the last interval, -1 when not computed (too few requests), as in
	// Envoy's /clusters.
	SuccessRate            float64
	LocalOriginSuccessRate float64
}

// New starts a detector; Close stops it. cfg should have passed Validate;
// New forces what would break the detector into range (durations under 1ms
// become 1ms, percentages over 100 become 100). log may be nil; the caller
// scopes it (cluster name). The detector owns no host until SetHosts.
func New(cfg Config, log hclog.Logger) *Detector {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	cfg = cfg.sanitized()
	d := &Detector{
		cfg:         cfg,
		maxEjection: cfg.maxEjectionTime(),
		log:         log,
		roll:        rand.IntN,
		jitter:      rand.Int64N,
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
	}
	d.table.Store(&hostTable{})
	go d.run()
	return d
}

func (d *Detector) run() {
	defer close(d.done)
	t := time.NewTicker(d.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
			d.sweep()
		}
	}
}

// Close stops the interval sweep and the ejection timers, returns every
// host it has ejected to load balancing (outlier detection is off for them
// now) and forgets its hosts. Close a detector before handing its hosts to
// a new one. It is idempotent.
func (d *Detector) Close() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	for _, hs := range d.table.Load().hosts {
		if hs.phase.Load() == phaseOpen {
			d.uneject(hs, "detector closed") // stops its timer
		}
	}
	d.table.Store(&hostTable{})
	d.mu.Unlock()
	close(d.stop)
	<-d.done
}

// SetHosts replaces the host set. A host that stays (same pointer) keeps
// all its state; a removed host is forgotten: its ejection no longer counts
// in ejections_active and nothing is cleared on it (it belongs to nobody
// now). A new host that arrives with FailedOutlierCheck still set (left by
// a detector that was not closed) has it cleared: this detector owns it.
func (d *Detector) SetHosts(hosts []*lb.Host) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	old := d.table.Load()
	t := &hostTable{
		byHost: make(map[*lb.Host]*hostState, len(hosts)),
		hosts:  make([]*hostState, 0, len(hosts)),
	}
	for _, h := range hosts {
		if h == nil || t.byHost[h] != nil {
			continue
		}
		hs := old.byHost[h]
		if hs == nil {
			hs = newHostState(h)
			if h.Flags()&lb.FailedOutlierCheck != 0 {
				h.SetFlag(lb.FailedOutlierCheck, false)
				d.log.Debug("cleared a stale outlier ejection", "host", h.Address)
			}
		}
		t.byHost[h] = hs
		t.hosts = append(t.hosts, hs)
	}
	for _, hs := range old.hosts {
		if t.byHost[hs.host] == hs {
			continue
		}
		if hs.phase.Load() == phaseOpen {
			d.active--
		}
		if hs.timer != nil {
			hs.timer.Stop()
		}
	}
	d.table.Store(t)
}

// owns reports whether hs is in the current host set. Under mu.
func (d *Detector) owns(hs *hostState) bool {
	return !d.closed && d.table.Load().byHost[hs.host] == hs
}

// Report records how one request to h ended. It is called once per
// finished upstream request from any goroutine; it allocates nothing and
// takes no lock (only the host's atomics) unless a consecutive-failure
// counter reaches its threshold or h is half-open, when it takes the
// detector's mutex once.
// Hosts the detector does not own, ejected hosts (requests that were in
// flight when it was ejected) and the zero Outcome are ignored.
func (d *Detector) Report(h *lb.Host, o Outcome) {
	if o.Status == 0 && o.Local == LocalNone {
		return
	}
	hs := d.table.Load().byHost[h]
	if hs == nil {
		return
	}
	switch hs.phase.Load() {
	case phaseOpen:
		return
	case phaseHalfOpen:
		if d.probe(hs, o) {
			return
		}
	}
	d.count(hs, o)
}

// count feeds one outcome to the consecutive counters and the interval's
// success-rate buckets, Envoy's putResult / putHttpResponseCode.
func (d *Detector) count(hs *hostState, o Outcome) {
	status := o.Status
	if status == 0 {
		if d.cfg.SplitExternalLocalOriginErrors {
			hs.local.cur.Load().total.Add(1)
			if hs.consecLocal.Add(1) == d.cfg.ConsecutiveLocalOriginFailure {
				d.onConsecutive(hs, ReasonConsecutiveLocalOriginFailure)
			}
			return
		}
		status = o.Local.status()
	} else if d.cfg.SplitExternalLocalOriginErrors {
		b := hs.local.cur.Load()
		b.total.Add(1)
		b.success.Add(1)
		zero(&hs.consecLocal)
	}
	b := hs.ext.cur.Load()
	b.total.Add(1)
	if status < 500 || status > 599 {
		b.success.Add(1)
		zero(&hs.consec5xx)
		zero(&hs.consecGateway)
		return
	}
	if status >= 502 && status <= 504 {
		if hs.consecGateway.Add(1) == d.cfg.ConsecutiveGatewayFailure {
			d.onConsecutive(hs, ReasonConsecutiveGatewayFailure)
		}
	} else {
		zero(&hs.consecGateway)
	}
	if hs.consec5xx.Add(1) == d.cfg.Consecutive5xx {
		d.onConsecutive(hs, ReasonConsecutive5xx)
	}
}

// zero resets a counter without writing a shared cache line that is zero
// already (the common case: every success resets).
func zero(c *atomic.Uint32) {
	if c.Load() != 0 {
		c.Store(0)
	}
}

// failed is whether o is a failure for a half-open host: a 5xx, or no
// response at all (a local-origin failure counts as one split or not).
func failed(o Outcome) bool {
	if o.Status != 0 {
		return o.Status >= 500 && o.Status <= 599
	}
	return o.Local != LocalNone
}

// Stats returns the counters now.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.EjectionsActive = uint64(max(d.active, 0))
	return s
}

// Host returns what the detector knows of h; a host it does not own reads
// as never ejected with no success rate.
func (d *Detector) Host(h *lb.Host) HostInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	info := HostInfo{SuccessRate: -1, LocalOriginSuccessRate: -1}
	hs := d.table.Load().byHost[h]
	if hs == nil {
		return info
	}
	if hs.phase.Load() == phaseOpen {
		hs.cb.State() // un-ejects now if the timer is running late
	}
	switch hs.phase.Load() {
	case phaseOpen:
		info.Ejected = true
		info.EjectedUntil = hs.ejectedUntil
	case phaseHalfOpen:
		info.HalfOpen = true
	}
	info.EjectionCount = hs.ejections
	info.LastReason = hs.reason
	info.SuccessRate = hs.successRate
	info.LocalOriginSuccessRate = hs.localRate
	return info
}

// HealthCheckPassed is told by the active health checker that h passed a
// check. With SuccessfulActiveHealthCheckUnejectHost (the default) an
// ejected host that is not failing active health checks is returned to
// service at once and fully (closed, not half-open), as in Envoy.
func (d *Detector) HealthCheckPassed(h *lb.Host) {
	if !d.cfg.SuccessfulActiveHealthCheckUnejectHost {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	hs := d.table.Load().byHost[h]
	if hs == nil || d.closed || hs.phase.Load() != phaseOpen || h.Flags()&lb.FailedActiveHC != 0 {
		return
	}
	d.uneject(hs, "active health check passed")
	hs.cb = nil
	hs.phase.Store(phaseClosed)
}
