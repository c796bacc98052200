package consul

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// probeTTL is how long one leader probe answers for every failed query.
const probeTTL = time.Second

// watch is one query followed by one goroutine. Its fields are guarded by
// Watcher.mu.
type watch struct {
	// name identifies the query in logs ("health/connect/web").
	name string
	// backbone marks the catalog service list: any error of it means Consul
	// cannot be followed, so it counts as an outage.
	backbone bool
	// once marks a non-blocking query that is done after its first answer.
	once bool
	// fetched is set by the first answer (or the first refusal).
	fetched bool
	cancel  context.CancelFunc
}

// fetchFunc runs one query of a watch.
type fetchFunc[T any] func(*api.QueryOptions) (T, *api.QueryMeta, error)

// startWatch starts a goroutine following fetch and calling apply, under
// w.mu, with each new answer; apply reports whether the state changed.
// Callers hold w.mu.
func startWatch[T any](w *Watcher, wt *watch, fetch fetchFunc[T], apply func(T) bool) *watch {
	ctx, cancel := context.WithCancel(w.ctx)
	wt.cancel = cancel
	w.st.watches[wt] = struct{}{}
	if n := len(w.st.watches); n > w.connWarn && !w.connWarned {
		// Each watch holds one HTTP connection for its blocking query.
		w.log.Warn("many concurrent blocking queries: Consul refuses connections beyond its limits.http_max_conns_per_client (default 200) per client address",
			"queries", n)
		w.connWarned = true
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		runWatch(w, ctx, wt, fetch, apply)
	}()
	return wt
}

// stopWatch cancels wt; it applies nothing after this. Callers hold w.mu.
func (w *Watcher) stopWatch(wt *watch) {
	if wt == nil {
		return
	}
	wt.cancel()
	delete(w.st.watches, wt)
}

// runWatch is the blocking-query loop of one watch, following Consul's
// guidance: block on the last index, reset it when it goes backwards,
// never block on 0, back off (with jitter) after errors.
func runWatch[T any](w *Watcher, ctx context.Context, wt *watch, fetch fetchFunc[T], apply func(T) bool) {
	var (
		index    uint64
		failures int    // consecutive failed queries
		refusal  string // the query error last logged, so each is logged once
	)
	for {
		started := time.Now()
		// Consul answers a blocking query after at most WaitTime plus
		// WaitTime/16 of jitter; beyond that plus RequestTimeout it hangs.
		rctx, cancel := context.WithTimeout(ctx, w.o.WaitTime+w.o.WaitTime/16+w.o.RequestTimeout)
		v, meta, err := fetch((&api.QueryOptions{WaitIndex: index, WaitTime: w.o.WaitTime}).WithContext(rctx))
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			failures++
			w.failed.Add(1)
			// The next answer must come at once: a restarted Consul has
			// lower indexes, and blocking on the old one would wait out
			// WaitTime before seeing the new state.
			index = 0
			if w.conn.outage(ctx, wt, err) {
				w.conn.failed(started, err)
			} else {
				// Consul answered but refused this query (e.g. a subset
				// filter it cannot evaluate): keep its last answer, log the
				// error once, and do not hold up publishing for it.
				w.conn.succeeded(started)
				if msg := err.Error(); msg != refusal {
					w.log.Warn("consul refused a query; keeping its last answer and retrying", "query", wt.name, "error", err)
					refusal = msg
				}
				w.mu.Lock()
				first := ctx.Err() == nil && !wt.fetched
				if first {
					wt.fetched = true
				}
				w.mu.Unlock()
				if first {
					w.notify()
				}
			}
			if !sleepCtx(ctx, w.backoff(failures)) {
				return
			}
			continue
		}
		if refusal != "" {
			w.log.Info("consul answers a refused query again", "query", wt.name)
		}
		failures, refusal = 0, ""
		w.conn.succeeded(started)

		w.log.Trace("query answered", "query", wt.name, "index", meta.LastIndex, "took", time.Since(started))
		// Applied even when the index did not move: Consul's index for a
		// result can stay put while its content changes (a removed proxy
		// name drops out of the max the connect index is computed from), and
		// a query that times out returns the current content anyway. apply
		// compares content, so an unchanged answer costs a comparison.
		w.mu.Lock()
		if ctx.Err() != nil { // stopped while fetching: the answer is stale
			w.mu.Unlock()
			return
		}
		changed := apply(v)
		if !wt.fetched {
			wt.fetched, changed = true, true
		}
		w.st.maxIndex = max(w.st.maxIndex, meta.LastIndex)
		w.mu.Unlock()
		if changed {
			w.notify()
		}
		if wt.once {
			return
		}
		index = nextIndex(index, meta.LastIndex)
	}
}

// nextIndex is the index for the next blocking query after one that used
// prev and returned got: reset to 0 (a non-blocking query) when it went
// backwards, and never 0 otherwise, which would not block at all.
func nextIndex(prev, got uint64) uint64 {
	switch {
	case got < prev:
		return 0
	case got == 0:
		return 1
	}
	return got
}

// backoff is the delay before retry number failures (1, 2, ...): doubling
// from BackoffMin up to BackoffMax, with the upper half jittered so that
// watches do not retry in lockstep.
func (w *Watcher) backoff(failures int) time.Duration {
	d := w.o.BackoffMin
	for i := 1; i < failures && d < w.o.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, w.o.BackoffMax)
	return d/2 + rand.N(d/2+1)
}

// sleepCtx waits d or until ctx ends; it reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// connState tracks whether Consul can be followed, logs each outage once,
// and calls Options.OnUp on every change.
type connState struct {
	w  *Watcher
	up atomic.Bool

	mu     sync.Mutex // serialises transitions, their logs and OnUp
	logged bool       // the current outage has been logged
	downAt time.Time  // when the current (or last) outage was noticed
	upAt   time.Time  // when Consul last became reachable

	probeMu sync.Mutex
	probeAt time.Time
	probeOK bool
}

func (c *connState) init(w *Watcher) { c.w = w }

// succeeded records an answer from Consul to a request sent at started.
// An answer to a request sent before the outage was noticed proves nothing.
func (c *connState) succeeded(started time.Time) {
	if c.up.Load() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.up.Load() || started.Before(c.downAt) {
		return
	}
	c.up.Store(true)
	c.upAt = time.Now()
	if c.logged {
		c.w.log.Info("consul answers again; following it", "outage", c.upAt.Sub(c.downAt).Round(time.Millisecond))
		c.logged = false
	} else {
		c.w.log.Info("consul reachable")
	}
	if c.w.o.OnUp != nil {
		c.w.o.OnUp(true)
	}
}

// failed records that Consul could not be followed by a request sent at
// started. The first failure of an outage is logged; retries are not. A
// failure of a request sent before Consul came back is stale.
func (c *connState) failed(started time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.logged || started.Before(c.upAt) {
		return
	}
	wasUp := c.up.Swap(false)
	c.downAt, c.logged = time.Now(), true
	c.w.log.Error("consul unavailable; keeping the last mesh and retrying", "error", err)
	if wasUp && c.w.o.OnUp != nil {
		c.w.o.OnUp(false)
	}
}

// outage tells a failure of Consul from a refusal of one query. No answer
// at all (refused connection, timeout, broken body) and any error of the
// catalog service list are outages; 429 and 5xx answers are outages only
// when Consul has no leader (it answers 500 to a filter it cannot
// evaluate); other 4xx answers are refusals of the query.
func (c *connState) outage(ctx context.Context, wt *watch, err error) bool {
	var se api.StatusError
	switch {
	case !errors.As(err, &se), wt.backbone:
		return true
	case se.Code == 429 || se.Code >= 500:
		return !c.leaderKnown(ctx)
	}
	return false
}

// leaderKnown asks Consul for its leader; one probe answers for probeTTL so
// a burst of failing watches asks once.
func (c *connState) leaderKnown(ctx context.Context) bool {
	c.probeMu.Lock()
	defer c.probeMu.Unlock()
	if !c.probeAt.IsZero() && time.Since(c.probeAt) < probeTTL {
		return c.probeOK
	}
	ctx, cancel := context.WithTimeout(ctx, c.w.o.RequestTimeout)
	defer cancel()
	leader, err := c.w.client.Status().LeaderWithQueryOptions((&api.QueryOptions{}).WithContext(ctx))
	c.probeOK, c.probeAt = err == nil && leader != "", time.Now()
	return c.probeOK
}
