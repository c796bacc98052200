package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/transport"
)

// healthWarmTimeout bounds how long a new cluster with health checks waits
// for their first results before it counts as ready.
const healthWarmTimeout = 10 * time.Second

// Manager owns every cluster: it applies config updates, keeps the state
// of clusters whose name stays, and owns their DNS goroutines and pools.
type Manager struct {
	log      hclog.Logger
	resolver Resolver

	clusters atomic.Pointer[map[string]*Cluster]

	mu     sync.Mutex // serializes Update and Close
	closed bool
	stop   chan struct{} // ends the retry-budget ticker
	ticker sync.WaitGroup
}

// Option configures a Manager.
type Option func(*Manager)

// WithResolver replaces net.DefaultResolver for the DNS cluster kinds.
func WithResolver(r Resolver) Option { return func(m *Manager) { m.resolver = r } }

// NewManager returns a manager with no clusters.
func NewManager(logger hclog.Logger, opts ...Option) *Manager {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	m := &Manager{log: logger.Named("cluster"), resolver: net.DefaultResolver}
	for _, o := range opts {
		o(m)
	}
	m.clusters.Store(&map[string]*Cluster{})
	m.stop = make(chan struct{})
	m.ticker.Add(1)
	go func() {
		defer m.ticker.Done()
		m.budgetTicker(m.stop)
	}()
	return m
}

// Get returns the named cluster or nil. It takes no lock.
func (m *Manager) Get(name string) *Cluster { return (*m.clusters.Load())[name] }

// Clusters returns every cluster, sorted by name.
func (m *Manager) Clusters() []*Cluster {
	cs := *m.clusters.Load()
	names := slices.Sorted(maps.Keys(cs))
	out := make([]*Cluster, len(names))
	for i, n := range names {
		out[i] = cs[n]
	}
	return out
}

// Update makes cfgs the set of clusters: new names are added, missing ones
// removed (their pools close once idle), and a cluster whose name stays
// keeps its hosts' counters and health, its resolved addresses and, unless
// a transport setting changed, its connection pool. Every config is
// validated first; on any error nothing changes.
func (m *Manager) Update(cfgs []Config) error {
	var errs []error
	seen := make(map[string]bool, len(cfgs))
	for i := range cfgs {
		if err := cfgs[i].Validate(); err != nil {
			errs = append(errs, err)
		}
		if seen[cfgs[i].Name] {
			errs = append(errs, fmt.Errorf("cluster %q: duplicate name", cfgs[i].Name))
		}
		seen[cfgs[i].Name] = true
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("cluster manager is closed")
	}
	old := *m.clusters.Load()
	next := make(map[string]*Cluster, len(cfgs))
	for i := range cfgs {
		cfg := cfgs[i] // the cluster keeps its own copy
		if c := old[cfg.Name]; c != nil {
			if err := c.update(m.resolver, &cfg); err != nil {
				return err
			}
			next[cfg.Name] = c
			continue
		}
		c, err := m.newCluster(&cfg)
		if err != nil {
			return err
		}
		next[cfg.Name] = c
	}
	m.clusters.Store(&next)
	for name, c := range old {
		if next[name] == nil {
			c.stop()
			m.log.Info("cluster removed", "cluster", name)
		}
	}
	return nil
}

// WaitReady waits until every current cluster knows its hosts.
func (m *Manager) WaitReady(ctx context.Context) error {
	for _, c := range m.Clusters() {
		select {
		case <-c.Ready():
		case <-ctx.Done():
			return fmt.Errorf("cluster %q not ready: %w", c.name, ctx.Err())
		}
	}
	return nil
}

// Close stops every DNS goroutine, waits for them, and closes idle
// connections; requests in flight finish and then close theirs.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.closed = true
	close(m.stop)
	m.ticker.Wait()
	for _, c := range *m.clusters.Load() {
		c.stop()
	}
	m.clusters.Store(&map[string]*Cluster{})
}

func (m *Manager) newCluster(cfg *Config) (*Cluster, error) {
	c := &Cluster{
		name:  cfg.Name,
		log:   m.log.With("cluster", cfg.Name),
		ready: make(chan struct{}),
	}
	empty, _ := newHostSet(nil, nil, nil)
	c.hosts.Store(empty)
	c.retryWindow.record(0, 0, time.Now())
	if err := c.setTransport(cfg); err != nil {
		return nil, err
	}
	c.cfg.Store(cfg)
	c.ewma.Store(cfg.LB.Policy == lb.PeakEWMAPolicy)
	c.setResilience(nil, cfg)
	c.applyDiscovery(m.resolver, cfg)
	m.log.Info("cluster added", "cluster", cfg.Name, "type", cfg.Discovery.String(), "endpoints", len(cfg.Endpoints))
	return c, nil
}

func (c *Cluster) update(r Resolver, cfg *Config) error {
	prev := c.cfg.Load()
	if transportChanged(prev, cfg) {
		if err := c.setTransport(cfg); err != nil {
			return err
		}
		c.log.Info("cluster transport rebuilt; old connections close as their requests end")
	}
	c.cfg.Store(cfg)
	c.ewma.Store(cfg.LB.Policy == lb.PeakEWMAPolicy)
	c.setResilience(prev, cfg)
	if discoveryChanged(prev, cfg) {
		c.stopDNS()
		c.stopOriginalDst(cfg.Discovery == OriginalDst)
		c.applyDiscovery(r, cfg)
	}
	return nil
}

// applyDiscovery publishes static hosts or starts resolving names.
func (c *Cluster) applyDiscovery(r Resolver, cfg *Config) {
	if cfg.Discovery == OriginalDst {
		c.startOriginalDst(cfg)
		return
	}
	if cfg.Discovery == Static || cfg.Discovery == EDS {
		c.hostsMu.Lock()
		c.publishLocked(c.hosts.Load(), staticTargets(cfg.Endpoints), cfg)
		c.hostsMu.Unlock()
		c.markReadyAfterHealthChecks(healthWarmTimeout)
		return
	}
	c.startDNS(r, cfg)
}

func (c *Cluster) setTransport(cfg *Config) error {
	proto := transport.HTTP1
	switch cfg.Protocol {
	case HTTP2:
		proto = transport.HTTP2
	case UseDownstreamProto:
		proto = transport.Downstream
	case HTTP3:
		proto = transport.HTTP3
	}
	tr, err := transport.New(transport.Options{
		Protocol:                 proto,
		TLS:                      cfg.TLS,
		ConnectTimeout:           cfg.connectTimeout(),
		IdleTimeout:              cfg.IdleTimeout,
		MaxRequestsPerConnection: cfg.MaxRequestsPerConnection,
		Conns:                    c,
		MaxConnections:           int(cfg.Thresholds.maxConnections()),
		MaxPendingRequests:       int(cfg.Thresholds.maxPending()),
	})
	if err != nil {
		return fmt.Errorf("cluster %q: %w", cfg.Name, err)
	}
	old := c.gen.Swap(&generation{tr: tr})
	if old != nil {
		old.retire()
	}
	return nil
}

func (c *Cluster) stop() {
	c.stopDNS()
	c.stopOriginalDst(false)
	c.stopResilience()
	c.markReady() // nobody waits forever on a removed cluster
	if g := c.gen.Load(); g != nil {
		g.retire()
	}
}

func transportChanged(a, b *Config) bool {
	return a.Protocol != b.Protocol ||
		a.connectTimeout() != b.connectTimeout() ||
		a.IdleTimeout != b.IdleTimeout ||
		a.MaxRequestsPerConnection != b.MaxRequestsPerConnection ||
		a.Thresholds.maxConnections() != b.Thresholds.maxConnections() ||
		a.Thresholds.maxPending() != b.Thresholds.maxPending() ||
		!sameTLS(a, b)
}

func discoveryChanged(a, b *Config) bool {
	return a.Discovery != b.Discovery ||
		a.DNSFamily != b.DNSFamily ||
		a.dnsRefreshRate() != b.dnsRefreshRate() ||
		a.cleanupInterval() != b.cleanupInterval() ||
		!slices.Equal(a.Endpoints, b.Endpoints)
}

// sameTLS reports whether two configs' upstream TLS is the same: equal
// settings and, for the VerifyConnection callback Go cannot compare, the
// same TLSVerifyKey.
func sameTLS(a, b *Config) bool {
	return tlsEqual(a.TLS, b.TLS, a.TLSVerifyKey != "" && a.TLSVerifyKey == b.TLSVerifyKey)
}

// tlsEqual compares the settings an upstream TLS config is built from, so
// an xDS push that rebuilds an identical config keeps the pool. Callbacks
// cannot be compared: a config with any is equal only to itself, except
// VerifyConnection when sameVerify says both were built by the same rule
// from settings compared here (RootCAs).
func tlsEqual(a, b *tls.Config, sameVerify bool) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil {
		return false
	}
	if !sameVerify && (a.VerifyConnection != nil || b.VerifyConnection != nil) {
		return false
	}
	if (a.VerifyConnection == nil) != (b.VerifyConnection == nil) {
		return false
	}
	if a.GetClientCertificate != nil || b.GetClientCertificate != nil ||
		a.VerifyPeerCertificate != nil || b.VerifyPeerCertificate != nil ||
		a.GetCertificate != nil || b.GetCertificate != nil ||
		a.GetConfigForClient != nil || b.GetConfigForClient != nil {
		return false
	}
	if a.ServerName != b.ServerName || a.InsecureSkipVerify != b.InsecureSkipVerify ||
		a.MinVersion != b.MinVersion || a.MaxVersion != b.MaxVersion ||
		!slices.Equal(a.CipherSuites, b.CipherSuites) ||
		!slices.Equal(a.CurvePreferences, b.CurvePreferences) ||
		!slices.Equal(a.NextProtos, b.NextProtos) {
		return false
	}
	if (a.RootCAs == nil) != (b.RootCAs == nil) || (a.RootCAs != nil && !a.RootCAs.Equal(b.RootCAs)) {
		return false
	}
	if len(a.Certificates) != len(b.Certificates) {
		return false
	}
	for i := range a.Certificates {
		if !slices.EqualFunc(a.Certificates[i].Certificate, b.Certificates[i].Certificate, slices.Equal) {
			return false
		}
	}
	return true
}
