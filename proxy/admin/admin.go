// Package admin serves the proxy's admin API in Envoy's shape: /ready,
// /stats/prometheus, /config_dump, /clusters, /logging, /drain_listeners and
// /quitquitquit. It holds no proxy state itself; it asks a Backend.
package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Backend is what the admin API reads and drives. Implementations must be
// safe for concurrent use; every method is called from request goroutines.
type Backend interface {
	// Ready reports that the first full configuration is applied and the
	// listeners serve.
	Ready() bool
	// Draining reports that the proxy is draining; it wins over Ready.
	Draining() bool
	// ConfigDump returns the configuration in force as JSON (protojson).
	ConfigDump() ([]byte, error)
	// Clusters returns the plain-text cluster and host table.
	Clusters() []byte
	// LogLevel returns the current log level name, e.g. "info".
	LogLevel() string
	// SetLogLevel sets the log level; level is one of trace, debug, info,
	// warn, error, off (the admin server validates and normalises it).
	SetLogLevel(level string) error
	// DrainListeners starts draining: stop accepting, close idle
	// connections, let in-flight requests finish. It must not block until
	// the drain completes.
	DrainListeners()
	// Quit asks the process to shut down. It must return promptly: the
	// response is written before it is called, and the process exits after.
	Quit()
	// Gatherer is the metrics registry served on /stats/prometheus.
	Gatherer() prometheus.Gatherer
}

// ErrNonLoopback is returned by New for an address that is not loopback
// when non-loopback binding was not allowed.
var ErrNonLoopback = errors.New("admin address is not a loopback address")

// ErrServing is returned by Serve when it is called a second time.
var ErrServing = errors.New("admin server already served")

const shutdownGrace = 5 * time.Second

// Server is the admin HTTP server. It binds in New so the caller learns of
// a taken port at startup, and serves in Serve.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	logger hclog.Logger

	mu      sync.Mutex
	started bool
	closed  bool
}

// New validates addr and binds it. A non-loopback address (anything but
// 127.0.0.0/8, ::1 or "localhost"; an empty host means every interface)
// is refused with ErrNonLoopback unless allowNonLoopback is set, because
// the admin API can drain and stop the proxy and carries no authentication.
func New(addr string, allowNonLoopback bool, b Backend, logger hclog.Logger) (*Server, error) {
	if b == nil {
		return nil, errors.New("admin: nil backend")
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if err := CheckAddress(addr, allowNonLoopback); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen on %q: %w", addr, err)
	}
	logger = logger.Named("admin")
	s := &Server{ln: ln, logger: logger}
	s.srv = &http.Server{
		Handler:           newHandler(b, logger),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		// A scrape of a big registry is the slowest response we write.
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    60 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	return s, nil
}

// AllowFlag is the command-line flag that lets the admin API bind a
// non-loopback address.
const AllowFlag = "--admin-allow-non-loopback"

// CheckAddress is the admin address rule New applies: a loopback address
// (CheckLoopback), unless allowNonLoopback; the refusal names AllowFlag.
func CheckAddress(addr string, allowNonLoopback bool) error {
	if allowNonLoopback {
		return nil
	}
	if err := CheckLoopback(addr); err != nil {
		return fmt.Errorf("%w, or start outrigger with %s", err, AllowFlag)
	}
	return nil
}

// CheckLoopback returns an error wrapping ErrNonLoopback unless addr
// ("host:port") names a loopback host: an IP in 127.0.0.0/8, ::1 (also as
// ::ffff:127.x.y.z) or "localhost". Other host names are refused rather
// than resolved, since what they resolve to can change.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("admin: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if host == "" {
		return fmt.Errorf("admin: address %q binds every interface: %w; use 127.0.0.1 or ::1", addr, ErrNonLoopback)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("admin: address %q: host %q is not an IP literal or \"localhost\": %w; use 127.0.0.1 or ::1", addr, host, ErrNonLoopback)
	}
	ip = ip.WithZone("").Unmap()
	if ip.IsUnspecified() {
		return fmt.Errorf("admin: address %q binds every interface: %w; use 127.0.0.1 or ::1", addr, ErrNonLoopback)
	}
	if !ip.IsLoopback() {
		return fmt.Errorf("admin: address %q: %w (the admin API can drain and stop the proxy and has no authentication); use 127.0.0.1 or ::1", addr, ErrNonLoopback)
	}
	return nil
}

// Addr is the bound address, with the real port when New got port 0.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers requests until ctx ends or Close is called; then it returns
// nil after in-flight requests finish (up to a few seconds). Any other
// error ends it early. It may be called once.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrServing
	}
	s.started = true
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return nil
	}

	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.logger.Info("admin listening", "address", s.ln.Addr().String())

	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("admin: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		// Grace expired: cut the remaining connections.
		_ = s.srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("admin: serve: %w", err)
	}
	return nil
}

// Close stops the server at once, closing the listener and every
// connection. Serve then returns. Close is safe to call more than once and
// before Serve.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.srv.Close()
	// Serve may never have run, in which case srv does not know the listener.
	if lerr := s.ln.Close(); lerr != nil && !errors.Is(lerr, net.ErrClosed) && err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("admin: close: %w", err)
	}
	return nil
}
