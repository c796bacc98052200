package healthcheck

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// Options are what a Checker takes from its cluster.
type Options struct {
	// ClusterName is the default HTTP Host and gRPC authority, as in Envoy.
	ClusterName string
	// TLS is the cluster's upstream TLS, nil for plaintext. Every check kind
	// runs over it, as Envoy runs health checks over the cluster's transport
	// socket. ServerName is the SNI; "" sends none (the host is an IP).
	// The Checker clones it and sets NextProtos for the check's protocol.
	TLS *tls.Config
	// Logger gets one line per healthy/unhealthy transition; nil discards.
	Logger hclog.Logger
	// HasTraffic reports whether the cluster has ever carried traffic (Envoy
	// asks whether upstream_cx_total was ever used). While it reports false,
	// no_traffic_interval applies. nil means the cluster always counts as
	// having traffic. It is called from the checking goroutines.
	HasTraffic func() bool
	// OnPass, if set, is called (under the checker's lock: it must not call
	// back into the Checker) after every passing check of a host that
	// passes all its checks; the cluster tells its outlier detector
	// (successful_active_health_check_uneject_host).
	OnPass func(h *lb.Host)
	// Dial opens the connection of every check; nil uses net.Dialer.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// Checker runs every Config against every host of one cluster: one
// goroutine per host and Config, each on its own timer. A host is healthy
// only when every Config's check says so; while it is not, its
// lb.FailedActiveHC flag is set.
type Checker struct {
	cfgs []Config
	opts Options
	log  hclog.Logger

	stats counters
	wg    sync.WaitGroup
	live  atomic.Int64 // running session goroutines, for tests

	mu          sync.Mutex
	hosts       map[*lb.Host]*hostEntry
	closed      bool
	ready       chan struct{}
	readySet    bool                  // the first SetHosts has happened
	readyWait   map[*session]struct{} // first-SetHosts sessions without a first result
	readyClosed bool

	// onResult, when set (tests), sees every recorded result under mu.
	onResult func(h *lb.Host, cfg int, r result, st CheckStatus)
}

// hostEntry is one checked host: one session per Config.
type hostEntry struct {
	host     *lb.Host
	sessions []*session
	healthy  bool // every session passes
}

// New validates cfgs and returns a Checker with no hosts yet.
func New(cfgs []Config, opts Options) (*Checker, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("healthcheck: no health check configured")
	}
	c := &Checker{
		cfgs:  make([]Config, len(cfgs)),
		opts:  opts,
		log:   opts.Logger,
		hosts: map[*lb.Host]*hostEntry{},
		ready: make(chan struct{}),
	}
	for i := range cfgs {
		if err := cfgs[i].Validate(); err != nil {
			return nil, fmt.Errorf("healthcheck: health_checks[%d]: %w", i, err)
		}
		c.cfgs[i] = cfgs[i].withDefaults()
	}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
	if c.opts.Dial == nil {
		var d net.Dialer
		c.opts.Dial = d.DialContext
	}
	return c, nil
}

// SetHosts makes hosts the set being checked. A host not checked before is
// marked lb.FailedActiveHC at once and checked at once (after
// InitialJitter); its first passing check makes it healthy whatever
// HealthyThreshold says. Hosts no longer listed stop being checked: their
// goroutines end soon after (Close waits for them). Hosts are told apart by
// pointer, so a host the cluster kept across an update keeps its state.
func (c *Checker) SetHosts(hosts []*lb.Host) { c.setHosts(hosts, false) }

// AdoptHosts is SetHosts for a Checker that replaces another (the cluster's
// health checks changed): a host not marked lb.FailedActiveHC starts as
// healthy, its next checks judged by the thresholds, instead of being taken
// out of rotation until its first check passes. Marked hosts start as new.
func (c *Checker) AdoptHosts(hosts []*lb.Host) { c.setHosts(hosts, true) }

func (c *Checker) setHosts(hosts []*lb.Host, adopt bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	keep := make(map[*lb.Host]bool, len(hosts))
	var added []*hostEntry
	for _, h := range hosts {
		if h == nil || keep[h] {
			continue
		}
		keep[h] = true
		if _, ok := c.hosts[h]; ok {
			continue
		}
		healthy := adopt && h.Flags()&lb.FailedActiveHC == 0
		if !healthy {
			h.SetFlag(lb.FailedActiveHC, true)
		}
		e := &hostEntry{host: h, healthy: healthy}
		for i := range c.cfgs {
			s := c.newSession(e, i)
			if healthy {
				s.unhealthy, s.firstCheck = false, false
			}
			e.sessions = append(e.sessions, s)
		}
		c.hosts[h] = e
		added = append(added, e)
	}
	for h, e := range c.hosts {
		if keep[h] {
			continue
		}
		delete(c.hosts, h)
		for _, s := range e.sessions {
			s.cancel()
			delete(c.readyWait, s)
		}
	}
	if !c.readySet {
		c.readySet = true
		c.readyWait = map[*session]struct{}{}
		for _, e := range added {
			for _, s := range e.sessions {
				c.readyWait[s] = struct{}{}
			}
		}
	}
	c.checkReadyLocked()
	for _, e := range added {
		for _, s := range e.sessions {
			c.wg.Add(1)
			c.live.Add(1)
			go s.run()
		}
	}
}

// Ready is closed once every host of the first SetHosts has a first result
// from every Config (or was removed), and by Close. A cluster waits on it
// while warming, bounded by its own timeout.
func (c *Checker) Ready() <-chan struct{} { return c.ready }

func (c *Checker) checkReadyLocked() {
	if c.readySet && !c.readyClosed && len(c.readyWait) == 0 {
		c.readyClosed = true
		close(c.ready)
	}
}

// Close stops every check and waits for its goroutines. Host flags are left
// as they are: a cluster that keeps the hosts without a new Checker clears
// lb.FailedActiveHC itself. Close is idempotent.
func (c *Checker) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		for h, e := range c.hosts {
			for _, s := range e.sessions {
				s.cancel()
			}
			delete(c.hosts, h)
		}
		if !c.readyClosed {
			c.readyClosed = true
			close(c.ready)
		}
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// HostStatus is one host as /clusters shows it.
type HostStatus struct {
	// Known: the host is being checked. The other fields are zero otherwise.
	Known bool
	// Healthy: every check passes.
	Healthy bool
	// LastCheck is when the most recent check of any Config finished.
	LastCheck time.Time
	// LastFailure is the reason of the most recent failed check, "" if none.
	LastFailure string
	// Checks has one entry per Config, in New's order.
	Checks []CheckStatus
}

// CheckStatus is one Config's view of a host.
type CheckStatus struct {
	Kind                 string // "http", "grpc" or "tcp"
	Healthy              bool
	Checked              bool // at least one result
	LastCheck            time.Time
	ConsecutiveSuccesses uint32
	ConsecutiveFailures  uint32
	LastFailure          string
	LastFailureTime      time.Time
}

// Host reports h's health-check state.
func (c *Checker) Host(h *lb.Host) HostStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.hosts[h]
	if !ok {
		return HostStatus{}
	}
	st := HostStatus{Known: true, Healthy: e.healthy}
	var lastFail time.Time
	for _, s := range e.sessions {
		cs := s.statusLocked()
		st.Checks = append(st.Checks, cs)
		if cs.LastCheck.After(st.LastCheck) {
			st.LastCheck = cs.LastCheck
		}
		if cs.LastFailure != "" && cs.LastFailureTime.After(lastFail) {
			lastFail, st.LastFailure = cs.LastFailureTime, cs.LastFailure
		}
	}
	return st
}

// Stats are Envoy's health_check.* stats of a cluster, summed over its
// Configs.
type Stats struct {
	Attempt        uint64 // checks started
	Success        uint64
	Failure        uint64 // every failed check, network ones included
	NetworkFailure uint64 // connection failures and timeouts
	PassiveFailure uint64 // always 0: no passive health checking feeds in
	VerifyCluster  uint64 // always 0: service_name_matcher is not supported
	Healthy        uint64 // gauge: hosts passing every check
	Degraded       uint64 // gauge, always 0: x-envoy-degraded is not read
}

// Map names the stats as Envoy does under "cluster.<name>.".
func (s Stats) Map() map[string]uint64 {
	return map[string]uint64{
		"health_check.attempt":         s.Attempt,
		"health_check.success":         s.Success,
		"health_check.failure":         s.Failure,
		"health_check.network_failure": s.NetworkFailure,
		"health_check.passive_failure": s.PassiveFailure,
		"health_check.verify_cluster":  s.VerifyCluster,
		"health_check.healthy":         s.Healthy,
		"health_check.degraded":        s.Degraded,
	}
}

type counters struct {
	attempt, success, failure, networkFailure atomic.Uint64
}

// Stats reads the counters and counts the healthy hosts.
func (c *Checker) Stats() Stats {
	s := Stats{
		Attempt:        c.stats.attempt.Load(),
		Success:        c.stats.success.Load(),
		Failure:        c.stats.failure.Load(),
		NetworkFailure: c.stats.networkFailure.Load(),
	}
	c.mu.Lock()
	for _, e := range c.hosts {
		if e.healthy {
			s.Healthy++
		}
	}
	c.mu.Unlock()
	return s
}
