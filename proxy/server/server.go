// Package server assembles the proxy in data-flow order — listeners ->
// connection managers -> routes -> clusters — from a snapshot, runs it, and
// drains it. It also serves the admin API's view of the running proxy.
package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/admin"
	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/snapshot"
	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
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
}

// Server is one running proxy.
type Server struct {
	log     hclog.Logger
	opts    Options
	metrics *telemetry.Metrics
	logs    *accessLogs
	cls     *cluster.Manager
	admin   *admin.Server
	level   atomic.Value // string

	mu        sync.Mutex
	listeners []*liveListener
	snap      *snapshot.Snapshot

	ready    atomic.Bool
	draining atomic.Bool
	drainReq chan struct{}
	drainOne sync.Once
	quit     chan struct{}
	quitOne  sync.Once
}

type liveListener struct {
	l        *listener.Listener
	handlers []*hcm.Handler
	done     chan error
}

// Servable reports whether this build can run b: a bootstrap that decodes
// and validates may still ask for something the server cannot do yet.
func Servable(b *bootstrap.Bootstrap) error {
	if b.ADS != nil {
		return errors.New("dynamic_resources: the ADS client is not implemented yet; " +
			"use static_resources (xDS arrives with outrigger-cp)")
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
		cls:      cluster.NewManager(o.Logger),
		drainReq: make(chan struct{}),
		quit:     make(chan struct{}),
	}
	s.level.Store(levelName(o.Logger.GetLevel()))
	s.metrics.SetSources(s.downstreamCounts, s.upstreamCounts)
	s.metrics.SetServerState(telemetry.StateInitializing)
	b := o.Bootstrap
	if b.Admin != "" {
		a, err := admin.New(b.Admin, o.AdminAllowNonLoopback, s, o.Logger)
		if err != nil {
			return nil, err
		}
		s.admin = a
	}
	if b.Static != nil {
		if err := s.Apply(b.Static); err != nil {
			s.closeAll()
			return nil, err
		}
	}
	return s, nil
}

// Apply puts a snapshot in force: clusters first (so routes never point at
// a missing cluster), then listeners. Cluster state survives for names
// that stay.
func (s *Server) Apply(snap *snapshot.Snapshot) error {
	if err := snap.Consistent(); err != nil {
		s.metrics.ConfigUpdate(false)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap != nil {
		// Listener and route updates arrive with the xDS client (control
		// plane issue); a static bootstrap is applied once.
		s.metrics.ConfigUpdate(false)
		return errors.New("server: live configuration updates are not supported yet")
	}
	if err := s.cls.Update(snap.Clusters); err != nil {
		s.metrics.ConfigUpdate(false)
		return fmt.Errorf("clusters: %w", err)
	}

	var started []*liveListener
	for i := range snap.Listeners {
		ll, err := s.buildListener(&snap.Listeners[i], snap)
		if err != nil {
			for _, l := range started {
				_ = l.l.Close()
			}
			s.metrics.ConfigUpdate(false)
			return err
		}
		started = append(started, ll)
	}
	s.listeners = started
	s.snap = snap
	names := make([]string, 0, len(snap.Listeners))
	for _, l := range snap.Listeners {
		names = append(names, l.Config.Name)
	}
	s.metrics.RetainListeners(names)
	s.metrics.ConfigUpdate(true)
	return nil
}

// buildListener makes a connection manager per filter chain and binds.
func (s *Server) buildListener(sl *snapshot.Listener, snap *snapshot.Snapshot) (*liveListener, error) {
	cfg := sl.Config
	cfg.FilterChains = append([]listener.FilterChain(nil), cfg.FilterChains...)
	ll := &liveListener{done: make(chan error, 1)}
	stats := s.metrics.Listener(cfg.Name)
	build := func(fc *listener.FilterChain, hc *hcm.Config) error {
		h, err := s.buildHCM(cfg.Name, fc.TLS != nil, hc, snap, stats)
		if err != nil {
			return fmt.Errorf("listener %q chain %q: %w", cfg.Name, fc.Name, err)
		}
		fc.Handler = h
		ll.handlers = append(ll.handlers, h)
		return nil
	}
	for i := range cfg.FilterChains {
		if i >= len(sl.HTTP) {
			return nil, fmt.Errorf("listener %q chain %d: no HTTP connection manager", cfg.Name, i)
		}
		if err := build(&cfg.FilterChains[i], &sl.HTTP[i]); err != nil {
			return nil, err
		}
	}
	if cfg.DefaultChain != nil {
		dc := *cfg.DefaultChain
		if sl.DefaultHTTP == nil {
			return nil, fmt.Errorf("listener %q default chain: no HTTP connection manager", cfg.Name)
		}
		if err := build(&dc, sl.DefaultHTTP); err != nil {
			return nil, err
		}
		cfg.DefaultChain = &dc
	}
	l, err := listener.New(cfg, s.log)
	if err != nil {
		return nil, err
	}
	ll.l = l
	return ll, nil
}

func (s *Server) buildHCM(lname string, tls bool, hc *hcm.Config, snap *snapshot.Snapshot, stats *telemetry.ListenerStats) (*hcm.Handler, error) {
	rc := hc.Routes
	if rc == nil && hc.RDSName != "" {
		rc = snap.Routes[hc.RDSName]
	}
	var table *router.Table
	if rc != nil {
		t, err := router.New(rc)
		if err != nil {
			return nil, fmt.Errorf("route config %q: %w", rc.Name, err)
		}
		table = t
	}
	var logs []*telemetry.AccessLogger
	for _, al := range hc.AccessLogs {
		l, err := s.logs.get(al.Path)
		if err != nil {
			return nil, err
		}
		logs = append(logs, l)
	}
	return hcm.New(*hc, table, hcm.Deps{
		Clusters: clusterSource{s.cls},
		Classify: classify,
		Logs:     logs,
		Observer: listenerObserver{stats},
		Listener: lname,
		TLS:      tls,
	}), nil
}

// Run serves until ctx ends, /quitquitquit, or a listener fails; then it
// drains for DrainTimeout and closes everything.
func (s *Server) Run(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var adminDone chan error
	if s.admin != nil {
		adminDone = make(chan error, 1)
		go func() { adminDone <- s.admin.Serve(runCtx) }()
		s.log.Info("admin listening", "address", s.admin.Addr().String())
	}
	// Like Envoy, listeners open only once every cluster has its first
	// hosts (DNS clusters resolve once before traffic).
	wctx, wcancel := context.WithTimeout(ctx, clusterInitTimeout)
	if err := s.cls.WaitReady(wctx); err != nil {
		s.log.Warn("serving before every cluster resolved", "error", err)
	}
	wcancel()
	s.mu.Lock()
	lls := s.listeners
	s.mu.Unlock()
	for _, ll := range lls {
		go func() { ll.done <- ll.l.Serve(runCtx) }()
		s.log.Info("listener serving", "address", ll.l.Addr().String())
	}
	s.ready.Store(true)
	s.metrics.SetServerState(telemetry.StateLive)

	var failed error
	fail := make(chan error, len(lls))
	for _, ll := range lls {
		go func() {
			if err := <-ll.done; err != nil {
				fail <- err
			}
			close(ll.done)
		}()
	}
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
	case failed = <-fail:
		s.log.Error("listener failed", "error", failed)
	}
	s.drain()
	s.closeAll()
	cancel()
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
	s.log.Info("drained", "took", time.Since(start).Round(time.Millisecond).String())
}

func (s *Server) closeAll() {
	s.mu.Lock()
	lls := s.listeners
	s.mu.Unlock()
	for _, ll := range lls {
		_ = ll.l.Close()
	}
	if s.admin != nil {
		_ = s.admin.Close()
	}
	s.cls.Close()
	s.logs.closeAll()
}

// Listeners returns the bound addresses by listener name (tests, logs).
func (s *Server) Listeners() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for i, ll := range s.listeners {
		out[s.snap.Listeners[i].Config.Name] = ll.l.Addr().String()
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
