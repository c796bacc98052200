// Package server assembles the proxy in data-flow order — listeners ->
// connection managers -> routes -> clusters — from a snapshot, runs it, and
// drains it. It also serves the admin API's view of the running proxy.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/admin"
	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/h3"
	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/snapshot"
	"github.com/outrigger-mesh/outrigger/proxy/tcpproxy"
	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
	"github.com/outrigger-mesh/outrigger/proxy/tracing"
	"github.com/outrigger-mesh/outrigger/xds/client"
)

// clusterInitTimeout bounds the wait for DNS clusters' first resolution.
const clusterInitTimeout = 15 * time.Second

// Options configure a Server.
type Options struct {
	Logger    hclog.Logger
	Bootstrap *bootstrap.Bootstrap
	// DrainTimeout is how long in-flight requests get on shutdown.
	DrainTimeout time.Duration
	// AdminAllowNonLoopback lets the admin API bind a non-loopback address.
	AdminAllowNonLoopback bool
	// Version is the build's version, sent to xDS servers.
	Version string
}

// Server is one running proxy.
type Server struct {
	log     hclog.Logger
	opts    Options
	metrics *telemetry.Metrics
	logs    *accessLogs
	cls     *cluster.Manager
	tcp     *tcpStats
	tracing *tracing.Registry
	admin   *admin.Server
	level   atomic.Value // string

	dynamic bool          // dynamic_resources: the xDS client feeds Apply
	synced  chan struct{} // closed once the first full config is in force
	syncOne sync.Once
	ads     atomic.Pointer[client.Client] // nil without dynamic_resources

	mu           sync.Mutex
	listeners    []*liveListener // in force, in configuration order
	retiring     map[*liveListener]struct{}
	retiringWG   sync.WaitGroup
	snap         *snapshot.Snapshot
	running      bool // Run has started the listeners
	runCtx       context.Context
	closed       bool
	drainStarted bool
	fail         chan error // the first accept failure

	ready    atomic.Bool
	draining atomic.Bool
	drainReq chan struct{}
	drainOne sync.Once
	quit     chan struct{}
	quitOne  sync.Once
}

type liveListener struct {
	name        string
	fingerprint string
	address     string // the configured address ("host:0" binds anew)
	l           boundListener
	quic        bool           // l is an HTTP/3 listener (a quicListener)
	handlers    []*hcm.Handler // the HTTP chains' (TCP proxy chains have none)
	rds         []string       // each handler's RDS name, "" for an inline table
	// connFilters are the chains' network filters, for their counters.
	connFilters []listener.ConnFilter
}

// boundListener is a listener the server runs: a TCP *listener.Listener
// or an HTTP/3 listener (UDP, QUIC; a quicListener).
type boundListener interface {
	Addr() net.Addr
	Serve(ctx context.Context) error
	Shutdown(ctx context.Context) error
	Close() error
	Stats() listener.Stats
}

// quicListener adapts an HTTP/3 listener to boundListener.
type quicListener struct{ *h3.Listener }

// Stats reports the counters HTTP/3 has in the TCP listeners' shape.
func (q quicListener) Stats() listener.Stats {
	st := q.Listener.Stats()
	return listener.Stats{DownstreamCxTotal: st.DownstreamCxTotal, DownstreamCxActive: st.DownstreamCxActive}
}

// Servable reports whether this build can run b: a bootstrap that decodes
// and validates may still ask for something the server cannot do yet.
func Servable(b *bootstrap.Bootstrap) error {
	if b.ADS != nil && b.ADS.Cluster == "" && b.ADS.Target == "" {
		return errors.New("dynamic_resources.ads_config: no xDS server: give envoy_grpc.cluster_name or google_grpc.target_uri")
	}
	return nil
}

// New builds the server from a bootstrap and binds every listener and the
// admin address, so a busy port fails here rather than later.
func New(o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if err := Servable(o.Bootstrap); err != nil {
		return nil, err
	}
	s := &Server{
		log:      o.Logger,
		opts:     o,
		metrics:  telemetry.NewMetrics(),
		logs:     newAccessLogs(),
		tcp:      newTCPStats(),
		cls:      cluster.NewManager(o.Logger),
		drainReq: make(chan struct{}),
		quit:     make(chan struct{}),
		retiring: map[*liveListener]struct{}{},
		fail:     make(chan error, 1),
		synced:   make(chan struct{}),
		dynamic:  o.Bootstrap.ADS != nil,
	}
	s.tracing = tracing.NewRegistry(clusterDialer(s.cls), o.Logger.Named("tracing"))
	s.level.Store(levelName(o.Logger.GetLevel()))
	s.metrics.SetSources(s.downstreamCounts, s.upstreamCounts)
	s.metrics.Registry().MustRegister(s.tcp)
	s.metrics.SetServerState(telemetry.StateInitializing)
	b := o.Bootstrap
	if b.Admin != "" {
		a, err := admin.New(b.Admin, o.AdminAllowNonLoopback, s, o.Logger)
		if err != nil {
			return nil, err
		}
		s.admin = a
	}
	if b.Static != nil && b.Static.Secrets != nil {
		// File-sourced secrets log reload problems through it.
		b.Static.Secrets.SetLogger(o.Logger.Named("secret"))
	}
	if b.Static != nil {
		if err := s.Apply(b.Static); err != nil {
			s.closeAll()
			return nil, err
		}
	}
	if !s.dynamic {
		close(s.synced)
	}
	return s, nil
}

// Apply puts a snapshot in force, keeping what did not change: clusters
// are updated first (their pools and hosts survive when the name stays),
// then listeners — an unchanged listener only gets its RDS tables
// swapped, a changed one hands its socket to its successor and drains its
// connections, a removed one drains, a new one binds. On any error the
// listeners in force stay as they were.
func (s *Server) Apply(snap *snapshot.Snapshot) error {
	if err := s.apply(snap); err != nil {
		s.metrics.ConfigUpdate(false)
		return err
	}
	s.metrics.ConfigUpdate(true)
	return nil
}

// change is one listener's part of an Apply.
type change struct {
	next *liveListener
	old  *liveListener // the listener it replaces, nil for a new name
	cfg  listener.Config
	h3   h3.Config // an HTTP/3 listener's, with its chain's handler
	keep bool      // unchanged: next is old with new route tables
	// inPlace: an HTTP/3 listener on old's socket, updated for new
	// connections (old's connections keep their config).
	inPlace bool
	// tables holds the RDS route table for each of old's handlers when keep.
	tables []*router.Table
}

func (s *Server) apply(snap *snapshot.Snapshot) error {
	if err := snap.Consistent(); err != nil {
		var ie *snapshot.InconsistentError
		// Over xDS a route may name a cluster not sent yet (503 until it
		// arrives) and a route table may still be warming, as in Envoy.
		if !s.dynamic || !errors.As(err, &ie) || len(ie.Duplicates) > 0 {
			return err
		}
		s.log.Debug("applying a configuration with references still unresolved", "detail", err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.drainStarted {
		return errors.New("server: draining; configuration updates are refused")
	}
	byName := make(map[string]*liveListener, len(s.listeners))
	for _, ll := range s.listeners {
		byName[ll.name] = ll
	}

	// Prepare everything that can fail before touching what runs.
	var changes []*change
	var bound []boundListener
	undo := func() {
		for _, l := range bound {
			_ = l.Close()
		}
	}
	for i := range snap.Listeners {
		sl := &snap.Listeners[i]
		old := byName[sl.Config.Name]
		ch := &change{old: old}
		if old != nil && old.fingerprint == sl.Fingerprint {
			ch.keep = true
			for _, name := range old.rds {
				var t *router.Table
				if name != "" {
					var err error
					if t, err = routeTable(snap.Routes[name]); err != nil {
						undo()
						return fmt.Errorf("listener %q: %w", sl.Config.Name, err)
					}
				}
				ch.tables = append(ch.tables, t)
			}
			changes = append(changes, ch)
			continue
		}
		next, cfg, err := s.buildListener(sl, snap)
		if err != nil {
			undo()
			return err
		}
		ch.next, ch.cfg = next, cfg
		if sl.QUIC != nil {
			ch.h3 = *sl.QUIC
			ch.h3.Handler = cfg.FilterChains[0].Handler
			// Several chains (picked by SNI): each gets its own handler.
			ch.h3.Chains = slices.Clone(ch.h3.Chains)
			for i := range ch.h3.Chains {
				ch.h3.Chains[i].Handler = cfg.FilterChains[i].Handler
			}
		}
		rebind := old == nil || old.address != sl.Config.Address || strings.HasSuffix(sl.Config.Address, ":0") || old.quic != next.quic
		switch {
		case rebind && next.quic:
			l, err := h3.New(ch.h3, s.log)
			if err != nil {
				undo()
				return err
			}
			bound = append(bound, quicListener{l})
			next.l = quicListener{l}
		case rebind:
			l, err := listener.New(cfg, s.log)
			if err != nil {
				undo()
				return err
			}
			bound = append(bound, l)
			next.l = l
		case next.quic:
			// A UDP socket cannot be handed over while its QUIC
			// connections drain: the same socket serves on with the new
			// config for new connections.
			if err := old.l.(quicListener).CanUpdate(ch.h3); err != nil {
				undo()
				if errors.Is(err, h3.ErrRebind) {
					return fmt.Errorf("listener %q: the QUIC settings (quic_options, enable_early_data, max_request_headers_kb) cannot change in place; "+
						"remove the listener and add it again, or give it a new address", sl.Config.Name)
				}
				return fmt.Errorf("listener %q: %w", sl.Config.Name, err)
			}
			ch.inPlace = true
		default:
			if err := cfg.Validate(); err != nil {
				undo()
				return fmt.Errorf("listener %q: %w", sl.Config.Name, err)
			}
		}
		changes = append(changes, ch)
	}
	// Clusters in two steps: first add and update while keeping the ones
	// about to go, so a request still routed by the old tables never meets
	// a missing cluster; remove them once the new tables are in force.
	if err := s.cls.Update(withRetiring(snap.Clusters, s.snap)); err != nil {
		undo()
		return fmt.Errorf("clusters: %w", err)
	}

	// Commit: nothing below fails.
	kept := map[*liveListener]bool{}
	live := make([]*liveListener, 0, len(changes))
	for _, ch := range changes {
		if ch.keep {
			for i, t := range ch.tables {
				if ch.old.rds[i] != "" {
					ch.old.handlers[i].SetRoutes(t)
				}
			}
			kept[ch.old] = true
			live = append(live, ch.old)
			continue
		}
		if ch.inPlace {
			q := ch.old.l.(quicListener)
			if err := q.Update(ch.h3); err != nil { // checked above; cannot happen
				panic(err)
			}
			ch.next.l = q
			kept[ch.old] = true // its socket serves on: not retired
			live = append(live, ch.next)
			s.log.Info("listener updated", "listener", ch.next.name, "address", q.Addr().String())
			continue
		}
		if ch.next.l == nil { // same address: take the old socket over
			l, err := listener.Adopt(ch.cfg, ch.old.l.(*listener.Listener).Detach(), s.log)
			if err != nil { // validated above; cannot happen
				panic(err)
			}
			ch.next.l = l
			s.log.Info("listener updated", "listener", ch.next.name, "address", l.Addr().String())
		} else if s.running {
			s.log.Info("listener added", "listener", ch.next.name, "address", ch.next.l.Addr().String())
		}
		live = append(live, ch.next)
		if s.running {
			s.serve(ch.next)
		}
	}
	for _, ll := range s.listeners {
		if !kept[ll] {
			if !slices.ContainsFunc(live, func(l *liveListener) bool { return l.name == ll.name }) {
				s.log.Info("listener removed; draining", "listener", ll.name)
			}
			s.retire(ll)
		}
	}
	s.listeners = live
	s.snap = snap
	if err := s.cls.Update(snap.Clusters); err != nil { // validated above: removals only
		s.log.Error("removing retired clusters failed", "error", err)
	}
	names := make([]string, 0, len(live))
	for _, ll := range live {
		names = append(names, ll.name)
	}
	s.metrics.RetainListeners(names)
	return nil
}

// withRetiring is next plus the clusters of prev that next drops.
func withRetiring(next []cluster.Config, prev *snapshot.Snapshot) []cluster.Config {
	if prev == nil {
		return next
	}
	names := make(map[string]bool, len(next))
	for _, c := range next {
		names[c.Name] = true
	}
	out := slices.Clip(next) // appending copies: next's array stays as it is
	for _, c := range prev.Clusters {
		if !names[c.Name] {
			out = append(out, c)
		}
	}
	return out
}

// retire drains a listener that left the configuration (or was replaced)
// for at most DrainTimeout, in the background. Called with mu held.
func (s *Server) retire(ll *liveListener) {
	s.retiring[ll] = struct{}{}
	s.retiringWG.Add(1)
	go func() {
		defer s.retiringWG.Done()
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.DrainTimeout)
		defer cancel()
		if err := ll.l.Shutdown(ctx); err != nil {
			s.log.Warn("drain of a retired listener cut short", "listener", ll.name, "error", err)
		}
		s.mu.Lock()
		delete(s.retiring, ll)
		s.mu.Unlock()
	}()
}

// serve runs a listener until it is shut down; an accept failure stops
// the server. Called with mu held, once Run has started.
func (s *Server) serve(ll *liveListener) {
	go func() {
		if err := ll.l.Serve(s.runCtx); err != nil {
			select {
			case s.fail <- err:
			default:
			}
		}
	}()
}

func routeTable(rc *router.Config) (*router.Table, error) {
	if rc == nil {
		return nil, nil // still warming: every request gets 404 NR until it comes
	}
	t, err := router.New(rc)
	if err != nil {
		return nil, fmt.Errorf("route config %q: %w", rc.Name, err)
	}
	return t, nil
}

// buildListener makes a connection manager per filter chain; the caller
// binds (or adopts a socket for) the returned config.
func (s *Server) buildListener(sl *snapshot.Listener, snap *snapshot.Snapshot) (*liveListener, listener.Config, error) {
	cfg := sl.Config
	cfg.FilterChains = append([]listener.FilterChain(nil), cfg.FilterChains...)
	ll := &liveListener{name: cfg.Name, fingerprint: sl.Fingerprint, address: cfg.Address, quic: sl.QUIC != nil}
	stats := s.metrics.Listener(cfg.Name)
	setFilterLoggers(s.log, cfg.Name, cfg.FilterChains, sl)
	build := func(fc *listener.FilterChain, hc *hcm.Config) error {
		h, err := s.buildHCM(cfg.Name, fc.TLS, hc, snap, stats)
		if err != nil {
			return fmt.Errorf("listener %q chain %q: %w", cfg.Name, fc.Name, err)
		}
		fc.Handler = h
		ll.handlers = append(ll.handlers, h)
		rds := ""
		if hc.Routes == nil {
			rds = hc.RDSName
		}
		ll.rds = append(ll.rds, rds)
		return nil
	}
	for i := range cfg.FilterChains {
		fc := &cfg.FilterChains[i]
		ll.connFilters = append(ll.connFilters, fc.ConnFilters...)
		if fc.TCPProxy != nil {
			if err := s.buildTCP(cfg.Name, fc); err != nil {
				return nil, cfg, err
			}
			continue
		}
		if i >= len(sl.HTTP) {
			return nil, cfg, fmt.Errorf("listener %q chain %d: no HTTP connection manager", cfg.Name, i)
		}
		if err := build(fc, &sl.HTTP[i]); err != nil {
			return nil, cfg, err
		}
	}
	if cfg.DefaultChain != nil {
		dc := *cfg.DefaultChain
		ll.connFilters = append(ll.connFilters, dc.ConnFilters...)
		switch {
		case dc.TCPProxy != nil:
			if err := s.buildTCP(cfg.Name, &dc); err != nil {
				return nil, cfg, err
			}
		case sl.DefaultHTTP == nil:
			return nil, cfg, fmt.Errorf("listener %q default chain: no HTTP connection manager", cfg.Name)
		default:
			if err := build(&dc, sl.DefaultHTTP); err != nil {
				return nil, cfg, err
			}
		}
		cfg.DefaultChain = &dc
	}
	return ll, cfg, nil
}

// buildTCP makes the TCP proxy of a chain whose network filter is
// tcp_proxy. It finds its clusters by name per connection, so a cluster
// update reaches it without rebuilding the listener.
func (s *Server) buildTCP(lname string, fc *listener.FilterChain) error {
	cfg := *fc.TCPProxy
	var logs []*telemetry.AccessLogger
	for _, al := range cfg.AccessLogs {
		l, err := s.logs.get(al.Path)
		if err != nil {
			return fmt.Errorf("listener %q chain %q: %w", lname, fc.Name, err)
		}
		logs = append(logs, l.WithFormat(al.Format))
	}
	p, err := tcpproxy.New(cfg, tcpproxy.Deps{
		Clusters: s.cls,
		Logs:     logs,
		Stats:    s.tcp.stats(cfg.StatPrefix),
		Listener: lname,
		Logger:   s.log,
	})
	if err != nil {
		return fmt.Errorf("listener %q chain %q: %w", lname, fc.Name, err)
	}
	fc.TCP = p
	return nil
}

func (s *Server) buildHCM(lname string, tlsCfg *tls.Config, hc *hcm.Config, snap *snapshot.Snapshot, stats *telemetry.ListenerStats) (*hcm.Handler, error) {
	rc := hc.Routes
	if rc == nil && hc.RDSName != "" {
		rc = snap.Routes[hc.RDSName]
	}
	table, err := routeTable(rc)
	if err != nil {
		return nil, err
	}
	var logs []*telemetry.AccessLogger
	for _, al := range hc.AccessLogs {
		l, err := s.logs.get(al.Path)
		if err != nil {
			return nil, err
		}
		logs = append(logs, l.WithFormat(al.Format))
	}
	var tracer *tracing.Tracer
	if hc.Tracing != nil {
		if tracer, err = s.tracing.Tracer(*hc.Tracing); err != nil {
			return nil, err
		}
	}
	return hcm.New(*hc, table, hcm.Deps{
		Clusters: clusterSource{s.cls},
		Classify: classify,
		Logs:     logs,
		Observer: listenerObserver{stats},
		Listener: lname,
		TLS:      tlsCfg != nil,
		Tracer:   tracer,

		LocalCertificate: localCertificate(tlsCfg),
	}), nil
}

// Run serves until ctx ends, /quitquitquit, or a listener fails; then it
// drains for DrainTimeout and closes everything. With dynamic_resources it
// also runs the xDS client: the proxy reports ready once the first complete
// configuration from the server is in force (or initial_fetch_timeout
// passed), and keeps its last good configuration when the server goes away.
func (s *Server) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var adminDone chan error
	if s.admin != nil {
		adminDone = make(chan error, 1)
		go func() { adminDone <- s.admin.Serve(runCtx) }()
		s.log.Info("admin listening", "address", s.admin.Addr().String())
	}
	var adsDone chan error
	if s.dynamic {
		adsDone = make(chan error, 1)
		go func() { adsDone <- s.runADS(runCtx) }()
	}
	// Like Envoy, listeners open only once every cluster has its first
	// hosts (DNS clusters resolve once before traffic).
	wctx, wcancel := context.WithTimeout(ctx, clusterInitTimeout)
	if err := s.cls.WaitReady(wctx); err != nil {
		s.log.Warn("serving before every cluster resolved", "error", err)
	}
	wcancel()
	s.mu.Lock()
	s.runCtx = runCtx
	s.running = true
	for _, ll := range s.listeners {
		s.serve(ll)
		s.log.Info("listener serving", "listener", ll.name, "address", ll.l.Addr().String())
	}
	s.mu.Unlock()
	s.ready.Store(true) // listeners serve; Ready also waits for the first xDS config
	go func() {
		select {
		case <-s.synced:
			s.metrics.SetServerState(telemetry.StateLive)
		case <-runCtx.Done():
		}
	}()

	var failed error
	select {
	case <-ctx.Done():
		s.log.Info("shutting down: signal")
	case <-s.quit:
		s.log.Info("shutting down: /quitquitquit")
	case <-s.drainReq:
		s.log.Info("draining listeners on request")
		s.drain()
		select {
		case <-ctx.Done():
		case <-s.quit:
		}
	case failed = <-s.fail:
		s.log.Error("listener failed", "error", failed)
	}
	s.drain()
	cancel() // stops the xDS client before listeners close for good
	if adsDone != nil {
		<-adsDone
	}
	s.closeAll()
	if adminDone != nil {
		<-adminDone
	}
	return failed
}

// drain stops accepting and lets in-flight requests finish, at most
// DrainTimeout.
func (s *Server) drain() {
	if !s.draining.CompareAndSwap(false, true) {
		return
	}
	s.metrics.SetServerState(telemetry.StateDraining)
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.DrainTimeout)
	defer cancel()
	s.mu.Lock()
	s.drainStarted = true
	lls := s.listeners
	s.mu.Unlock()
	start := time.Now()
	var wg sync.WaitGroup
	for _, ll := range lls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ll.l.Shutdown(ctx); err != nil {
				s.log.Warn("drain cut short", "error", err)
			}
		}()
	}
	wg.Wait()
	retired := make(chan struct{})
	go func() { s.retiringWG.Wait(); close(retired) }()
	select {
	case <-retired:
	case <-ctx.Done():
	}
	s.log.Info("drained", "took", time.Since(start).Round(time.Millisecond).String())
}

func (s *Server) closeAll() {
	s.mu.Lock()
	s.closed = true
	lls := append([]*liveListener(nil), s.listeners...)
	for ll := range s.retiring {
		lls = append(lls, ll)
	}
	s.mu.Unlock()
	for _, ll := range lls {
		_ = ll.l.Close()
	}
	if s.admin != nil {
		_ = s.admin.Close()
	}
	// Spans of the last requests are flushed before the clusters the
	// exporters dial through go away.
	ctx, cancel := context.WithTimeout(context.Background(), tracingFlushTimeout)
	if err := s.tracing.Shutdown(ctx); err != nil {
		s.log.Warn("tracing: flushing spans on shutdown", "error", err)
	}
	cancel()
	s.cls.Close()
	s.logs.closeAll()
}

// tracingFlushTimeout bounds the span flush on shutdown.
const tracingFlushTimeout = 5 * time.Second

// Listeners returns the bound addresses by listener name (tests, logs).
func (s *Server) Listeners() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, ll := range s.listeners {
		out[ll.name] = ll.l.Addr().String()
	}
	return out
}

// AdminAddr is the admin API's bound address, "" without one.
func (s *Server) AdminAddr() string {
	if s.admin == nil {
		return ""
	}
	return s.admin.Addr().String()
}

// Metrics exposes the registry (tests).
func (s *Server) Metrics() *telemetry.Metrics { return s.metrics }
