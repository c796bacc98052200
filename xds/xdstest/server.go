package xdstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/log"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/config"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// Server is a go-control-plane ADS server on a loopback port.
type Server struct {
	// Cache is the server's snapshot cache (ADS mode, keyed by node id).
	// Set and SetSnapshot write to it; tests may use it directly, e.g.
	// ClearSnapshot to make a restarted server forget a node.
	Cache cachev3.SnapshotCache

	t      testing.TB
	ctx    context.Context
	cancel context.CancelFunc
	xds    serverv3.Server
	addr   string
	logger *testLogger

	mu        sync.Mutex
	grpc      *grpc.Server
	serveDone chan struct{}
	changed   chan struct{} // closed and replaced on every recorded event
	requests  []Request
	responses []Response
	versions  map[nonceKey]string // response version by stream and nonce
	opened    int
	open      int
}

type nonceKey struct {
	stream int64
	delta  bool
	nonce  string
}

// Option configures Start.
type Option func(*options)

type options struct {
	verbose bool
	xds     []config.XDSOption
}

// Verbose sends go-control-plane's own log lines to t.Logf.
func Verbose() Option { return func(o *options) { o.verbose = true } }

// XDSOptions passes options to go-control-plane's server, e.g.
// config.DeactivateLegacyWildcard().
func XDSOptions(opts ...config.XDSOption) Option {
	return func(o *options) { o.xds = append(o.xds, opts...) }
}

// Start runs a server on 127.0.0.1:0 until t's cleanup.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		t:        t,
		ctx:      ctx,
		cancel:   cancel,
		changed:  make(chan struct{}),
		versions: make(map[nonceKey]string),
		logger:   &testLogger{t: t, on: o.verbose},
	}
	s.Cache = cachev3.NewSnapshotCache(true, cachev3.IDHash{}, s.logger)
	xdsOpts := append([]config.XDSOption{config.XDSOption(func(c *config.Opts) { c.Logger = s.logger })}, o.xds...)
	s.xds = serverv3.NewServer(ctx, s.Cache, s.callbacks(), xdsOpts...)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatalf("xdstest: listen: %v", err)
	}
	s.addr = lis.Addr().String()
	s.serve(lis)
	t.Cleanup(func() {
		s.Stop()
		s.logger.stop()
		cancel()
	})
	return s
}

// Addr is the server's host:port; it stays the same across Restart.
func (s *Server) Addr() string { return s.addr }

// Conn dials the server (plaintext) and closes the connection at cleanup.
// The connection reconnects by itself after Stop and Restart, with a short
// connection backoff (50 ms growing to 500 ms) instead of gRPC's default
// (1 s growing to 2 min) so that tests of reconnection stay quick.
func (s *Server) Conn() *grpc.ClientConn {
	s.t.Helper()
	conn, err := grpc.NewClient(s.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: 2 * time.Second,
		}))
	if err != nil {
		s.t.Fatalf("xdstest: dial %s: %v", s.addr, err)
	}
	s.t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func (s *Server) serve(lis net.Listener) {
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
	done := make(chan struct{})
	s.mu.Lock()
	s.grpc, s.serveDone = g, done
	s.mu.Unlock()
	go func() {
		defer close(done)
		_ = g.Serve(lis)
	}()
}

// Stop closes the listener and every open stream at once, as a control
// plane that crashes would. It is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	g, done := s.grpc, s.serveDone
	s.grpc, s.serveDone = nil, nil
	s.mu.Unlock()
	if g == nil {
		return
	}
	g.Stop()
	<-done
}

// Restart stops the server if it runs and serves again on the same address
// with the same cache, as a control plane that restarts and rebuilds the same
// snapshots would. Clear a node's snapshot through Cache to model one that
// comes back empty.
func (s *Server) Restart() error {
	s.Stop()
	// The port was ours a moment ago; retry briefly in case the kernel is
	// slow to release it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		lis, err := net.Listen("tcp", s.addr)
		if err == nil {
			s.serve(lis)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("xdstest: listen again on %s: %w", s.addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Set replaces the snapshot of node nodeID: every resource given, grouped by
// type, each type at version. Every type the server knows gets the version,
// even with no resources, so that a client subscribed to it gets a (maybe
// empty) answer. Consistency is not checked: in ADS mode go-control-plane
// holds back a state-of-the-world EDS or RDS answer that would carry a
// resource the client did not name, so reference everything you serve.
func (s *Server) Set(nodeID, version string, resources ...types.Resource) error {
	byType := make(map[resource.Type][]types.Resource)
	for i := types.ResponseType(0); i < types.UnknownType; i++ {
		url, err := cachev3.GetResponseTypeURL(i)
		if err != nil {
			return fmt.Errorf("xdstest: %w", err)
		}
		byType[url] = nil
	}
	for i, r := range resources {
		if r == nil {
			return fmt.Errorf("xdstest: resource %d is nil", i)
		}
		url := resource.APITypePrefix + string(proto.MessageName(r))
		if _, ok := byType[url]; !ok {
			return fmt.Errorf("xdstest: resource %d: type %s is not served", i, url)
		}
		byType[url] = append(byType[url], r)
	}
	snap, err := cachev3.NewSnapshot(version, byType)
	if err != nil {
		return fmt.Errorf("xdstest: snapshot %s: %w", version, err)
	}
	return s.SetSnapshot(nodeID, snap)
}

// SetSnapshot sets any snapshot for node nodeID.
func (s *Server) SetSnapshot(nodeID string, snap cachev3.ResourceSnapshot) error {
	if err := s.Cache.SetSnapshot(s.ctx, nodeID, snap); err != nil {
		return fmt.Errorf("xdstest: set snapshot for %q: %w", nodeID, err)
	}
	return nil
}

// Requests returns every request received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Responses returns every response sent so far, in order.
func (s *Server) Responses() []Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Response(nil), s.responses...)
}

// StreamsOpened counts the ADS streams (SotW and delta) opened so far.
func (s *Server) StreamsOpened() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened
}

// OpenStreams counts the ADS streams open now.
func (s *Server) OpenStreams() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open
}

// ErrTimeout is returned by the Wait helpers when the condition did not
// hold in time.
var ErrTimeout = errors.New("xdstest: timed out")

// Wait blocks until cond holds or timeout passes. cond is evaluated now and
// again after each request, response or stream event the server records; it
// must not call the Server's methods that wait.
func (s *Server) Wait(timeout time.Duration, cond func() bool) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		changed := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			if cond() {
				return nil
			}
			return ErrTimeout
		}
	}
}

// WaitRequest returns the first recorded request that match accepts,
// waiting up to timeout for one to arrive. Use Request.Seq to look only
// past a mark taken from len(Requests()).
func (s *Server) WaitRequest(timeout time.Duration, match func(Request) bool) (Request, error) {
	var found Request
	err := s.Wait(timeout, func() bool {
		for _, r := range s.Requests() {
			if match(r) {
				found = r
				return true
			}
		}
		return false
	})
	return found, err
}

// record runs f under the lock and wakes the waiters.
func (s *Server) record(f func()) {
	s.mu.Lock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

// testLogger sends go-control-plane's logs to t.Logf when on, until stop.
type testLogger struct {
	t  testing.TB
	mu sync.Mutex
	on bool
}

var _ log.Logger = (*testLogger)(nil)

func (l *testLogger) logf(level, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.on {
		l.t.Logf("xdstest: "+level+" "+format, args...)
	}
}

func (l *testLogger) stop() {
	l.mu.Lock()
	l.on = false
	l.mu.Unlock()
}

func (l *testLogger) Debugf(format string, args ...any) { l.logf("debug", format, args...) }
func (l *testLogger) Infof(format string, args ...any)  { l.logf("info", format, args...) }
func (l *testLogger) Warnf(format string, args ...any)  { l.logf("warn", format, args...) }
func (l *testLogger) Errorf(format string, args ...any) { l.logf("error", format, args...) }
