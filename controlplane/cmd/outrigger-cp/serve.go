package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outrigger-mesh/outrigger/controlplane/dashboard"
	"github.com/outrigger-mesh/outrigger/controlplane/model"
	"github.com/outrigger-mesh/outrigger/controlplane/server"
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

// serve runs the watcher into the xDS server, serves xDS on xdsLis, the
// HTTP endpoints on httpLis and the dashboard when dash is not nil, and
// stops everything when ctx ends or any part fails. It returns nil after a
// stop caused by ctx.
func serve(ctx context.Context, logger hclog.Logger, src meshSource, xdsLis, httpLis net.Listener, dash *dashboardConfig) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv := server.New(server.Options{Logger: logger.Named("xds"), Registry: reg})
	httpSrv := &http.Server{Handler: handler(srv, reg), ReadHeaderTimeout: 5 * time.Second}
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
// translated) and /debug/status (the server's Status as JSON).
func handler(srv *server.Server, gatherer prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
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
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(srv.Status()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return mux
}
