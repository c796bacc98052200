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

func startStreamTimer(timeout, idle time.Duration, cancel context.CancelCauseFunc) *streamTimer {
	st := &streamTimer{cancel: cancel, idle: idle, start: time.Now()}
	first := idle
	if timeout > 0 {
		st.deadline = st.start.Add(timeout)
		if first == 0 || timeout < first {
			first = timeout
		}
	}
	st.t = time.AfterFunc(first, st.fire)
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

func (st *streamTimer) stop() {
	st.mu.Lock()
	st.stopped = true
	st.t.Stop()
	st.mu.Unlock()
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
