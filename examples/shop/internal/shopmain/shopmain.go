// Package shopmain is what every shop service's main shares: settings from
// flags with environment defaults, a slog logger, a stop on SIGINT/SIGTERM,
// the /metrics and /healthz endpoints, and graceful HTTP and gRPC serving.
// It knows nothing of the mesh: a service is told addresses and uses them.
package shopmain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
)

// ShutdownGrace bounds how long in-flight requests may run after a stop
// signal before they are cut off.
const ShutdownGrace = 5 * time.Second

// Env returns the environment variable key, or def when it is unset or
// empty. Services use it for flag defaults, so either can configure them.
func Env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// EnvFloat is Env for a float; a malformed value is an error naming key.
func EnvFloat(key string, def float64) (float64, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("environment %s=%q: %w", key, v, err)
	}
	return f, nil
}

// EnvDuration is Env for a duration; a malformed value is an error naming key.
func EnvDuration(key string, def time.Duration) (time.Duration, error) {
	v := os.Getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("environment %s=%q: %w", key, v, err)
	}
	return d, nil
}

// Logger returns a JSON slog logger tagged with the service name.
func Logger(out io.Writer, service string) *slog.Logger {
	return slog.New(slog.NewJSONHandler(out, &slog.HandlerOptions{Level: slog.LevelInfo})).With("service", service)
}

// Main runs run until SIGINT/SIGTERM and exits non-zero when it fails.
func Main(service string, run func(ctx context.Context, args []string, logger *slog.Logger) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := Logger(os.Stderr, service)
	if err := run(ctx, os.Args[1:], logger); err != nil {
		logger.Error("exiting", "err", err)
		os.Exit(1)
	}
}

// NewRegistry returns a metrics registry with the Go and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// HandleAdmin adds /metrics (from reg) and /healthz to mux. /healthz
// answers 200 "ok" while healthy returns nil, else 503 with the error.
func HandleAdmin(mux *http.ServeMux, reg prometheus.Gatherer, healthy func(context.Context) error) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if healthy != nil {
			if err := healthy(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = io.WriteString(w, "ok\n")
	})
}

// ServeHTTP answers on ln until ctx ends, then shuts down gracefully,
// waiting at most ShutdownGrace for requests in flight. It owns ln.
func ServeHTTP(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "protocol", "http")
	select {
	case err := <-errc:
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), serr)
	}
	if err != nil {
		return fmt.Errorf("shut down http on %s: %w", ln.Addr(), err)
	}
	logger.Info("stopped", "addr", ln.Addr().String())
	return nil
}

// ServeGRPC answers on ln until ctx ends, then stops gracefully, cutting
// off RPCs still running after ShutdownGrace. It owns ln.
func ServeGRPC(ctx context.Context, ln net.Listener, srv *grpc.Server, logger *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "protocol", "grpc")
	select {
	case err := <-errc:
		return fmt.Errorf("serve grpc on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	timer := time.NewTimer(ShutdownGrace)
	defer timer.Stop()
	select {
	case <-stopped:
	case <-timer.C:
		logger.Warn("grace period over, cutting off RPCs", "grace", ShutdownGrace.String())
		srv.Stop()
		<-stopped
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve grpc on %s: %w", ln.Addr(), err)
	}
	logger.Info("stopped", "addr", ln.Addr().String())
	return nil
}

// Listen is net.Listen("tcp", addr) with an error that names the address.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}
