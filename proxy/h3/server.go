// Package h3 is the proxy's only door to QUIC: it serves HTTP/3 listeners
// (a UDP socket, QUIC with TLS 1.3, HTTP/3 on top) with the same
// http.Handler the TCP listeners use, and carries requests to HTTP/3
// upstreams. It wraps quic-go and its http3 package, which nothing else in
// the module imports (internal/layering checks it); it never sees Envoy
// protos: proxy/snapshot converts a QUIC listener into Config.
package h3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

// Defaults applied when Config leaves a field zero: Envoy's for QUIC
// listeners.
const (
	DefaultIdleTimeout          = 300 * time.Second // quic_options.idle_timeout
	DefaultHandshakeTimeout     = 20 * time.Second  // quic_options.crypto_handshake_timeout
	DefaultMaxConcurrentStreams = 100               // quic_protocol_options.max_concurrent_streams
)

// NextProto is the ALPN of HTTP/3.
const NextProto = http3.NextProtoH3

// Config is one HTTP/3 listener: a UDP address, the TLS that QUIC
// carries, and the connection manager that serves its requests.
type Config struct {
	Name    string
	Address string // "host:port" (UDP); port 0 picks a free one
	// TLS holds the certificates (and client-certificate rules). It is
	// cloned; NextProtos is set to h3 and the minimum version to TLS 1.3,
	// which QUIC requires.
	TLS *tls.Config
	// Handler serves every request (the chain's proxy/hcm handler).
	Handler http.Handler
	// Chains, when set, replace TLS and Handler: filter chains picked by
	// the client's SNI when the handshake starts, as Envoy matches
	// filter_chain_match.server_names — an exact name first, then the
	// longest "*.suffix" wildcard, then the chain without names (at most
	// one). A name no chain takes fails the handshake.
	Chains []Chain
	// MaxRequestHeadersBytes bounds a request's HEADERS frame
	// (max_request_headers_kb); 0 is net/http's default of 1 MiB.
	MaxRequestHeadersBytes int
	// IdleTimeout closes a QUIC connection with no network activity
	// (quic_options.idle_timeout).
	IdleTimeout time.Duration
	// HandshakeTimeout bounds the QUIC handshake
	// (quic_options.crypto_handshake_timeout).
	HandshakeTimeout time.Duration
	// MaxConcurrentStreams caps the request streams a client may have open
	// at once (quic_protocol_options.max_concurrent_streams).
	MaxConcurrentStreams uint32
	// EarlyData accepts 0-RTT requests
	// (QuicDownstreamTransport.enable_early_data). Off unless set: a 0-RTT
	// request can be replayed by an attacker, so only safe ones are served
	// before the handshake completes; the others get 425 Too Early
	// (RFC 8470) and the client sends them again after the handshake.
	EarlyData bool
}

// Chain is one filter chain of an HTTP/3 listener.
type Chain struct {
	Name string
	// ServerNames are the SNI names the chain takes: exact, or "*.suffix"
	// for any name under suffix. None: the chain takes what no other does.
	ServerNames []string
	TLS         *tls.Config
	Handler     http.Handler
}

// chains is cfg's chains: Chains, else the one made of TLS and Handler.
func (cfg *Config) chains() []Chain {
	if len(cfg.Chains) > 0 {
		return cfg.Chains
	}
	return []Chain{{TLS: cfg.TLS, Handler: cfg.Handler}}
}

// Validate reports what makes cfg unusable.
func (cfg *Config) Validate() error {
	if cfg.Name == "" {
		return errors.New("h3: a listener needs a name")
	}
	names := map[string]string{}
	fallback := ""
	for i, c := range cfg.chains() {
		what := fmt.Sprintf("h3: listener %q", cfg.Name)
		if len(cfg.Chains) > 0 {
			what = fmt.Sprintf("h3: listener %q chain %d (%q)", cfg.Name, i, c.Name)
		}
		switch {
		case c.TLS == nil || (len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil):
			return fmt.Errorf("%s: QUIC needs TLS with a certificate", what)
		case c.Handler == nil:
			return fmt.Errorf("%s: no handler", what)
		}
		if len(c.ServerNames) == 0 {
			if fallback != "" {
				return fmt.Errorf("%s: a second chain without server_names (the first is %s)", what, fallback)
			}
			fallback = fmt.Sprintf("chain %d", i)
		}
		for _, n := range c.ServerNames {
			n = strings.ToLower(n)
			if n == "" || n == "*." || (strings.Contains(n, "*") && !strings.HasPrefix(n, "*.")) || strings.Count(n, "*") > 1 {
				return fmt.Errorf("%s: server name %q: want an exact name or *.suffix", what, n)
			}
			if prev, dup := names[n]; dup {
				return fmt.Errorf("%s: server name %q is also taken by %s", what, n, prev)
			}
			names[n] = fmt.Sprintf("chain %d", i)
		}
	}
	return nil
}

// generation is what a connection is served with: the config in force
// when it was accepted.
type generation struct {
	cfg    Config
	chains []*chain
	exact  map[string]*chain
	// wild is the "*.suffix" chains by suffix (with its dot), longest
	// first.
	wild     []wildChain
	fallback *chain
}

// chain is one Chain as served: its TLS prepared for QUIC.
type chain struct {
	tls     *tls.Config
	handler http.Handler
}

type wildChain struct {
	suffix string
	c      *chain
}

// pick is the chain for an SNI name (lower-cased by crypto/tls), or nil.
func (g *generation) pick(name string) *chain {
	name = strings.ToLower(name)
	if c, ok := g.exact[name]; ok {
		return c
	}
	for _, w := range g.wild {
		if len(name) > len(w.suffix) && strings.HasSuffix(name, w.suffix) {
			return w.c
		}
	}
	return g.fallback
}

// config is the TLS config of a handshake with hello: its chain's (or
// what that chain's GetConfigForClient, e.g. SDS, gives), ready for QUIC.
func (g *generation) config(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	c := g.pick(hello.ServerName)
	if c == nil {
		return nil, fmt.Errorf("h3: listener %q: no filter chain for server name %q", g.cfg.Name, hello.ServerName)
	}
	if c.tls.GetConfigForClient == nil {
		return c.tls, nil
	}
	next, err := c.tls.GetConfigForClient(hello)
	if err != nil || next == nil {
		return c.tls, err
	}
	return quicTLS(next), nil
}

// Listener is one bound HTTP/3 listener. Update swaps the config new
// connections get; connections keep the one they were accepted with.
type Listener struct {
	log   hclog.Logger
	pc    net.PacketConn
	tr    *quic.Transport
	ln    http3.QUICListener
	srv   *http3.Server
	gen   atomic.Pointer[generation]
	early bool

	cxTotal  atomic.Uint64
	cxActive atomic.Int64
	earlyOK  atomic.Uint64
	earlyRej atomic.Uint64

	closeOnce sync.Once
	closeErr  error
	serving   atomic.Bool
	shutdown  atomic.Bool
}

type ctxKey struct{}

// connKey keys the request's QUIC connection in its context.
type connKey struct{}

// New validates cfg and binds its UDP address.
func New(cfg Config, logger hclog.Logger) (*Listener, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp", cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("h3: listener %q: %w", cfg.Name, err)
	}
	l := &Listener{log: logger.Named("h3").With("listener", cfg.Name), pc: pc, early: cfg.EarlyData}
	l.gen.Store(newGeneration(cfg))
	l.tr = &quic.Transport{Conn: pc}
	// One TLS config for the socket; each handshake takes the current
	// generation's, so Update reaches new connections only.
	base := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{NextProto},
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			return l.gen.Load().config(hello)
		},
	}
	qc := l.quicConfig(cfg)
	if cfg.EarlyData {
		l.ln, err = l.tr.ListenEarly(base, qc)
	} else {
		l.ln, err = l.tr.Listen(base, qc)
	}
	if err != nil {
		_ = l.tr.Close()
		_ = pc.Close()
		return nil, fmt.Errorf("h3: listener %q: %w", cfg.Name, err)
	}
	l.srv = &http3.Server{
		Handler:        http.HandlerFunc(l.serveHTTP),
		MaxHeaderBytes: cfg.MaxRequestHeadersBytes,
		ConnContext:    l.connContext,
	}
	return l, nil
}

func newGeneration(cfg Config) *generation {
	g := &generation{cfg: cfg, exact: map[string]*chain{}}
	for _, c := range cfg.chains() {
		ch := &chain{tls: quicTLS(c.TLS), handler: c.Handler}
		g.chains = append(g.chains, ch)
		if len(c.ServerNames) == 0 {
			g.fallback = ch
		}
		for _, n := range c.ServerNames {
			n = strings.ToLower(n)
			if suffix, ok := strings.CutPrefix(n, "*"); ok {
				g.wild = append(g.wild, wildChain{suffix: suffix, c: ch})
			} else {
				g.exact[n] = ch
			}
		}
	}
	slices.SortStableFunc(g.wild, func(a, b wildChain) int { return len(b.suffix) - len(a.suffix) })
	return g
}

// quicTLS clones t with what QUIC needs: ALPN h3, TLS 1.3 at least.
func quicTLS(t *tls.Config) *tls.Config {
	t = t.Clone()
	t.NextProtos = []string{NextProto}
	if t.MinVersion < tls.VersionTLS13 {
		t.MinVersion = tls.VersionTLS13
	}
	return t
}

func (l *Listener) quicConfig(cfg Config) *quic.Config {
	idle := cfg.IdleTimeout
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	hs := cfg.HandshakeTimeout
	if hs <= 0 {
		hs = DefaultHandshakeTimeout
	}
	streams := int64(cfg.MaxConcurrentStreams)
	if streams <= 0 {
		streams = DefaultMaxConcurrentStreams
	}
	return &quic.Config{
		MaxIdleTimeout:       idle,
		HandshakeIdleTimeout: hs,
		MaxIncomingStreams:   streams,
		Allow0RTT:            cfg.EarlyData,
	}
}

// Update makes new connections use cfg (same address; a new handler or
// certificate). Settings fixed at bind time — the QUIC transport
// parameters and whether 0-RTT is on — must not change: Update returns
// ErrRebind then, and the caller binds a new listener instead.
func (l *Listener) Update(cfg Config) error {
	if err := l.CanUpdate(cfg); err != nil {
		return err
	}
	l.gen.Store(newGeneration(cfg))
	return nil
}

// CanUpdate reports what Update(cfg) would refuse, changing nothing.
func (l *Listener) CanUpdate(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	old := l.gen.Load().cfg
	if cfg.Address != old.Address || cfg.EarlyData != old.EarlyData || cfg.IdleTimeout != old.IdleTimeout ||
		cfg.HandshakeTimeout != old.HandshakeTimeout || cfg.MaxConcurrentStreams != old.MaxConcurrentStreams ||
		cfg.MaxRequestHeadersBytes != old.MaxRequestHeadersBytes {
		return ErrRebind
	}
	return nil
}

// ErrRebind is Update's answer to a change it cannot make in place.
var ErrRebind = errors.New("h3: the change needs a new socket")

// connContext pins the connection to the generation in force and counts it.
func (l *Listener) connContext(ctx context.Context, c *quic.Conn) context.Context {
	l.cxTotal.Add(1)
	l.cxActive.Add(1)
	go func() {
		<-c.Context().Done()
		l.cxActive.Add(-1)
	}()
	ctx = context.WithValue(ctx, connKey{}, c)
	g := l.gen.Load()
	ch := g.pick(c.ConnectionState().TLS.ServerName)
	if ch == nil { // the handshake let it through, so the config changed since
		ch = g.chains[0]
	}
	return context.WithValue(ctx, ctxKey{}, ch)
}

func (l *Listener) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if l.early && l.tooEarly(w, r) {
		return
	}
	ch, ok := r.Context().Value(ctxKey{}).(*chain)
	if !ok {
		ch = l.gen.Load().chains[0]
	}
	ch.handler.ServeHTTP(w, r)
}

// tooEarly answers 425 Too Early to a request that is handled before its
// connection's handshake has completed — it came in 0-RTT data, which an
// attacker can replay — unless its method is safe (SafeEarly). quic-go
// does not tell which packets carried a request, so the handshake state
// when the request is handled decides; a replay can never complete the
// handshake, and once it has completed the client's retry is served.
func (l *Listener) tooEarly(w http.ResponseWriter, r *http.Request) bool {
	c, ok := r.Context().Value(connKey{}).(*quic.Conn)
	if !ok {
		return false
	}
	select {
	case <-c.HandshakeComplete():
		return false
	default:
	}
	if SafeEarly(r) {
		l.earlyOK.Add(1)
		return false
	}
	l.earlyRej.Add(1)
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", "9")
	w.WriteHeader(http.StatusTooEarly)
	_, _ = io.WriteString(w, "too early")
	return true
}

// SafeEarly reports whether r may be served from 0-RTT data: its method
// is safe (GET, HEAD, OPTIONS, TRACE).
func SafeEarly(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// Addr is the bound UDP address.
func (l *Listener) Addr() net.Addr { return l.pc.LocalAddr() }

// Serve accepts connections until Shutdown or Close (it then returns nil)
// or ctx ends (it then closes the listener).
func (l *Listener) Serve(ctx context.Context) error {
	if !l.serving.CompareAndSwap(false, true) {
		return errors.New("h3: Serve called twice")
	}
	stop := context.AfterFunc(ctx, func() { _ = l.Close() })
	defer stop()
	err := l.srv.ServeListener(l.ln)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, quic.ErrServerClosed) || l.shutdown.Load() {
		return nil
	}
	return fmt.Errorf("h3: listener %q: %w", l.gen.Load().cfg.Name, err)
}

// Shutdown stops accepting, sends every connection a GOAWAY and waits
// for their requests to finish; when ctx ends first it closes what is
// left and returns ctx's error. The socket is closed either way.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.shutdown.Store(true)
	_ = l.ln.Close()
	err := l.srv.Shutdown(ctx)
	if cerr := l.closeSocket(); err == nil {
		err = cerr
	}
	return err
}

// Close closes every connection (CONNECTION_CLOSE) and the socket.
func (l *Listener) Close() error {
	l.shutdown.Store(true)
	_ = l.ln.Close()
	err := l.srv.Close()
	if cerr := l.closeSocket(); err == nil {
		err = cerr
	}
	return err
}

func (l *Listener) closeSocket() error {
	l.closeOnce.Do(func() {
		_ = l.tr.Close()
		l.closeErr = l.pc.Close()
		if errors.Is(l.closeErr, net.ErrClosed) {
			l.closeErr = nil
		}
	})
	return l.closeErr
}

// Stats are a listener's counters, named after Envoy's listener
// statistics.
type Stats struct {
	// DownstreamCxTotal counts QUIC connections accepted (handshake done).
	DownstreamCxTotal uint64
	// DownstreamCxActive is the number of open QUIC connections.
	DownstreamCxActive int64
	// EarlyDataServed counts safe requests served before their
	// connection's handshake completed (0-RTT); EarlyDataRejected the
	// others, answered 425 Too Early.
	EarlyDataServed, EarlyDataRejected uint64
}

// Stats returns the listener's counters.
func (l *Listener) Stats() Stats {
	return Stats{
		DownstreamCxTotal:  l.cxTotal.Load(),
		DownstreamCxActive: l.cxActive.Load(),
		EarlyDataServed:    l.earlyOK.Load(),
		EarlyDataRejected:  l.earlyRej.Load(),
	}
}
