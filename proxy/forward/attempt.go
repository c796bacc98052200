package forward

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/tracing"
)

// attempt is one round trip of a request.
type attempt struct {
	f      *retrier
	host   *lb.Host
	req    *http.Request
	body   *replayReader
	ctx    context.Context
	cancel context.CancelCauseFunc // nil: the attempt shares the exchange's context
	span   tracing.Attempt         // the attempt's client span; inactive without tracing
	// admitted: a retry admission came with this attempt and owes one
	// ReleaseRetry. retried: a retry was started on its behalf (hedging),
	// so it is not retried again. Both belong to the loop goroutine.
	admitted bool
	retried  bool

	idle    atomic.Pointer[streamTimer] // per_try_idle_timeout
	idleGen uint64

	mu        sync.Mutex
	armed     bool // per-try timers started
	headers   bool // the round trip returned: per_try_timeout is over
	ended     bool
	perTry    *time.Timer
	returned  bool
	resp      *http.Response
	err       error
	soft      bool // hedging: a per-try timer fired
	softSeen  bool
	abandoned bool
}

// run makes the round trip and reports it to the loop.
func (a *attempt) run() {
	resp, err := a.f.p.Upstream.RoundTrip(a.req, a.host)
	a.mu.Lock()
	if a.abandoned {
		a.mu.Unlock()
		if resp != nil {
			resp.Body.Close()
		}
		return
	}
	a.returned, a.resp, a.err = true, resp, err
	a.mu.Unlock()
	a.f.notify()
}

// notify wakes the hedging loop.
func (f *retrier) notify() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// requestComplete starts the per-try timers once the attempt has the whole
// request. It may run on the transport's body writer.
func (a *attempt) requestComplete() {
	rp := a.f.rp
	if rp.PerTryTimeout <= 0 && rp.PerTryIdleTimeout <= 0 {
		return
	}
	a.mu.Lock()
	if a.armed || a.ended {
		a.mu.Unlock()
		return
	}
	a.armed = true
	headers := a.headers
	a.mu.Unlock()

	// Created outside a.mu: their callbacks take it.
	var pt *time.Timer
	var st *streamTimer
	if d := rp.PerTryTimeout; d > 0 && !headers {
		pt = time.AfterFunc(d, a.perTryExpired)
	}
	if d := rp.PerTryIdleTimeout; d > 0 && !(headers && a.f.hedge) {
		st = startStreamTimer(0, d, 0, a.idleExpired, nil)
	}
	a.mu.Lock()
	if a.ended {
		a.mu.Unlock()
		if pt != nil {
			pt.Stop()
		}
		if st != nil {
			st.stop()
		}
		return
	}
	a.perTry = pt
	if st != nil {
		a.idleGen = st.gen.Load()
		a.idle.Store(st)
	}
	a.mu.Unlock()
}

func (a *attempt) perTryExpired()    { a.expire(errPerTryTimeout, true) }
func (a *attempt) idleExpired(error) { a.expire(errPerTryIdle, false) }

// expire handles a per-try timer: with hedging it flags the attempt for
// the loop (before headers only); otherwise it resets the attempt.
// beforeHeaders: the timer only applies until the response headers.
func (a *attempt) expire(cause error, beforeHeaders bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ended || (a.headers && (beforeHeaders || a.f.hedge)) {
		return
	}
	if a.f.hedge {
		a.soft = true
		a.f.notify()
		return
	}
	// Under a.mu, so headersIn sees either the cancellation or no timer.
	a.cancel(cause)
}

// headersIn marks the round trip as returned: per_try_timeout no longer
// applies (and, with hedging, neither does the idle timeout).
func (a *attempt) headersIn() {
	a.mu.Lock()
	a.headers = true
	pt := a.perTry
	a.perTry = nil
	a.mu.Unlock()
	if pt != nil {
		pt.Stop()
	}
	if a.f.hedge {
		if st := a.idle.Swap(nil); st != nil {
			st.stop()
		}
	}
}

// touch records activity for per_try_idle_timeout.
func (a *attempt) touch() {
	if st := a.idle.Load(); st != nil {
		st.touch(a.idleGen)
	}
}

// end stops the attempt's timers, its request body and its context.
func (a *attempt) end(cause error) {
	a.mu.Lock()
	a.ended = true
	pt := a.perTry
	a.perTry = nil
	a.mu.Unlock()
	if pt != nil {
		pt.Stop()
	}
	if st := a.idle.Swap(nil); st != nil {
		st.stop()
	}
	if a.body != nil {
		a.body.Close()
	}
	if a.cancel != nil {
		a.cancel(cause)
	}
}

// activityBody marks response body reads as activity of the attempt.
type activityBody struct {
	rc interface {
		Read([]byte) (int, error)
		Close() error
	}
	a *attempt
}

func (b *activityBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.a.touch()
	}
	return n, err
}

func (b *activityBody) Close() error { return b.rc.Close() }
