// Package server is the control plane's xDS server: ADS (state of the world
// and delta, see ads.go; the per-type services are go-control-plane's)
// over go-control-plane's snapshot caches of translated resources.
//
// Update translates every registered proxy and the proxyless set; proxies
// whose output is identical share one snapshot object (content-addressed by
// the hash of its deterministic marshal), and each resource type carries its
// own version, so a change to one type resends only that type (and, in
// delta, only the resources that changed). Nodes are identified on their
// first request: a registered connect-proxy's service ID, else a proxyless
// gRPC client (user agent "gRPC ..."), else the stream ends with NotFound.
//
// The snapshot cache is keyed by node ID, but the snapshots themselves are
// shared: a node's entry is a pointer to its group's snapshot, set when it
// connects and cleared when its last stream closes. (Keying the cache by
// group through NodeHash would leave a node's open watches filed under its
// old group when its output changes, and it would never see the update.)
package server

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
	"github.com/outrigger-mesh/outrigger/controlplane/translate"
)

// Options configure a Server. Every field is optional.
type Options struct {
	Logger hclog.Logger
	// Registry receives the outrigger_cp_* metrics; nil keeps them in a
	// private registry.
	Registry prometheus.Registerer
	// Translate builds one proxy's resources (default translate.Proxy).
	Translate func(*model.Mesh, string) (*translate.Resources, error)
	// Proxyless builds the proxyless gRPC set (default translate.Proxyless).
	Proxyless func(*model.Mesh) (*translate.Resources, error)
	// Translation tunes the default translation (Plaintext turns mesh
	// mTLS and intentions off); unused with Translate or Proxyless.
	Translation translate.Options
}

// gRPC server settings. Envoy's xDS connection keepalive is usually 30 s or
// more and grpc-go's xDS client pings every 5 minutes; the enforcement
// floor sits well below both so neither is sent a GOAWAY (too_many_pings).
// The server's own pings find peers that vanished without a FIN. A proxy
// opens one ADS stream; the stream cap only bounds a misbehaving client.
//
// Memory per connection: grpc-go 1.85 returns both 32 KiB transport
// buffers to a pool while a connection is idle (the shared write buffer and
// the non-pinning framer reads are on by default), and idle is the normal
// state of an xDS stream, so ReadBufferSize/WriteBufferSize keep their
// defaults; the flow-control windows are credit, not allocations, and stay
// dynamic (BDP). What remains per connection is grpc's and go-control-plane's
// per-stream state, three transport goroutines per connection and two per
// stream (ads: the handler and the receiver).
const (
	keepaliveMinTime     = 5 * time.Second
	keepaliveTime        = time.Minute
	keepaliveTimeout     = 20 * time.Second
	maxConcurrentStreams = 16
	// applyTimeout bounds one SetSnapshot; go-control-plane's watch
	// channels are sized so that it never blocks, this only guards the lock.
	applyTimeout = 10 * time.Second
)

// stopTimeout bounds the graceful stop once every xDS stream has been told
// to end (a handler blocked sending to a client that stopped reading does
// not notice); then the remaining connections are closed.
var stopTimeout = 5 * time.Second

// Server serves xDS from the last mesh given to Update.
type Server struct {
	log                hclog.Logger
	perMesh            bool // translate through one translate.Translator per Update
	translation        translate.Options
	translateProxy     func(*model.Mesh, string) (*translate.Resources, error)
	translateProxyless func(*model.Mesh) (*translate.Resources, error)
	metrics            *metrics

	// proxyCache answers sidecars in ADS mode (responses ordered CDS, EDS,
	// LDS, RDS; RDS/EDS answered once every name is asked for, as Envoy
	// does); proxylessCache answers gRPC clients, which ask for a subset of
	// names and get exactly those.
	proxyCache     cache.SnapshotCache
	proxylessCache cache.SnapshotCache
	ads            *ads
	grpc           *grpc.Server
	ctx            context.Context
	cancel         context.CancelFunc

	// updateMu serializes Update; the fields below it are written only by
	// Update (under mu as well) and may be read by Update without mu.
	updateMu       sync.Mutex
	interned       map[string]types.Resource
	proxyGroup     map[string]string // registered proxy ID -> its group key
	groups         map[string]*group // group key -> group, for proxies
	proxylessGroup *group            // nil until a proxyless set translated

	mu      sync.Mutex
	mesh    *model.Mesh
	nodes   map[string]*node      // connected node ID -> state
	streams map[streamKey]*stream // open stream -> state
	nacks   []NACK                // the last maxNACKs, oldest first
	updated time.Time
}

// group is one distinct configuration: its snapshot is shared by every
// node in it.
type group struct {
	key  string
	snap *cache.Snapshot
}

// New returns a server; Run serves it.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
	}
	// The default path makes one translate.Translator per mesh (each
	// upstream built once, shared by every proxy); injected functions are
	// for tests.
	perMesh := o.Translate == nil && o.Proxyless == nil
	if o.Translate == nil {
		o.Translate = translate.Proxy
	}
	if o.Proxyless == nil {
		o.Proxyless = translate.Proxyless
	}
	s := &Server{
		perMesh:            perMesh,
		translation:        o.Translation,
		log:                o.Logger,
		translateProxy:     o.Translate,
		translateProxyless: o.Proxyless,
		metrics:            newMetrics(o.Registry),
		proxyGroup:         map[string]string{},
		groups:             map[string]*group{},
		nodes:              map[string]*node{},
		streams:            map[streamKey]*stream{},
	}
	gcpLog := gcpLogger{o.Logger.Named("xds")}
	s.proxyCache = cache.NewSnapshotCache(true, cache.IDHash{}, gcpLog)
	s.proxylessCache = cache.NewSnapshotCache(false, cache.IDHash{}, gcpLog)
	mux := &cache.MuxCache{
		Classify:      func(r *cache.Request) string { return s.cacheKey(r.GetNode().GetId()) },
		ClassifyDelta: func(r *cache.DeltaRequest) string { return s.cacheKey(r.GetNode().GetId()) },
		Caches:        map[string]cache.Cache{kindProxy: s.proxyCache, kindProxyless: s.proxylessCache},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// ADS, what every proxy and proxyless client uses, is ours (see ads);
	// the per-type services stay on go-control-plane's server.
	xds := serverv3.NewServer(s.ctx, mux, hooks{s}, sotw.WithOrderedADS(), sotw.WithLogger(gcpLog))

	s.grpc = grpc.NewServer(
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinTime, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: keepaliveTime, Timeout: keepaliveTimeout}),
		grpc.MaxConcurrentStreams(maxConcurrentStreams),
	)
	s.ads = newADS(s.ctx, s, mux)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(s.grpc, s.ads)
	listenerservice.RegisterListenerDiscoveryServiceServer(s.grpc, xds)
	routeservice.RegisterRouteDiscoveryServiceServer(s.grpc, xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(s.grpc, xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(s.grpc, xds)
	secretservice.RegisterSecretDiscoveryServiceServer(s.grpc, xds)
	return s
}

// Run serves xDS on lis until ctx ends, then stops: every xDS stream is
// ended (clients reconnect, possibly to another replica), then the gRPC
// server stops gracefully. Run may be called once; it returns nil after a
// stop caused by ctx, or the error that ended serving.
func (s *Server) Run(ctx context.Context, lis net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.grpc.Serve(lis) }()
	select {
	case err := <-errc:
		s.cancel()
		return fmt.Errorf("xds server on %s: %w", lis.Addr(), err)
	case <-ctx.Done():
	}
	// go-control-plane's stream handlers return when their context ends;
	// without this GracefulStop would wait forever on long-lived streams.
	s.cancel()
	stopped := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(stopTimeout):
		s.log.Warn("xDS connections still open after the graceful stop timeout; closing them", "timeout", stopTimeout)
		s.grpc.Stop()
		<-stopped
	}
	<-errc
	return nil
}

// SetConsulUp records whether the watcher's last Consul query succeeded.
func (s *Server) SetConsulUp(up bool) {
	if up {
		s.metrics.consulUp.Set(1)
	} else {
		s.metrics.consulUp.Set(0)
	}
}

// ConsulWatchError counts a failed Consul query of the given watch kind,
// one of ConsulWatches; anything else counts as "other".
func (s *Server) ConsulWatchError(watch string) {
	c, ok := s.metrics.consulErrs[watch]
	if !ok {
		c = s.metrics.consulErrs["other"]
	}
	c.Inc()
}

// Ready reports whether a mesh has been given to Update.
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mesh != nil
}

// cacheKey picks the cache that answers a node.
func (s *Server) cacheKey(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[id]; n != nil {
		return n.kind
	}
	return kindProxy
}

// cacheFor is the cache of a node kind.
func (s *Server) cacheFor(kind string) cache.SnapshotCache {
	if kind == kindProxyless {
		return s.proxylessCache
	}
	return s.proxyCache
}

// apply points node n at snapshot snap (mu held). Open watches whose type
// version differs are answered at once.
func (s *Server) apply(n *node, g *group) {
	if g == nil || n.group == g {
		return
	}
	n.group = g
	ctx, cancel := context.WithTimeout(context.Background(), applyTimeout)
	defer cancel()
	if err := s.cacheFor(n.kind).SetSnapshot(ctx, n.id, g.snap); err != nil {
		s.log.Error("could not hand a node its configuration", "node", n.id, "group", g.key, "error", err)
	}
}

// gcpLogger adapts hclog to go-control-plane's logger. Its Info lines are
// per watch and its Warn lines normal ADS behaviour, so both go one level
// down.
type gcpLogger struct{ l hclog.Logger }

func (g gcpLogger) Debugf(format string, args ...any) {
	if g.l.IsTrace() {
		g.l.Trace(fmt.Sprintf(format, args...))
	}
}

func (g gcpLogger) Infof(format string, args ...any) {
	if g.l.IsTrace() {
		g.l.Trace(fmt.Sprintf(format, args...))
	}
}

func (g gcpLogger) Warnf(format string, args ...any) {
	if g.l.IsDebug() {
		g.l.Debug(fmt.Sprintf(format, args...))
	}
}

func (g gcpLogger) Errorf(format string, args ...any) { g.l.Error(fmt.Sprintf(format, args...)) }
