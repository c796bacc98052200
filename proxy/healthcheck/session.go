package healthcheck

import (
	"context"
	"math"
	"math/rand/v2"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// outcome is what one check found, in Envoy's failure types.
type outcome uint8

const (
	passed    outcome = iota
	failed            // ACTIVE, not retriable: the host is unhealthy at once
	retriable         // ACTIVE, retriable: counts towards unhealthy_threshold
	network           // NETWORK: counts towards unhealthy_threshold
	timedOut          // NETWORK_TIMEOUT: counts towards unhealthy_threshold
)

// result is one check's outcome and, for a failure, why.
type result struct {
	outcome outcome
	reason  string
}

// transition is Envoy's HealthTransition: did this result change the
// check's verdict, or move it towards a change?
type transition uint8

const (
	unchanged transition = iota
	changed
	changePending
)

// prober runs one kind of check against one host. probe is called from one
// goroutine only; ctx carries the check's timeout. close releases its
// connections.
type prober interface {
	probe(ctx context.Context) result
	close()
}

// session checks one host with one Config. Fields below mu are guarded by
// Checker.mu.
type session struct {
	c      *Checker
	cfg    *Config
	index  int
	entry  *hostEntry
	prober prober
	ctx    context.Context
	cancel context.CancelFunc

	// Envoy's per-session state. unhealthy starts true: a new host is
	// failed until its first check passes.
	unhealthy    bool
	firstCheck   bool
	numHealthy   uint32
	numUnhealthy uint32

	// For HostStatus.
	checked         bool
	consecSuccess   uint32
	consecFailure   uint32
	lastCheck       time.Time
	lastFailure     string
	lastFailureTime time.Time
}

func (c *Checker) newSession(e *hostEntry, i int) *session {
	ctx, cancel := context.WithCancel(context.Background())
	cfg := &c.cfgs[i]
	return &session{
		c: c, cfg: cfg, index: i, entry: e, ctx: ctx, cancel: cancel,
		prober:     newProber(cfg, e.host.Address, &c.opts),
		unhealthy:  true,
		firstCheck: true,
	}
}

func newProber(cfg *Config, addr string, opts *Options) prober {
	switch {
	case cfg.HTTP != nil:
		return newHTTPProber(cfg, addr, opts)
	case cfg.GRPC != nil:
		return newGRPCProber(cfg, addr, opts)
	default:
		return newTCPProber(cfg, addr, opts)
	}
}

// run is the session's goroutine: wait, check, record, until canceled.
func (s *session) run() {
	defer s.c.wg.Done()
	defer s.c.live.Add(-1)
	defer s.prober.close()
	t := time.NewTimer(initialDelay(s.cfg))
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		s.c.stats.attempt.Add(1)
		ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Timeout)
		r := s.prober.probe(ctx)
		cancel()
		healthy, tr, ok := s.c.record(s, r)
		if !ok {
			return
		}
		t.Reset(nextInterval(s.cfg, healthy, tr, s.c.hasTraffic()))
	}
}

func (c *Checker) hasTraffic() bool { return c.opts.HasTraffic == nil || c.opts.HasTraffic() }

// record applies one result as Envoy's handleSuccess/handleFailure do, then
// updates the host's flag. It reports whether the check passed and the
// transition, which choose the next interval; ok is false once the session
// is stopped (the result is then dropped).
func (c *Checker) record(s *session, r result) (healthy bool, tr transition, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.ctx.Err() != nil {
		return false, unchanged, false
	}
	now := time.Now()
	first := s.firstCheck
	s.firstCheck = false
	s.checked = true
	s.lastCheck = now
	if r.outcome == passed {
		healthy = true
		c.stats.success.Add(1)
		s.consecSuccess++
		s.consecFailure = 0
		s.numUnhealthy = 0
		if s.unhealthy {
			s.numHealthy++
			if first || s.numHealthy >= s.cfg.HealthyThreshold {
				s.unhealthy = false
				tr = changed
			} else {
				tr = changePending
			}
		}
	} else {
		c.stats.failure.Add(1)
		if r.outcome == network || r.outcome == timedOut {
			c.stats.networkFailure.Add(1)
		}
		s.consecFailure++
		s.consecSuccess = 0
		s.lastFailure, s.lastFailureTime = r.reason, now
		s.numHealthy = 0
		if !s.unhealthy {
			s.numUnhealthy++
			if r.outcome == failed || s.numUnhealthy >= s.cfg.UnhealthyThreshold {
				s.unhealthy = true
				tr = changed
			} else {
				tr = changePending
			}
		}
	}

	e := s.entry
	was := e.healthy
	e.healthy = true
	for _, o := range e.sessions {
		if o.unhealthy {
			e.healthy = false
		}
	}
	switch {
	case e.healthy != was:
		e.host.SetFlag(lb.FailedActiveHC, !e.healthy)
		if e.healthy {
			c.log.Info("upstream host healthy", "host", e.host.Address, "check", s.cfg.kind())
		} else {
			c.log.Info("upstream host unhealthy", "host", e.host.Address, "check", s.cfg.kind(), "reason", r.reason)
		}
	case first && !healthy && !e.healthy:
		// A new host that fails its first check stays out of rotation; say
		// why once, since no transition will.
		c.log.Info("new upstream host failed its first health check", "host", e.host.Address, "check", s.cfg.kind(), "reason", r.reason)
	}

	if healthy && e.healthy && c.opts.OnPass != nil {
		c.opts.OnPass(e.host)
	}
	if _, waiting := c.readyWait[s]; waiting {
		delete(c.readyWait, s)
		c.checkReadyLocked()
	}
	if c.onResult != nil {
		c.onResult(e.host, s.index, r, s.statusLocked())
	}
	return healthy, tr, true
}

func (s *session) statusLocked() CheckStatus {
	return CheckStatus{
		Kind:                 s.cfg.kind(),
		Healthy:              !s.unhealthy,
		Checked:              s.checked,
		LastCheck:            s.lastCheck,
		ConsecutiveSuccesses: s.consecSuccess,
		ConsecutiveFailures:  s.consecFailure,
		LastFailure:          s.lastFailure,
		LastFailureTime:      s.lastFailureTime,
	}
}

// initialDelay is Envoy's first wait: 0 without initial_jitter, else a
// random time in [0, initial_jitter), at least 1ms.
func initialDelay(cfg *Config) time.Duration {
	if cfg.InitialJitter <= 0 {
		return 0
	}
	return withJitter(cfg, 0, cfg.InitialJitter)
}

// nextInterval is Envoy's HealthCheckerImplBase::interval: the wait after a
// check that passed (healthy) or not, given the transition it caused.
func nextInterval(cfg *Config, healthy bool, tr transition, hasTraffic bool) time.Duration {
	var base time.Duration
	switch {
	case !hasTraffic:
		if healthy && tr != changePending {
			base = cfg.NoTrafficHealthyInterval
		} else {
			base = cfg.NoTrafficInterval
		}
	case !healthy && tr == changePending:
		base = cfg.UnhealthyEdgeInterval
	case !healthy:
		base = cfg.UnhealthyInterval
	case tr == changePending:
		base = cfg.HealthyEdgeInterval
	default:
		base = cfg.Interval
	}
	return withJitter(cfg, base, cfg.IntervalJitter)
}

// withJitter is Envoy's intervalWithJitter: base plus a random part of
// base*interval_jitter_percent/100, plus a random part of jitter; at least
// 1ms so a timer never spins. Sums saturate instead of overflowing.
func withJitter(cfg *Config, base, jitter time.Duration) time.Duration {
	d := base
	// In float64 so a large percent cannot overflow.
	if pct := float64(base) * float64(cfg.IntervalJitterPercent) / 100; pct >= 1 {
		d = addSat(d, rand.N(time.Duration(min(pct, math.MaxInt64/2))))
	}
	if jitter > 0 {
		d = addSat(d, rand.N(jitter))
	}
	return max(d, time.Millisecond)
}

func addSat(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}
