package forward

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// streamTimer enforces a route timeout (an absolute deadline) and a stream
// idle timeout (no byte either way for that long) with one runtime timer,
// so the hot path pays an atomic store per chunk rather than a timer reset.
type streamTimer struct {
	// gen counts uses of this pooled timer; holders from an earlier use
	// (a request body the transport still reads) are ignored.
	gen    atomic.Uint64
	cancel context.CancelCauseFunc
	idle   time.Duration
	start  time.Time
	// startMono is start on the process's monotonic clock (monoNow), for
	// touch: a body writer of an earlier use may still call it while a
	// new use sets start.
	startMono atomic.Int64
	lastNano  atomic.Int64 // nanoseconds since start of the last activity

	mu       sync.Mutex
	deadline time.Time // zero: none
	reqEnd   time.Time // request_timeout: whole request received by then
	t        *time.Timer
	stopped  bool
	// w is the downstream response writer when the request has a body: on
	// expiry its read deadline is moved to the past, because the transport
	// waits for its body writer, which may be blocked reading a stalled
	// client.
	w http.ResponseWriter
}

// timerPool recycles stream timers with their runtime timer: a stale fire
// from an earlier use only re-checks the current stream's limits, so reuse
// is safe.
var timerPool = sync.Pool{New: func() any { return new(streamTimer) }}

func startStreamTimer(timeout, idle, request time.Duration, cancel context.CancelCauseFunc, bodyFrom http.ResponseWriter) *streamTimer {
	st := timerPool.Get().(*streamTimer)
	st.mu.Lock()
	st.gen.Add(1)
	st.cancel, st.idle, st.start, st.stopped, st.w = cancel, idle, time.Now(), false, bodyFrom
	st.deadline, st.reqEnd = time.Time{}, time.Time{}
	st.startMono.Store(monoNow())
	st.lastNano.Store(0)
	first := idle
	if timeout > 0 {
		st.deadline = st.start.Add(timeout)
		if first == 0 || timeout < first {
			first = timeout
		}
	}
	if request > 0 {
		st.reqEnd = st.start.Add(request)
		if first == 0 || request < first {
			first = request
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

// expire ends the stream with cause; st.mu is held.
func (st *streamTimer) expire(cause error) {
	st.stopped = true
	st.cancel(cause)
	if st.w != nil {
		_ = http.NewResponseController(st.w).SetReadDeadline(time.Unix(1, 0))
	}
}

// touch records activity of use gen.
func (st *streamTimer) touch(gen uint64) {
	if st.gen.Load() == gen {
		st.lastNano.Store(monoNow() - st.startMono.Load())
	}
}

// monoEpoch anchors monoNow on the monotonic clock.
var monoEpoch = time.Now()

// monoNow is monotonic nanoseconds since the process started.
func monoNow() int64 { return int64(time.Since(monoEpoch)) }

// requestDone disarms request_timeout: the whole request was received, or
// the response started.
func (st *streamTimer) requestDone(gen uint64) {
	st.mu.Lock()
	if st.gen.Load() == gen {
		st.reqEnd = time.Time{}
	}
	st.mu.Unlock()
}

// disableDeadline drops the absolute deadline (an upgraded connection).
func (st *streamTimer) disableDeadline() {
	st.mu.Lock()
	st.deadline = time.Time{}
	st.mu.Unlock()
}

// routeExpired reports whether the route timeout's deadline has passed.
func (st *streamTimer) routeExpired() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return !st.deadline.IsZero() && !time.Now().Before(st.deadline)
}

// stop disarms the timer and recycles it; st must not be used after.
func (st *streamTimer) stop() {
	st.mu.Lock()
	st.stopped = true
	st.t.Stop()
	st.cancel, st.w = nil, nil
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
	if !st.reqEnd.IsZero() && !now.Before(st.reqEnd) {
		st.expire(errRequestTimeout)
		return
	}
	if !st.deadline.IsZero() && !now.Before(st.deadline) {
		st.expire(errRouteTimeout)
		return
	}
	next := time.Duration(-1)
	if st.idle > 0 {
		last := st.start.Add(time.Duration(st.lastNano.Load()))
		quiet := now.Sub(last)
		if quiet >= st.idle {
			st.expire(errStreamIdle)
			return
		}
		next = st.idle - quiet
	}
	for _, end := range [...]time.Time{st.deadline, st.reqEnd} {
		if !end.IsZero() {
			if d := end.Sub(now); next < 0 || d < next {
				next = d
			}
		}
	}
	if next >= 0 {
		st.t.Reset(next)
	}
}
