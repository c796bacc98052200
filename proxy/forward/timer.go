package forward

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// streamTimer enforces a route timeout (an absolute deadline) and a stream
// idle timeout (no byte either way for that long) with one runtime timer,
// so the hot path pays an atomic store per chunk rather than a timer reset.
type streamTimer struct {
	cancel   context.CancelCauseFunc
	idle     time.Duration
	start    time.Time
	lastNano atomic.Int64 // nanoseconds since start of the last activity

	mu       sync.Mutex
	deadline time.Time // zero: none
	t        *time.Timer
	stopped  bool
}

// timerPool recycles stream timers with their runtime timer: a stale fire
// from an earlier use only re-checks the current stream's limits, so reuse
// is safe.
var timerPool = sync.Pool{New: func() any { return new(streamTimer) }}

func startStreamTimer(timeout, idle time.Duration, cancel context.CancelCauseFunc) *streamTimer {
	st := timerPool.Get().(*streamTimer)
	st.mu.Lock()
	st.cancel, st.idle, st.start, st.stopped = cancel, idle, time.Now(), false
	st.deadline = time.Time{}
	st.lastNano.Store(0)
	first := idle
	if timeout > 0 {
		st.deadline = st.start.Add(timeout)
		if first == 0 || timeout < first {
			first = timeout
		}
	}
	if st.t == nil {
		st.t = time.AfterFunc(first, st.fire)
	} else {
		st.t.Reset(first)
	}
	st.mu.Unlock()
	return st
}

// touch records activity.
func (st *streamTimer) touch() {
	st.lastNano.Store(int64(time.Since(st.start)))
}

// disableDeadline drops the absolute deadline (an upgraded connection).
func (st *streamTimer) disableDeadline() {
	st.mu.Lock()
	st.deadline = time.Time{}
	st.mu.Unlock()
}

// stop disarms the timer and recycles it; st must not be used after.
func (st *streamTimer) stop() {
	st.mu.Lock()
	st.stopped = true
	st.t.Stop()
	st.cancel = nil
	st.mu.Unlock()
	timerPool.Put(st)
}

// fire checks both limits and re-arms for whichever comes next.
func (st *streamTimer) fire() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.stopped {
		return
	}
	now := time.Now()
	if !st.deadline.IsZero() && !now.Before(st.deadline) {
		st.stopped = true
		st.cancel(errRouteTimeout)
		return
	}
	next := time.Duration(-1)
	if st.idle > 0 {
		last := st.start.Add(time.Duration(st.lastNano.Load()))
		quiet := now.Sub(last)
		if quiet >= st.idle {
			st.stopped = true
			st.cancel(errStreamIdle)
			return
		}
		next = st.idle - quiet
	}
	if !st.deadline.IsZero() {
		if d := st.deadline.Sub(now); next < 0 || d < next {
			next = d
		}
	}
	if next >= 0 {
		st.t.Reset(next)
	}
}
