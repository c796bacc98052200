package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outrigger-mesh/outrigger/controlplane/dashboard"
	"github.com/outrigger-mesh/outrigger/controlplane/model"
	"github.com/outrigger-mesh/outrigger/controlplane/server"
	"github.com/outrigger-mesh/outrigger/controlplane/translate"
)

// meshSource is what serve needs of the Consul watcher.
type meshSource interface {
	// Run publishes each new mesh until ctx ends.
	Run(ctx context.Context, publish func(*model.Mesh)) error
	// Up reports whether the last Consul query succeeded.
	Up() bool
}

const (
	// consulUpInterval is how often consul_up follows the watcher between
	// meshes (a Consul outage publishes nothing).
	consulUpInterval = time.Second
	// httpShutdownTimeout bounds the HTTP server's stop.
	httpShutdownTimeout = 5 * time.Second
)

// dashboardConfig is where the dashboard listens and what it reads.
type dashboardConfig struct {
	lis     net.Listener
	catalog dashboard.Catalog
}

// serveConfig is what serve runs besides xDS and the HTTP endpoints.
type serveConfig struct {
	// dash serves the dashboard when not nil.
	dash *dashboardConfig
	// pprof mounts net/http/pprof on the HTTP address.
	pprof bool
	// plaintext turns mesh mTLS and intentions off (-mesh-tls=false).
	plaintext bool
	// queryErrors, when not nil, is the watcher's transport: its failed
	// queries are counted in the server's metrics.
	queryErrors *queryErrors
}

// serve runs the watcher into the xDS server, serves xDS on xdsLis, the
// HTTP endpoints on httpLis and what cfg adds, and stops everything when
// ctx ends or any part fails. It returns nil after a stop caused by ctx.
func serve(ctx context.Context, logger hclog.Logger, src meshSource, xdsLis, httpLis net.Listener, cfg serveConfig) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := server.New(server.Options{Logger: logger.Named("xds"), Registry: reg,
		Translation: translate.Options{Plaintext: cfg.plaintext}})
	if cfg.plaintext {
		logger.Warn("mesh TLS is off (-mesh-tls=false): sidecars talk plaintext and intentions are not enforced")
	}
	if cfg.queryErrors != nil {
		cfg.queryErrors.countInto(srv.ConsulWatchError)
	}
	dash := cfg.dash
	httpSrv := &http.Server{Handler: handler(srv, reg, cfg.pprof), ReadHeaderTimeout: 5 * time.Second}
	servers := []*http.Server{httpSrv}
	listeners := []net.Listener{httpLis}
	if dash != nil {
		d := dashboard.New(dashboard.Options{Catalog: dash.catalog, Status: srv.Status, Logger: logger.Named("dashboard")})
		servers = append(servers, &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second})
		listeners = append(listeners, dash.lis)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		cancel()
	}
	wg.Go(func() {
		published := false
		err := src.Run(ctx, func(m *model.Mesh) {
			if m == nil {
				return
			}
			srv.Update(m)
			srv.SetConsulUp(src.Up())
			if !published {
				published = true
				logger.Info("first mesh from Consul translated; ready", "mesh_index", m.Index)
			}
		})
		if ctx.Err() == nil {
			if err == nil {
				err = errors.New("stopped on its own")
			}
			fail(fmt.Errorf("consul watcher: %w", err))
		}
	})
	wg.Go(func() {
		if err := srv.Run(ctx, xdsLis); err != nil {
			fail(err)
		}
	})
	for i, hs := range servers {
		wg.Go(func() {
			if err := hs.Serve(listeners[i]); !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("http server on %s: %w", listeners[i].Addr(), err))
			}
		})
	}
	wg.Go(func() {
		t := time.NewTicker(consulUpInterval)
		defer t.Stop()
		for {
			srv.SetConsulUp(src.Up())
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	<-ctx.Done()
	logger.Info("stopping")
	sctx, scancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
	defer scancel()
	for _, hs := range servers {
		if err := hs.Shutdown(sctx); err != nil {
			hs.Close()
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// handler serves /metrics, /healthz, /readyz (200 once the first mesh was
// translated), /debug/status (the server's Status as JSON), /debug/proxies
// (the connected clients as JSON) and, with withPprof, Go's profiler under
// /debug/pprof/.
func handler(srv *server.Server, gatherer prometheus.Gatherer, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !srv.Ready() {
			http.Error(w, "not ready: no mesh from Consul yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("GET /debug/status", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, srv.Status())
	})
	mux.HandleFunc("GET /debug/proxies", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, srv.Proxies())
	})
	return mux
}

// writeJSON answers v as indented JSON.
func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}
