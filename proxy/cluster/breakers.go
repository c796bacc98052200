package cluster

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Thresholds are one priority's circuit_breakers.thresholds. Zero fields
// take Envoy's defaults (1024 connections, pending and active requests, 3
// retries).
type Thresholds struct {
	MaxConnections     uint32
	MaxPendingRequests uint32
	MaxRequests        uint32
	MaxRetries         uint32
	// MaxRetriesSet says MaxRetries came from the config: with the
	// default retry budget on, an unset max_retries does not also cap
	// retries at 3.
	MaxRetriesSet bool
	// Budget is retry_budget. Unlike Envoy it is on when the config names
	// none (DefaultBudget): a total outage must not multiply the load.
	Budget RetryBudget
}

// RetryBudget allows at most Percent % of the cluster's active requests to
// be retries, and always at least MinConcurrency retries at once.
type RetryBudget struct {
	Percent        float64
	MinConcurrency uint32
}

// Envoy's threshold defaults, and our default retry budget.
const (
	DefaultMaxConnections     = 1024
	DefaultMaxPendingRequests = 1024
	DefaultMaxRequests        = 1024
	DefaultMaxRetries         = 3
)

// DefaultBudget is the retry budget in force when a cluster configures
// none: 20 % of active requests, at least 3 concurrent retries.
var DefaultBudget = RetryBudget{Percent: 20, MinConcurrency: 3}

// ErrOverflow is returned by RoundTrip when a circuit breaker threshold is
// full; the request was not sent.
var ErrOverflow = errors.New("upstream overflow: circuit breaker threshold reached")

func (t *Thresholds) maxRequests() int64 {
	if t.MaxRequests == 0 {
		return DefaultMaxRequests
	}
	return int64(t.MaxRequests)
}

func (t *Thresholds) maxConnections() uint32 {
	if t.MaxConnections == 0 {
		return DefaultMaxConnections
	}
	return t.MaxConnections
}

func (t *Thresholds) maxPending() uint32 {
	if t.MaxPendingRequests == 0 {
		return DefaultMaxPendingRequests
	}
	return t.MaxPendingRequests
}

func (t *Thresholds) budget() RetryBudget {
	if t.Budget == (RetryBudget{}) {
		return DefaultBudget
	}
	return t.Budget
}

// AdmitRetry admits one retry when the retry budget and, if configured,
// max_retries allow it; otherwise it counts an overflow. The budget is two
// rules: Envoy's (retries in flight at most Percent % of the requests in
// flight, and at least MinConcurrency), and a ratio over the last
// budgetWindow in the manner of linkerd's retry budget (retries at most
// Percent % of the first attempts, plus MinConcurrency), so that a total
// outage adds at most that share to the load however quickly attempts fail.
func (c *Cluster) AdmitRetry() bool {
	t := &c.cfg.Load().Thresholds
	b := t.budget()
	active := c.stats.RqRetryActive.Add(1)
	limit := b.allowed(c.stats.RqActive.Load())
	if t.MaxRetriesSet && int64(t.MaxRetries) < limit {
		limit = int64(t.MaxRetries)
	}
	if active > limit || !c.retryWindow.admit(b, &c.stats.RqTotal, &c.stats.RqRetry, time.Now()) {
		c.stats.RqRetryActive.Add(-1)
		c.stats.RqRetryOverflow.Add(1)
		return false
	}
	return true
}

// budgetWindow is how far back the ratio rule of the retry budget looks.
const budgetWindow = 10 * time.Second

// retryWindow remembers the request and retry counters once a second (the
// manager's ticker) for the last budgetWindow, so the ratio rule credits
// the traffic that came before a burst of failures without requests
// paying anything for it.
type retryWindow struct {
	mu    sync.Mutex
	snaps []counterSnap
}

type counterSnap struct {
	at             time.Time
	total, retries uint64
}

// record adds a snapshot and forgets those older than the window (keeping
// the newest of them as the window's base).
func (w *retryWindow) record(total, retries uint64, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.snaps = append(w.snaps, counterSnap{at: now, total: total, retries: retries})
	drop := 0
	for drop+1 < len(w.snaps) && now.Sub(w.snaps[drop+1].at) >= budgetWindow {
		drop++
	}
	w.snaps = w.snaps[drop:]
}

// allow reports whether one more retry keeps retries within b.Percent % of
// the first attempts (total − retries) since the window's base, plus
// b.MinConcurrency. A cluster's first snapshot is its creation (zero
// counters).
func (w *retryWindow) allow(b RetryBudget, total, retries uint64, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.allowLocked(b, total, retries, now)
}

// admit is allow on the counters, counting the retry in retries when it
// allows it, as one step: retries admitted at the same moment cannot all
// take the budget's last place (every retry is counted here, under w.mu).
func (w *retryWindow) admit(b RetryBudget, total, retries *atomic.Uint64, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.allowLocked(b, total.Load(), retries.Load(), now) {
		return false
	}
	retries.Add(1)
	return true
}

func (w *retryWindow) allowLocked(b RetryBudget, total, retries uint64, now time.Time) bool {
	var base counterSnap
	for i := len(w.snaps) - 1; i >= 0; i-- {
		base = w.snaps[i]
		if now.Sub(w.snaps[i].at) >= budgetWindow {
			break
		}
	}
	withdrawn := retries - base.retries
	first := uint64(0)
	if d := total - base.total; d > withdrawn {
		first = d - withdrawn
	}
	return float64(withdrawn+1) <= b.Percent/100*float64(first)+float64(b.MinConcurrency)
}

// tickBudgets snapshots every cluster's counters for the retry budget.
func (m *Manager) tickBudgets(now time.Time) {
	for _, c := range *m.clusters.Load() {
		c.retryWindow.record(c.stats.RqTotal.Load(), c.stats.RqRetry.Load(), now)
	}
}

// budgetTicker runs tickBudgets every second until stop is closed.
func (m *Manager) budgetTicker(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			m.tickBudgets(now)
		}
	}
}

// allowed is how many retries may be active with active requests in flight.
func (b RetryBudget) allowed(active int64) int64 {
	n := int64(b.Percent * float64(max(active, 0)) / 100)
	return max(n, int64(b.MinConcurrency))
}

// ReleaseRetry ends a retry AdmitRetry admitted.
func (c *Cluster) ReleaseRetry(success bool) {
	c.stats.RqRetryActive.Add(-1)
	if success {
		c.stats.RqRetrySuccess.Add(1)
	}
}
