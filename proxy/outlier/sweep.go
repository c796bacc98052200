package outlier

import (
	"math"
	"time"
)

// sweep is the interval timer, Envoy's onIntervalTimer: close the interval's
// success-rate buckets, run success-rate and failure-percentage ejection
// over them, and decay the ejection multipliers.
//
// The multiplier decays as in Envoy: at each sweep, a host that is not
// ejected and was un-ejected at least one Interval ago loses one step of
// its multiplier (down to 0). So a host that stays in service for k
// intervals after an ejection is ejected next for about k steps less; one
// that never comes back healthy keeps climbing to MaxEjectionTime. A
// half-open host counts as not ejected, as it does in Envoy (which has no
// half-open state: the host is simply back).
func (d *Detector) sweep() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	now := time.Now()
	t := d.table.Load()
	for _, hs := range t.hosts {
		if hs.phase.Load() == phaseOpen {
			hs.cb.State() // backstop for the ejection timer
		}
		hs.ext.rotate()
		hs.local.rotate()
		hs.successRate, hs.localRate = -1, -1
	}
	d.rates(t, now, false)
	d.rates(t, now, true)
	for _, hs := range t.hosts {
		if hs.phase.Load() != phaseOpen && !hs.unejectedAt.IsZero() &&
			now.Sub(hs.unejectedAt) >= d.cfg.Interval && hs.backoff > 0 {
			hs.backoff--
		}
	}
}

type rated struct {
	hs   *hostState
	rate float64
}

// rates is Envoy's processSuccessRateEjections for one origin (external, or
// local with local true) over the interval that just ended.
func (d *Detector) rates(t *hostTable, now time.Time, local bool) {
	c := &d.cfg
	n := uint32(len(t.hosts))
	if n < c.SuccessRateMinimumHosts && n < c.FailurePercentageMinimumHosts {
		return
	}
	srReason, fpReason := ReasonSuccessRate, ReasonFailurePercentage
	if local {
		srReason, fpReason = ReasonLocalOriginSuccessRate, ReasonLocalOriginFailurePercentage
	}
	var sr, fp []rated
	var sum float64
	for _, hs := range t.hosts {
		if hs.phase.Load() == phaseOpen {
			continue
		}
		acc := &hs.ext
		if local {
			acc = &hs.local
		}
		total := acc.lastTotal
		if total == 0 {
			continue
		}
		rate := float64(acc.lastSuccess) * 100 / float64(total)
		if total >= uint64(min(c.SuccessRateRequestVolume, c.FailurePercentageRequestVolume)) {
			if local {
				hs.localRate = rate
			} else {
				hs.successRate = rate
			}
		}
		if total >= uint64(c.SuccessRateRequestVolume) {
			sr = append(sr, rated{hs, rate})
			sum += rate
		}
		if total >= uint64(c.FailurePercentageRequestVolume) {
			fp = append(fp, rated{hs, rate})
		}
	}

	if len(sr) > 0 && uint32(len(sr)) >= c.SuccessRateMinimumHosts {
		mean, threshold := srThreshold(sr, sum, float64(c.SuccessRateStdevFactor)/1000)
		for _, h := range sr {
			if h.rate < threshold {
				(*d.stats.detected(srReason))++
				d.eject(h.hs, srReason, now, true,
					"success_rate", h.rate, "average", mean, "threshold", threshold)
			}
		}
	}
	if len(fp) > 0 && uint32(len(fp)) >= c.FailurePercentageMinimumHosts {
		limit := float64(c.FailurePercentageThreshold)
		for _, h := range fp {
			if 100-h.rate >= limit {
				(*d.stats.detected(fpReason))++
				// Envoy would eject a host twice when both detectors
				// find it in one sweep; once is enough.
				if h.hs.phase.Load() != phaseOpen {
					d.eject(h.hs, fpReason, now, true, "success_rate", h.rate)
				}
			}
		}
	}
}

// srThreshold is Envoy's successRateEjectionThreshold: mean − factor ×
// population standard deviation. For {50, 100, 100, 100, 100} and 1.9 it is
// 90 − 1.9 × 20 = 52.
func srThreshold(hosts []rated, sum, factor float64) (mean, threshold float64) {
	mean = sum / float64(len(hosts))
	var variance float64
	for _, h := range hosts {
		variance += (h.rate - mean) * (h.rate - mean)
	}
	variance /= float64(len(hosts))
	return mean, mean - factor*math.Sqrt(variance)
}
