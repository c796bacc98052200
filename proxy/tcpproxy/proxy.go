package tcpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
)

const (
	// keepAlive is the TCP keep-alive probe period of upstream connections.
	keepAlive = 30 * time.Second
	// reselectAttempts is how often the balancer may re-pick to avoid a
	// host an earlier connect attempt failed on.
	reselectAttempts = 5
)

// Envoy's response flags for a TCP connection's access-log line.
const (
	flagNoCluster      = "NC"  // the cluster is not defined
	flagNoHealthy      = "UH"  // no host to pick
	flagOverflow       = "UO"  // max_connections reached
	flagConnectFailure = "UF"  // a connect attempt failed
	flagRetryLimit     = "URX" // max_connect_attempts used up
)

// Clusters finds clusters by name; *cluster.Manager is one. It is asked
// once per connection, so a cluster added or updated later is used by the
// next connection.
type Clusters interface {
	Get(name string) *cluster.Cluster
}

// Deps are what a Proxy uses without owning it.
type Deps struct {
	Clusters Clusters
	// Logs are the access loggers of Config.AccessLogs, opened by the
	// caller (who shares them between filters and closes them).
	Logs []*telemetry.AccessLogger
	// Stats are the counters of Config.StatPrefix, shared by every filter
	// with that prefix; nil gives the proxy its own.
	Stats *Stats
	// Listener names the listener, for access logs.
	Listener string
	Logger   hclog.Logger
}

// Proxy is one TcpProxy filter: it serves the connections of one filter
// chain. It is safe for concurrent use and holds no per-connection state.
type Proxy struct {
	cfg    Config
	deps   Deps
	stats  *Stats
	log    hclog.Logger
	cum    []uint64 // running sums of WeightedClusters' weights
	dialer net.Dialer
}

// New validates cfg and returns its proxy.
func New(cfg Config, deps Deps) (*Proxy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Clusters == nil {
		return nil, fmt.Errorf("%w: no cluster source", ErrInvalidConfig)
	}
	if deps.Logger == nil {
		deps.Logger = hclog.NewNullLogger()
	}
	p := &Proxy{
		cfg:    cfg,
		deps:   deps,
		stats:  deps.Stats,
		log:    deps.Logger.Named("tcp_proxy").With("stat_prefix", cfg.StatPrefix),
		dialer: net.Dialer{KeepAlive: keepAlive},
	}
	if p.stats == nil {
		p.stats = new(Stats)
	}
	var sum uint64
	for _, w := range cfg.WeightedClusters {
		sum += uint64(w.Weight)
		p.cum = append(p.cum, sum)
	}
	return p, nil
}

// Stats are the proxy's counters.
func (p *Proxy) Stats() *Stats { return p.stats }

// rawConn is a downstream connection its listener has already read from,
// to choose a filter chain (the first byte, or a whole TLS ClientHello on a
// passthrough chain). Raw hands over the socket under it and those bytes,
// which go upstream first; copying from the socket itself is what lets the
// kernel splice. proxy/listener's connections implement it.
type rawConn interface {
	Raw() (net.Conn, []byte)
}

// ServeConn proxies one downstream connection until both sides have closed
// it, an error or the idle timeout ends it, or ctx ends (the listener is
// closing); then it closes downstream. downstream may be a *net.TCPConn, a
// *tls.Conn (TLS terminated by the listener) or a connection implementing
// Raw() (net.Conn, []byte).
//
// As in Envoy, the upstream connection is made first: when no host can be
// connected to, downstream is closed without a byte sent.
func (p *Proxy) ServeConn(ctx context.Context, downstream net.Conn) {
	start := time.Now()
	p.stats.CxTotal.Add(1)
	p.stats.CxActive.Add(1)
	defer p.stats.CxActive.Add(-1)
	defer downstream.Close()

	down, prefix := downstream, []byte(nil)
	if r, ok := downstream.(rawConn); ok {
		down, prefix = r.Raw()
	}
	e := telemetry.Entry{Start: start, Listener: p.deps.Listener}
	if a := downstream.RemoteAddr(); a != nil {
		e.ClientAddress = a.String()
	}
	s := p.serve(ctx, downstream, down, prefix, &e)
	if s != nil {
		e.BytesReceived, e.BytesSent = s.rx.Load(), s.tx.Load()
	}
	e.Duration = time.Since(start)
	for _, l := range p.deps.Logs {
		l.Log(&e)
	}
}

// serve connects upstream and runs the session; it returns nil when no
// upstream connection was made.
func (p *Proxy) serve(ctx context.Context, downstream, down net.Conn, prefix []byte, e *telemetry.Entry) *session {
	name := p.pickCluster()
	e.UpstreamCluster = name
	cl := p.deps.Clusters.Get(name)
	if cl == nil {
		p.stats.CxNoRoute.Add(1)
		e.ResponseFlags = flagNoCluster
		p.log.Debug("cluster not found; closing the connection", "cluster", name)
		return nil
	}
	up, upSock, h, flags := p.connect(ctx, cl, originalDst(downstream))
	if up == nil {
		e.ResponseFlags = flags
		return nil
	}
	closed := cl.ConnectionOpened(h)
	defer closed()
	e.UpstreamHost = h.Address
	e.ResponseFlags = flags // a connect failure before this success keeps UF, as in Envoy
	s := newSession(p, downstream, down, up, upSock)
	s.run(ctx, prefix)
	if s.idleFired.Load() {
		p.stats.IdleTimeout.Add(1)
	}
	return s
}

// pickCluster chooses the cluster for one connection.
func (p *Proxy) pickCluster() string {
	if p.cfg.Cluster != "" {
		return p.cfg.Cluster
	}
	x := rand.Uint64N(p.cum[len(p.cum)-1])
	i := sort.Search(len(p.cum), func(i int) bool { return p.cum[i] > x })
	return p.cfg.WeightedClusters[i].Name
}

// originalDst is the downstream connection's local address: where the
// client was going once the listener's original_dst filter restored it,
// which an ORIGINAL_DST cluster connects to.
func originalDst(c net.Conn) netip.AddrPort {
	if a, ok := c.LocalAddr().(*net.TCPAddr); ok {
		return a.AddrPort()
	}
	return netip.AddrPort{}
}

// connect makes the upstream connection: up to max_connect_attempts
// connects, each on a host not tried yet when the balancer has one. It
// returns the connection (a *net.TCPConn, or a *tls.Conn when the cluster
// has TLS), the socket under it, its host and the response flags; a nil
// connection when every attempt failed. dst is the connection's original
// destination, for an ORIGINAL_DST cluster.
func (p *Proxy) connect(ctx context.Context, cl *cluster.Cluster, dst netip.AddrPort) (net.Conn, *net.TCPConn, *lb.Host, string) {
	var (
		tried []*lb.Host
		flags []string
	)
	for attempt := 0; ; attempt++ {
		if attempt == p.cfg.maxConnectAttempts() {
			p.stats.ConnectAttemptsExceeded.Add(1)
			return nil, nil, nil, joinFlags(flags, flagRetryLimit)
		}
		if ctx.Err() != nil {
			return nil, nil, nil, joinFlags(flags)
		}
		req := &lb.Request{OriginalDst: dst}
		if len(tried) > 0 {
			req.Tried, req.MaxAttempts = tried, reselectAttempts
		}
		h, err := cl.Pick(req)
		if err != nil {
			p.stats.NoneHealthy.Add(1)
			return nil, nil, nil, joinFlags(flags, flagNoHealthy)
		}
		if !cl.AdmitConnection() {
			return nil, nil, nil, joinFlags(flags, flagOverflow)
		}
		c, sock, err := p.dial(ctx, cl, h)
		if err == nil {
			return c, sock, h, joinFlags(flags)
		}
		if ctx.Err() != nil {
			// The listener is closing: not the host's failure.
			return nil, nil, nil, joinFlags(flags)
		}
		timeout := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
		cl.ConnectionFailed(h, timeout)
		p.log.Debug("upstream connect failed", "cluster", cl.Name(), "address", h.Address, "attempt", attempt+1, "error", err)
		tried = append(tried, h)
		if len(flags) == 0 {
			flags = append(flags, flagConnectFailure)
		}
	}
}

func joinFlags(flags []string, more ...string) string {
	return strings.Join(append(flags, more...), ",")
}

// dial connects to h within the cluster's connect_timeout, TLS handshake
// included when the cluster has TLS.
func (p *Proxy) dial(ctx context.Context, cl *cluster.Cluster, h *lb.Host) (net.Conn, *net.TCPConn, error) {
	ctx, cancel := context.WithTimeout(ctx, cl.ConnectTimeout())
	defer cancel()
	c, err := p.dialer.DialContext(ctx, "tcp", h.Address)
	if err != nil {
		return nil, nil, err
	}
	sock := c.(*net.TCPConn)
	cfg := cl.Config().TLS
	if cfg == nil {
		return sock, sock, nil
	}
	if cfg.ServerName == "" {
		// As the HTTP transport does: the host's address names it.
		cfg = cfg.Clone()
		cfg.ServerName, _, _ = net.SplitHostPort(h.Address)
	}
	tc := tls.Client(sock, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = sock.Close()
		return nil, nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, sock, nil
}
