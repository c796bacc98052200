package forward

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// Retries and hedging, after Envoy's router filter:
//
//   - An attempt is retriable per retry_on (retrypolicy.go). Nothing is
//     written downstream before an attempt's response is chosen, so a
//     retry never follows relayed headers.
//   - A retry needs a retry left (else URX), a replayable request body and
//     Upstream.AdmitRetry (else UO, and no more retries); it waits a
//     jittered backoff, then picks a host again (previous_hosts fills
//     lb.Request.Tried). Every admitted retry gets one ReleaseRetry when
//     its attempt is decided: true when its response is the one relayed
//     and is not retriable.
//   - per_try_timeout and per_try_idle_timeout start when the attempt has
//     the whole request (Envoy: "after the entire request has been
//     received"). per_try_timeout covers an attempt until its response
//     headers (Envoy ignores it once the response started downstream, and
//     we relay headers as soon as they are chosen); the idle timeout also
//     covers the response body. Either one resets the attempt, which is
//     then retriable like a reset (5xx, gateway-error, reset), or ends in
//     504 UT.
//   - Hedging (hedge_on_per_try_timeout): a per-try timeout (or idle
//     timeout) before headers leaves the attempt running and starts
//     another one (one retry, with its backoff, whatever retry_on says);
//     the first response that is not retriable wins, the others are
//     cancelled (the cluster counts them canceled). A retriable answer
//     from an attempt already hedged is dropped while others may still
//     answer. Hedging needs the whole body, which the per-try timers
//     starting at request end guarantee. As in Envoy, neither per-try
//     timer applies to a hedged attempt once its headers are in.
//   - The route timeout bounds all attempts and backoffs together; a
//     backoff also ends when the client leaves.
//   - gRPC: each attempt's grpc-timeout is the time it has left (route
//     deadline, client's grpc-timeout, per-try timeout unless hedging).

// The causes an attempt ends with.
var (
	errPerTryTimeout error = timeoutError("upstream per-try timeout")
	errPerTryIdle    error = timeoutError("upstream per-try idle timeout")
	// errHedgeLost cancels attempts that lost to another one; it is no
	// timeout, so the cluster counts them as canceled.
	errHedgeLost   = errors.New("another attempt answered first")
	errAttemptDone = errors.New("attempt finished")
)

// retrier forwards one request under a retry policy.
type retrier struct {
	w   http.ResponseWriter
	r   *http.Request
	p   Params // a copy: the caller's Params must not escape (the no-retry path keeps it on the stack)
	rp  *router.RetryPolicy
	res Result

	ctx context.Context // the exchange: route, idle and request timeouts, client
	tm  *streamTimer
	gen uint64
	rb  *replayBuffer // nil: no request body
	out http.Request  // template for the attempts' requests
	lbr lb.Request

	// grpcDeadline: the request is gRPC and some timeout applies, so each
	// attempt carries its budget in grpc-timeout. deadline is the
	// earliest of the route's and the client's (zero: none).
	grpcDeadline bool
	deadline     time.Time

	enabled  bool   // retry_on applies to this request
	left     uint32 // retries left
	retries  int    // retries admitted, for the backoff exponent
	overflow bool   // a retry was refused by the breakers (UO)
	limit    bool   // a retriable attempt found no retry left (URX)

	hedge   bool
	kick    chan struct{} // hedging: an attempt has news
	live    []*attempt    // attempts started and not yet decided
	pending int           // admitted retries waiting for their backoff
	wait    *time.Timer
	waiting bool
	last    *attempt // the latest attempt started
	pickErr error    // why the latest Pick failed
}

// forwardRetry is Forward under a retry policy; retriable says retry_on
// applies to this request (retriable_request_headers matched).
func forwardRetry(w http.ResponseWriter, r *http.Request, p *Params, retriable bool) Result {
	rp := p.Retry
	f := &retrier{w: w, r: r, p: *p, rp: rp, hedge: p.Hedge, left: rp.NumRetries, enabled: retriable}

	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(context.Canceled)
	f.ctx = ctx
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	reqTimeout := p.RequestTimeout
	if !hasBody {
		reqTimeout = 0
	}
	start := time.Now()
	if p.Timeout > 0 || p.IdleTimeout > 0 || reqTimeout > 0 {
		var bodyFrom http.ResponseWriter
		if hasBody {
			bodyFrom = w
		}
		f.tm = startStreamTimer(p.Timeout, p.IdleTimeout, reqTimeout, cancel, bodyFrom)
		f.gen = f.tm.gen.Load()
		defer f.tm.stop()
	}
	if IsGRPC(r) {
		if p.Timeout > 0 {
			f.deadline = start.Add(p.Timeout)
		}
		if c, ok := ParseGRPCTimeout(r.Header); ok && (f.deadline.IsZero() || start.Add(c).Before(f.deadline)) {
			f.deadline = start.Add(c)
		}
		f.grpcDeadline = p.Timeout > 0 || rp.PerTryTimeout > 0
	}

	f.out = *r // each attempt's request is a copy with its own context
	u := *r.URL
	f.out.URL = &u
	if p.Path != "" {
		u.Path = p.Path
		u.RawPath = ""
	}
	f.out.RequestURI = ""
	f.out.Close = false
	if p.Host != "" && !p.AutoHost {
		f.out.Host = p.Host
	}
	f.out.Body = nil
	if !hasBody {
		f.out.ContentLength = 0
	} else {
		f.rb = newReplayBuffer(r.Body, p.RetryBufferLimit, f.enabled, f.tm, f.gen)
		defer f.rb.release()
		if r.ProtoMajor == 1 {
			_ = http.NewResponseController(w).EnableFullDuplex()
		}
	}
	f.lbr = p.LB
	if rp.PreviousHosts {
		f.lbr.MaxAttempts = rp.HostSelectionMaxAttempts
		f.lbr.Tried = slices.Clip(f.lbr.Tried) // appending must not write into the caller's array
	}
	if f.hedge {
		f.kick = make(chan struct{}, 1)
	}
	return f.run()
}

// run makes attempts until one's outcome is final.
func (f *retrier) run() Result {
	if !f.launch(false) {
		return f.noHost()
	}
	for {
		if f.step() {
			return f.res
		}
		if f.pending > 0 && !f.waiting {
			d := backoff(f.retries, f.rp.BackoffBase, f.rp.BackoffMax, jitter)
			if f.wait == nil {
				f.wait = time.NewTimer(d)
				defer f.wait.Stop()
			} else {
				f.wait.Reset(d)
			}
			f.waiting = true
		}
		var backoffDone <-chan time.Time
		if f.waiting {
			backoffDone = f.wait.C
		}
		select {
		case <-f.kick:
		case <-backoffDone:
			f.waiting = false
			for f.pending > 0 {
				f.pending--
				f.launch(true)
			}
			if len(f.live) == 0 {
				return f.noHost()
			}
		case <-f.ctx.Done():
			return f.fail()
		}
	}
}

// launch picks a host and starts an attempt; admitted says a retry
// admission comes with it. It reports false when no host could be picked.
func (f *retrier) launch(admitted bool) bool {
	host, err := f.p.Upstream.Pick(&f.lbr)
	if err != nil {
		if admitted {
			f.p.Upstream.ReleaseRetry(false)
		}
		f.pickErr = err
		return false
	}
	if f.rp.PreviousHosts {
		f.lbr.Tried = append(f.lbr.Tried, host)
	}
	a := &attempt{f: f, host: host, admitted: admitted, ctx: f.ctx}
	if f.hedge || f.rp.PerTryTimeout > 0 || f.rp.PerTryIdleTimeout > 0 {
		a.ctx, a.cancel = context.WithCancelCause(f.ctx)
	}
	req := f.out.WithContext(a.ctx)
	u := *f.out.URL
	req.URL = &u
	if f.p.AutoHost {
		req.Host = host.Address
	}
	if f.grpcDeadline {
		perTry := f.rp.PerTryTimeout
		if f.hedge {
			// A hedged attempt is not reset at its per-try timeout: the
			// backend may use the whole budget (Envoy does the same).
			perTry = 0
		}
		if d, ok := grpcBudget(time.Now(), f.deadline, perTry); ok {
			// Attempts may overlap (hedging) or still be writing: each
			// gets its own header map.
			h := make(http.Header, len(f.r.Header)+1)
			for k, vv := range f.r.Header {
				h[k] = vv
			}
			h["Grpc-Timeout"] = []string{formatGRPCTimeout(d)}
			req.Header = h
		}
	}
	if f.rb != nil {
		a.body = f.rb.reader(a)
		req.Body = a.body
	}
	if f.p.Trace != nil {
		// Each attempt carries its own span's context: its own headers.
		h := make(http.Header, len(req.Header)+1)
		for k, vv := range req.Header {
			h[k] = vv
		}
		a.span = f.p.Trace.StartAttempt(h, host.Address)
		req.Header = h
	}
	a.req = req
	f.res.Attempts++
	f.last = a
	f.live = append(f.live, a)
	if f.rb == nil || f.rb.complete() {
		a.requestComplete()
	}
	if f.hedge {
		go a.run()
	} else {
		a.run()
	}
	return true
}

// step handles every attempt with news; it reports whether the exchange
// is over (a response relayed or a local reply sent).
func (f *retrier) step() bool {
	for i := 0; i < len(f.live); {
		a := f.live[i]
		a.mu.Lock()
		returned := a.returned
		soft := a.soft && !a.softSeen && !returned
		if soft {
			a.softSeen = true
		}
		a.mu.Unlock()
		switch {
		case returned:
			f.live = append(f.live[:i], f.live[i+1:]...)
			if f.decide(a) {
				return true
			}
			continue
		case soft && !a.retried:
			// Hedge: the attempt keeps running, another one starts.
			if f.admit() {
				a.retried = true
				f.pending++
			}
		}
		i++
	}
	return false
}

// admit asks for one more retry: a retry left, a replayable body, and the
// breakers' consent.
func (f *retrier) admit() bool {
	if !f.enabled {
		return false
	}
	if f.rb != nil && !f.rb.replayable() {
		f.enabled = false // the body outgrew the buffer: Envoy gives up retrying
		return false
	}
	if f.left == 0 {
		f.limit = true
		return false
	}
	f.left--
	if !f.p.Upstream.AdmitRetry() {
		f.overflow = true
		f.enabled = false
		return false
	}
	f.retries++
	return true
}

// decide handles an attempt whose round trip returned. It reports whether
// the exchange is over.
func (f *retrier) decide(a *attempt) bool {
	a.headersIn()
	resp, err := a.resp, a.err
	if err == nil && a.ctx.Err() != nil {
		// A timer of ours ended the attempt as the response raced in:
		// the cancellation wins, as in the one-attempt path.
		resp.Body.Close()
		resp, err = nil, context.Cause(a.ctx)
	}
	if a.span.Active() {
		endAttemptSpan(a.span, resp, err)
	}
	var reason Reason
	var would bool
	if err != nil {
		reason = classifyTimed(a.ctx, f.r.Context(), err, f.p.Classify, f.tm)
		would = f.ctx.Err() == nil && retriableFailure(f.rp.On, reason, err)
	} else {
		would = retriableResponse(f.rp, resp)
	}
	if would && !a.retried && f.admit() {
		f.drop(a, resp)
		f.pending++
		return false
	}
	if (would || err != nil) && (len(f.live) > 0 || f.pending > 0) {
		// Another attempt may still answer.
		f.drop(a, resp)
		return false
	}

	// Final.
	f.release(a, err == nil && !would)
	f.abandonRest()
	f.res.UpstreamHost = a.host.Address
	defer a.end(errAttemptDone)
	if err != nil {
		f.localReply(reason)
		return true
	}
	if f.rp.PerTryIdleTimeout > 0 && !f.hedge {
		// The idle timeout goes on while the body streams (it may even
		// start later, when the request body ends).
		resp.Body = &activityBody{rc: resp.Body, a: a}
	}
	var sent sentBody
	if f.rb != nil {
		sent = f.rb
	}
	relay(f.w, f.r, resp, &f.p, a.ctx, f.tm, f.gen, sent, &f.res)
	f.res.Flag = joinFlags(f.res.Flag, f.overflow, f.limit)
	return true
}

// drop ends an attempt whose outcome is not used.
func (f *retrier) drop(a *attempt, resp *http.Response) {
	if resp != nil {
		resp.Body.Close()
	}
	f.release(a, false)
	a.end(errAttemptDone)
}

// release gives back an admitted retry.
func (f *retrier) release(a *attempt, success bool) {
	if a.admitted {
		a.admitted = false
		f.p.Upstream.ReleaseRetry(success)
	}
}

// abandonRest cancels the attempts still running and the retries still
// waiting for their backoff.
func (f *retrier) abandonRest() {
	for _, a := range f.live {
		a.mu.Lock()
		a.abandoned = true
		resp := a.resp
		a.mu.Unlock()
		a.end(errHedgeLost)
		a.span.End(0, errHedgeLost)
		if resp != nil {
			resp.Body.Close()
		}
		f.release(a, false)
	}
	f.live = nil
	for ; f.pending > 0; f.pending-- {
		f.p.Upstream.ReleaseRetry(false)
	}
}

// fail ends the exchange when its own context ended (route, idle or
// request timeout, or the client left).
func (f *retrier) fail() Result {
	f.abandonRest()
	if f.last != nil {
		f.res.UpstreamHost = f.last.host.Address
	}
	f.localReply(classifyTimed(f.ctx, f.r.Context(), context.Cause(f.ctx), f.p.Classify, f.tm))
	return f.res
}

// noHost answers when Pick failed and no attempt is left (Envoy: no
// healthy upstream, even after earlier attempts).
func (f *retrier) noHost() Result {
	f.abandonRest()
	if f.last != nil {
		f.res.UpstreamHost = f.last.host.Address
	}
	reason := ReasonNoHealthyUpstream
	if f.p.Classify != nil {
		if rs, ok := f.p.Classify(f.pickErr); ok {
			reason = rs
		}
	}
	f.localReply(reason)
	return f.res
}

// localReply answers for the proxy.
func (f *retrier) localReply(reason Reason) {
	var sent sentBody
	if f.rb != nil {
		sent = f.rb
		f.res.BytesReceived = f.rb.bytesRead()
	}
	closeIfBodyUnread(f.w, f.r, sent)
	f.res.Status = WriteLocalReply(f.w, f.r, reason, "")
	f.res.Flag = joinFlags(reason.Flag(), f.overflow, f.limit)
}
