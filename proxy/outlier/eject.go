package outlier

import (
	"errors"
	"math"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// How ejections map onto gobreaker. Each ejection is one breaker's life,
// because a breaker's open-state Timeout is fixed and every ejection of a
// host lasts longer than the one before:
//
//   - eject: a new breaker with Timeout = this ejection's time is tripped at
//     once (closed → open); its state-change callback sets the host's
//     FailedOutlierCheck flag.
//   - expiry: gobreaker moves open → half-open lazily, when asked. A timer
//     per ejection asks at the ejection's end (and every interval sweep asks
//     too, as a backstop); the callback un-ejects the host.
//   - half-open: the host takes traffic again. Its next success closes the
//     breaker; its next failure (a 5xx or a local-origin failure) is a new
//     ejection, for the same reason, with a new breaker and the next, longer
//     time.
//
// The detector only calls a breaker with its mutex held, so the callbacks
// run under it too and never race with each other.

// errFailed is the outcome fed to a breaker to trip it.
var errFailed = errors.New("outlier: host failed")

func tripRequest() (struct{}, error) { return struct{}{}, errFailed }
func passRequest() (struct{}, error) { return struct{}{}, nil }

// newBreaker returns a closed breaker for one ejection of hs lasting dur
// (at least 1ms, see Validate). gobreaker leaves the open state only once
// its expiry is strictly in the past, and the timer fires at exactly the
// ejection's end, so the breaker's Timeout is one nanosecond shorter.
func (d *Detector) newBreaker(hs *hostState, dur time.Duration) *gobreaker.CircuitBreaker[struct{}] {
	return gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        hs.host.Address,
		MaxRequests: 1,
		Timeout:     max(dur-time.Nanosecond, time.Nanosecond),
		// The detector decides when to trip; the breaker only keeps state.
		ReadyToTrip:   func(gobreaker.Counts) bool { return true },
		OnStateChange: func(_ string, _, to gobreaker.State) { d.moved(hs, to) },
	})
}

// moved is the breakers' state-change callback, under mu.
func (d *Detector) moved(hs *hostState, to gobreaker.State) {
	switch to {
	case gobreaker.StateOpen:
		hs.host.SetFlag(lb.FailedOutlierCheck, true)
		hs.phase.Store(phaseOpen)
	case gobreaker.StateHalfOpen:
		d.uneject(hs, "ejection time elapsed")
		hs.phase.Store(phaseHalfOpen)
	case gobreaker.StateClosed:
		hs.phase.Store(phaseClosed)
		d.log.Debug("host passed its probe after ejection", "host", hs.host.Address)
	}
}

// onConsecutive handles a consecutive-failure counter that just reached its
// threshold, Envoy's onConsecutiveErrorWorker.
func (d *Detector) onConsecutive(hs *hostState, r Reason) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// The threshold check stops a disabled (0) detector from firing when
	// its counter wraps around.
	if !d.owns(hs) || hs.phase.Load() != phaseClosed || d.threshold(r) == 0 {
		return
	}
	(*d.stats.detected(r))++
	d.eject(hs, r, time.Now(), true)
	// Reset the counter whatever happened, so that a run of failures is
	// detected again even without a success in between.
	switch r {
	case ReasonConsecutive5xx:
		hs.consec5xx.Store(0)
	case ReasonConsecutiveGatewayFailure:
		hs.consecGateway.Store(0)
	case ReasonConsecutiveLocalOriginFailure:
		hs.consecLocal.Store(0)
	}
}

// probe handles the first result of a half-open host. It reports whether
// the outcome is used up (the host was ejected again, or already is);
// otherwise the caller counts it as usual.
func (d *Detector) probe(hs *hostState, o Outcome) bool {
	fail := failed(o)
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.owns(hs) {
		return true
	}
	switch hs.phase.Load() {
	case phaseOpen:
		return true
	case phaseClosed: // another result decided first
		return false
	}
	if !fail {
		hs.cb.Execute(passRequest) // half-open → closed
		return false
	}
	(*d.stats.detected(hs.reason))++
	if d.eject(hs, hs.reason, time.Now(), false) {
		return true
	}
	// max_ejection_percent refused the new ejection: the host stays in
	// service like any host whose ejection overflowed, and is counted.
	hs.cb = nil
	hs.phase.Store(phaseClosed)
	return false
}

// eject is Envoy's ejectHost: max_ejection_percent, then the enforcement
// dice (when roll; a failed probe re-ejects without it, the ejection was
// enforced already), then the ejection. Under mu. It reports whether the
// host is ejected.
func (d *Detector) eject(hs *hostState, r Reason, now time.Time, roll bool, detail ...any) bool {
	n := uint64(len(d.table.Load().hosts))
	within := uint64(d.active+1)*100 <= uint64(d.cfg.MaxEjectionPercent)*n
	if !within && !(d.cfg.AlwaysEjectOneHost && d.active == 0) {
		d.stats.EjectionsOverflow++
		d.log.Debug("outlier not ejected: max_ejection_percent reached", append([]any{
			"host", hs.host.Address, "reason", r, "ejections_active", d.active, "hosts", n}, detail...)...)
		return false
	}
	if r == ReasonConsecutive5xx || r == ReasonSuccessRate {
		d.stats.EjectionsTotal++ // Envoy's deprecated counter counts just these two
	}
	if roll && !d.enforce(d.enforcing(r)) {
		d.log.Debug("outlier detected, not enforced", append([]any{
			"host", hs.host.Address, "reason", r}, detail...)...)
		return false
	}
	d.active++
	d.stats.EjectionsEnforcedTotal++
	(*d.stats.enforced(r))++
	hs.ejections++
	hs.backoff = grow(hs.backoff, d.cfg.BaseEjectionTime, d.maxEjection)
	dur := ejectionTime(hs.backoff, d.cfg.BaseEjectionTime, d.maxEjection)
	if j := d.cfg.MaxEjectionTimeJitter; j > 0 {
		dur = addSat(dur, time.Duration(d.jitter(int64(j))))
	}
	hs.reason = r
	hs.ejectedAt = now
	hs.ejectedUntil = now.Add(dur)
	hs.cb = d.newBreaker(hs, dur)
	hs.cb.Execute(tripRequest) // closed → open: moved sets the flag
	// A host has no timer when it is ejected: uneject drops it. A stale
	// callback (Stop lost the race) sees another seq and does nothing.
	hs.seq++
	seq := hs.seq
	hs.timer = time.AfterFunc(dur, func() { d.expire(hs, seq) })
	d.log.Info("host ejected", append([]any{
		"host", hs.host.Address, "reason", r, "ejection_time", dur, "ejections", hs.ejections}, detail...)...)
	return true
}

// expire is an ejection's timer: ask the breaker, which un-ejects the host
// through moved if its time is up.
func (d *Detector) expire(hs *hostState, seq uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.owns(hs) || hs.seq != seq || hs.phase.Load() != phaseOpen {
		return
	}
	hs.cb.State()
}

// uneject returns an ejected host to service, Envoy's unejectHost. Under mu.
func (d *Detector) uneject(hs *hostState, why string) {
	now := time.Now()
	d.active--
	hs.host.SetFlag(lb.FailedOutlierCheck, false)
	// A counter left near its threshold would re-eject on very few errors.
	hs.consec5xx.Store(0)
	hs.consecGateway.Store(0)
	hs.consecLocal.Store(0)
	hs.unejectedAt = now
	if hs.timer != nil {
		hs.timer.Stop()
		hs.timer = nil
	}
	d.log.Info("host un-ejected", "host", hs.host.Address, "reason", hs.reason,
		"ejected_for", now.Sub(hs.ejectedAt), "why", why)
}

// enforce rolls the dice for an enforcing percentage.
func (d *Detector) enforce(pct uint32) bool {
	return pct >= 100 || (pct > 0 && d.roll(100) < int(pct))
}

func (d *Detector) enforcing(r Reason) uint32 {
	c := &d.cfg
	switch r {
	case ReasonConsecutive5xx:
		return c.EnforcingConsecutive5xx
	case ReasonConsecutiveGatewayFailure:
		return c.EnforcingConsecutiveGatewayFailure
	case ReasonConsecutiveLocalOriginFailure:
		return c.EnforcingConsecutiveLocalOriginFailure
	case ReasonSuccessRate:
		return c.EnforcingSuccessRate
	case ReasonLocalOriginSuccessRate:
		return c.EnforcingLocalOriginSuccessRate
	case ReasonFailurePercentage:
		return c.EnforcingFailurePercentage
	case ReasonLocalOriginFailurePercentage:
		return c.EnforcingFailurePercentageLocalOrigin
	}
	return 0
}

func (d *Detector) threshold(r Reason) uint32 {
	switch r {
	case ReasonConsecutive5xx:
		return d.cfg.Consecutive5xx
	case ReasonConsecutiveGatewayFailure:
		return d.cfg.ConsecutiveGatewayFailure
	case ReasonConsecutiveLocalOriginFailure:
		return d.cfg.ConsecutiveLocalOriginFailure
	}
	return 0
}

// grow is Envoy's rule for the ejection multiplier at an ejection: it grows
// by one while multiplier × base < max + base, i.e. until the ejection time
// has reached the cap (and one step past it, so that one decay step still
// leaves the next ejection at the cap). Written as (m−1) × base < max
// against ⌈max/base⌉ so that it cannot overflow.
func grow(m uint32, base, maxT time.Duration) uint32 {
	if m == 0 {
		return 1
	}
	limit := maxT / base
	if maxT%base != 0 {
		limit++
	}
	if time.Duration(m-1) < limit {
		return m + 1
	}
	return m
}

// ejectionTime is min(base × m, max) without overflow.
func ejectionTime(m uint32, base, maxT time.Duration) time.Duration {
	if time.Duration(m) > maxT/base {
		return maxT
	}
	return min(time.Duration(m)*base, maxT)
}

func addSat(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
