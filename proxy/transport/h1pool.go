package transport

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"time"
)

// h1Pool is the HTTP/1.1 client: idle persistent connections per upstream
// address, most recently used first, and the round trip over them.
type h1Pool struct {
	opts *Options
	d    *dialer

	mu      sync.Mutex
	idle    map[string][]*pconn // per address; the newest at the end
	closed  bool
	reaping bool          // a reaper goroutine runs
	stop    chan struct{} // closed by Close: the reaper exits
	kick    chan struct{} // wakes the reaper to notice an emptied pool
	reaper  sync.WaitGroup

	// Circuit breakers (Options.MaxConnections, MaxPendingRequests):
	// open counts connections dialed or being dialed, openBy the same per
	// address; waiters are the requests queued for one, oldest first.
	open    int
	openBy  map[string]int
	waiters []*waiter
}

// waiter is one request queued for a connection to addr.
type waiter struct {
	addr string
	ch   chan struct{}
}

func newH1Pool(o *Options) *h1Pool {
	return &h1Pool{
		opts:   o,
		d:      newDialer(o, false),
		idle:   make(map[string][]*pconn),
		openBy: make(map[string]int),
		stop:   make(chan struct{}),
		kick:   make(chan struct{}, 1),
	}
}

var errNoHost = errors.New("request URL has no host")

// roundTrip sends req to req.URL.Host. A request that failed on a pooled
// connection the upstream had closed while idle is sent once more, on a
// new connection.
func (p *h1Pool) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	addr := req.URL.Host
	if addr == "" {
		closeBody(req)
		return nil, &Error{Kind: KindReset, Err: errNoHost}
	}
	r := new(response)
	pc, err := p.get(ctx, addr, !hasBody(req) && isIdempotent(req))
	if err != nil {
		closeBody(req)
		return nil, err
	}
	resp, err := pc.roundTrip(req, r)
	if _, ok := err.(*errRetry); ok {
		// The stale connection's slot passes to its replacement.
		if pc, err = p.redial(ctx, addr); err != nil {
			closeBody(req)
			return nil, err
		}
		resp, err = pc.roundTrip(req, r)
		if retry, ok := err.(*errRetry); ok { // cannot happen on a new connection
			err = failure(ctx, addr, retry.err, false)
		}
	}
	if err != nil {
		if !hasBody(req) || !pc.bodyStarted() {
			closeBody(req)
		}
		return nil, err
	}
	return resp, nil
}

// bodyStarted reports whether a body writer took over the request body (it
// closes the body itself).
func (pc *pconn) bodyStarted() bool { return pc.writeStarted }

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// probeAfter is the idle time after which a connection is probed before
// reuse even for a request that could be retried: upstream keep-alive
// timeouts are seconds long, so a connection idle for less is very likely
// alive, and a stale one costs a retryable request only the retry.
const probeAfter = time.Second

// get returns an idle connection to addr, the most recently used first,
// or dials one. Idle connections that expired, were closed by the upstream,
// or received bytes nobody asked for are closed on the way; replayable
// says the request can be retried if the connection proves stale, which
// spares the probe of a recently used connection.
func (p *h1Pool) get(ctx context.Context, addr string, replayable bool) (*pconn, error) {
	for {
		pc, err := p.getOnce(ctx, addr, replayable)
		if err != errTryIdle {
			return pc, err
		}
	}
}

func (p *h1Pool) getOnce(ctx context.Context, addr string, replayable bool) (*pconn, error) {
	for {
		p.mu.Lock()
		list := p.idle[addr]
		if len(list) == 0 {
			p.mu.Unlock()
			break
		}
		pc := list[len(list)-1]
		list[len(list)-1] = nil
		p.idle[addr] = list[:len(list)-1]
		p.mu.Unlock()
		idle := time.Since(pc.idleAt)
		if (p.opts.IdleTimeout == 0 || idle < p.opts.IdleTimeout) && pc.br.Buffered() == 0 &&
			(replayable && idle < probeAfter || pc.idle.alive()) {
			pc.reused = true
			return pc, nil
		}
		pc.close()
	}
	if p.opts.MaxConnections <= 0 {
		return p.dial(ctx, addr)
	}
	if err := p.reserve(ctx, addr); err != nil {
		return nil, err
	}
	pc, err := p.dial(ctx, addr)
	if err != nil {
		p.release(addr)
	}
	return pc, err
}

// reserve takes a connection slot for addr under MaxConnections. As in
// Envoy, an address with no connection at all may always have one, so a
// busy host cannot starve a new one; when every slot is taken, an idle
// connection to another address gives up its slot; otherwise the request
// queues as pending, and fails at once with KindOverflow when
// MaxPendingRequests requests already wait, or when its context ends while
// queued. errTryIdle sends the caller back to the idle list: a connection
// to addr came back.
func (p *h1Pool) reserve(ctx context.Context, addr string) error {
	p.mu.Lock()
	for {
		if len(p.idle[addr]) > 0 {
			p.passOnLocked()
			p.mu.Unlock()
			return errTryIdle
		}
		if p.open < p.opts.MaxConnections || p.openBy[addr] == 0 {
			p.open++
			p.openBy[addr]++
			p.passOnLocked()
			p.mu.Unlock()
			return nil
		}
		if victim := p.takeIdleElsewhereLocked(addr); victim != nil {
			// The victim's slot becomes ours: its close releases nothing.
			victim.slotMoved = true
			p.dropOpenLocked(victim.addr)
			p.open++
			p.openBy[addr]++
			p.mu.Unlock()
			victim.close()
			return nil
		}
		if p.opts.MaxPendingRequests > 0 && len(p.waiters) >= p.opts.MaxPendingRequests {
			p.mu.Unlock()
			if o, ok := p.opts.Conns.(OverflowObserver); ok {
				o.PendingOverflow()
			}
			return &Error{Kind: KindOverflow, Addr: addr, Err: errPendingOverflow}
		}
		if o, ok := p.opts.Conns.(OverflowObserver); ok {
			o.ConnOverflow()
		}
		w := &waiter{addr: addr, ch: make(chan struct{})}
		p.waiters = append(p.waiters, w)
		p.mu.Unlock()
		select {
		case <-w.ch:
		case <-ctx.Done():
			p.mu.Lock()
			if i := slices.Index(p.waiters, w); i >= 0 {
				p.waiters = slices.Delete(p.waiters, i, i+1)
			} else {
				p.wakeLocked() // we were woken as we gave up: pass it on
			}
			p.mu.Unlock()
			return failure(ctx, addr, ctx.Err(), false)
		}
		p.mu.Lock()
	}
}

// takeIdleElsewhereLocked removes and returns the oldest idle connection
// to an address other than addr, nil if there is none; p.mu is held.
func (p *h1Pool) takeIdleElsewhereLocked(addr string) *pconn {
	var victim *pconn
	for a, list := range p.idle {
		if a == addr || len(list) == 0 {
			continue
		}
		if victim == nil || list[0].idleAt.Before(victim.idleAt) {
			victim = list[0]
		}
	}
	if victim == nil {
		return nil
	}
	list := p.idle[victim.addr]
	rest := copy(list, list[1:])
	list[rest] = nil
	if rest == 0 {
		delete(p.idle, victim.addr)
	} else {
		p.idle[victim.addr] = list[:rest]
	}
	return victim
}

// errTryIdle tells get to look at the idle list again.
var errTryIdle = errors.New("an idle connection is available")

var errPendingOverflow = errors.New("max_pending_requests reached")

// release frees addr's connection slot (a connection closed or a dial
// failed) and wakes the oldest waiter.
func (p *h1Pool) release(addr string) {
	p.mu.Lock()
	p.dropOpenLocked(addr)
	p.wakeLocked()
	p.mu.Unlock()
}

func (p *h1Pool) dropOpenLocked(addr string) {
	p.open--
	if p.openBy[addr]--; p.openBy[addr] <= 0 {
		delete(p.openBy, addr)
	}
}

// wakeLocked wakes the oldest queued request; p.mu is held. A woken
// request holds nothing: it looks again at idle connections and slots.
func (p *h1Pool) wakeLocked() {
	if len(p.waiters) > 0 {
		close(p.waiters[0].ch)
		p.waiters = slices.Delete(p.waiters, 0, 1)
	}
}

// wakeForLocked wakes the oldest request queued for addr, reporting
// whether there was one; p.mu is held.
func (p *h1Pool) wakeForLocked(addr string) bool {
	for i, w := range p.waiters {
		if w.addr == addr {
			close(w.ch)
			p.waiters = slices.Delete(p.waiters, i, i+1)
			return true
		}
	}
	return false
}

// passOnLocked wakes one more waiter when a slot is free, so a wake-up a
// request did not need (it found an idle connection, or took a slot while
// more are free) is not lost; p.mu is held.
func (p *h1Pool) passOnLocked() {
	if p.open < p.opts.MaxConnections {
		p.wakeLocked()
	}
}

// dial makes a new connection to addr with the dialer's connect timeout;
// its errors are already *Error of KindConnect.
func (p *h1Pool) dial(ctx context.Context, addr string) (*pconn, error) {
	dial := p.d.dial
	if p.d.tls != nil {
		dial = p.d.dialTLS
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return newPconn(p, addr, nc), nil
}

// redial replaces a stale connection (whose close released its slot).
func (p *h1Pool) redial(ctx context.Context, addr string) (*pconn, error) {
	if p.opts.MaxConnections <= 0 {
		return p.dial(ctx, addr)
	}
	p.mu.Lock()
	p.open++ // the replacement may briefly exceed the limit by one
	p.openBy[addr]++
	p.mu.Unlock()
	pc, err := p.dial(ctx, addr)
	if err != nil {
		p.release(addr)
	}
	return pc, err
}

// put returns a connection to the pool, or closes it when the pool is
// closed or full. The reaper starts with the first idle connection.
func (p *h1Pool) put(pc *pconn) {
	pc.idleAt = time.Now()
	pc.writeStarted = false
	p.mu.Lock()
	list := p.idle[pc.addr]
	if p.closed || len(list) >= p.opts.MaxIdleConnsPerHost {
		p.mu.Unlock()
		pc.close()
		return
	}
	if p.opts.MaxConnections > 0 && !p.wakeForLocked(pc.addr) && len(p.waiters) > 0 && p.open >= p.opts.MaxConnections {
		// Nobody waits for this address but others wait for a slot: give
		// them this connection's.
		p.mu.Unlock()
		pc.close()
		return
	}
	p.idle[pc.addr] = append(list, pc)
	if !p.reaping {
		p.reaping = true
		p.reaper.Add(1)
		go p.reap()
	}
	p.mu.Unlock()
}

// reapInterval is how often idle connections are checked against the idle
// timeout: often enough that one lives at most ~1.5× the timeout; every
// 30 s for dead connections when there is no idle timeout (0).
func reapInterval(idle time.Duration) time.Duration {
	if idle == 0 {
		return 30 * time.Second
	}
	return min(max(idle/2, 10*time.Millisecond), 30*time.Second)
}

// reap closes connections idle longer than the idle timeout. It exits when
// the pool is empty (put starts it again) or closed, so a Transport nobody
// calls Close on leaves no goroutine behind once its connections are gone.
func (p *h1Pool) reap() {
	defer p.reaper.Done()
	t := time.NewTicker(reapInterval(p.opts.IdleTimeout))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		case <-p.kick:
		}
		p.mu.Lock()
		var expired []*pconn
		if idle := p.opts.IdleTimeout; idle > 0 {
			cutoff := time.Now().Add(-idle)
			expired = p.removeIdleLocked(func(pc *pconn) bool { return !pc.idleAt.After(cutoff) })
		} else {
			// No idle timeout: nothing expires by age, but a connection
			// the upstream closed (or wrote to unasked) is dropped rather
			// than held open until it is next picked.
			expired = p.removeIdleLocked(func(pc *pconn) bool { return pc.br.Buffered() != 0 || !pc.idle.alive() })
		}
		done := len(p.idle) == 0
		if done {
			p.reaping = false
		}
		p.mu.Unlock()
		for _, c := range expired {
			c.close()
		}
		if done {
			return
		}
	}
}

// takeIdle empties the pool and returns what it held.
func (p *h1Pool) takeIdle() []*pconn {
	p.mu.Lock()
	defer p.mu.Unlock()
	var all []*pconn
	for addr, list := range p.idle {
		all = append(all, list...)
		delete(p.idle, addr)
	}
	return all
}

func (p *h1Pool) closeIdle() {
	for _, c := range p.takeIdle() {
		c.close()
	}
	select {
	case p.kick <- struct{}{}: // the reaper exits now rather than at its next tick
	default:
	}
}

// close closes idle connections, stops the reaper and waits for it.
// Connections carrying a request close when their response ends.
func (p *h1Pool) close() {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	p.mu.Unlock()
	p.closeIdle()
	p.reaper.Wait()
}

// removeIdleLocked takes the connections drop selects out of the idle
// lists, keeping the others in order, and returns them for closing. p.mu
// is held: no request can take one meanwhile.
func (p *h1Pool) removeIdleLocked(drop func(*pconn) bool) []*pconn {
	var out []*pconn
	for addr, list := range p.idle {
		keep := list[:0]
		for _, pc := range list {
			if drop(pc) {
				out = append(out, pc)
			} else {
				keep = append(keep, pc)
			}
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(p.idle, addr)
		} else {
			p.idle[addr] = keep
		}
	}
	return out
}
