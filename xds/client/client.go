// Package client is the proxy's xDS client: one ADS stream (state of the
// world or delta) to any xDS server, LDS and CDS wildcard subscriptions, RDS
// and EDS names derived from what arrives, ACK/NACK with error detail,
// warming, initial_fetch_timeout and reconnection with jittered backoff.
// The last accepted set stays in force through a dropped stream or a NACK.
// Secrets (SDS) are subscribed by name like routes and assignments: the
// ones that listeners and clusters reference with sds_config.ads.
//
// One goroutine (Run's) owns all state: it reads events from the stream's
// receiving goroutine, sends requests, checks and stores resources, and
// calls the Target. Warming is all-or-nothing: Apply sees a set only once
// every RDS route its listeners name and every EDS assignment its clusters
// name has arrived, or has been given up on after InitialFetchTimeout (then
// it is present but empty); likewise every secret they reference. While a
// new resource warms, the set in force stays the one Apply last accepted.
package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Resources is one complete, warmed set of dynamic resources, each list
// sorted by name, with the version_info last accepted per type URL. A
// route, assignment or secret that was given up on (initial fetch timeout)
// or that the server removed while still referenced is present and empty:
// a RouteConfiguration with only its name, a ClusterLoadAssignment with
// only its cluster_name, a Secret with only its name. The messages are
// shared with the client: do not modify.
type Resources struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
	Clusters  []*clusterv3.Cluster
	Endpoints []*endpointv3.ClusterLoadAssignment
	// Secrets are the SDS secrets the listeners and clusters (and
	// Config.StaticSecrets) reference with sds_config.ads.
	Secrets  []*tlsv3.Secret
	Versions map[string]string
}

// Target is what the client drives (the proxy).
type Target interface {
	// Check validates one resource alone. An error NACKs the response that
	// carries it, naming the resource; nothing of that response is kept.
	Check(typeURL string, r proto.Message) error
	// Apply puts a complete, warmed set in force. An error NACKs the
	// response that led to it and the previous set stays.
	Apply(*Resources) error
}

// Config configures a Client.
type Config struct {
	// Conn is the gRPC connection to the xDS server.
	Conn grpc.ClientConnInterface
	// Node identifies the proxy; its id is required. It is sent on every
	// request.
	Node *corev3.Node
	// Delta selects the incremental protocol (DELTA_GRPC).
	Delta bool
	// LDS and CDS subscribe to all listeners / clusters.
	LDS, CDS bool
	// StaticRoutes are RDS names referenced by static listeners.
	StaticRoutes []string
	// StaticEndpoints are EDS names (service_name, else cluster name)
	// referenced by static EDS clusters.
	StaticEndpoints []string
	// StaticSecrets are SDS secret names that static listeners and
	// clusters expect over ADS.
	StaticSecrets []string
	// InitialFetchTimeout bounds warming per resource (Envoy's default 15 s);
	// a resource still missing then is treated as empty. 0 means the default;
	// a negative value waits forever (Envoy's 0s).
	InitialFetchTimeout time.Duration
	// BackoffBase and BackoffMax bound the jittered reconnect backoff
	// (defaults 500 ms and 30 s). Repeated NACKs of one version are paced
	// by the same backoff, capped at 5 s.
	BackoffBase, BackoffMax time.Duration
	Logger                  hclog.Logger
}

const (
	defaultInitialFetchTimeout = 15 * time.Second
	defaultBackoffBase         = 500 * time.Millisecond
	defaultBackoffMax          = 30 * time.Second
	maxNackPace                = 5 * time.Second
)

// Client is one ADS client.
type Client struct {
	cfg    Config
	target Target
	log    hclog.Logger
	rnd    func(n int64) int64 // uniform in [0, n); tests replace it

	running atomic.Bool
	synced  chan struct{}
	syncOne sync.Once

	statusMu sync.Mutex
	status   Status

	// Everything below is owned by Run's goroutine.
	types    [numKinds]*typeState
	last     *Resources // what Apply last accepted
	stream   *activeStream
	events   chan event
	nextID   uint64
	attempt  int       // reconnect attempts since a stream last worked
	redialAt time.Time // when to open the next stream; zero while one is open
}

// New returns a client that drives t; Run starts it.
func New(cfg Config, t Target) *Client {
	if cfg.InitialFetchTimeout == 0 {
		cfg.InitialFetchTimeout = defaultInitialFetchTimeout
	}
	// A bound left at 0 defaults without crossing the one that is set.
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = defaultBackoffBase
		if cfg.BackoffMax > 0 {
			cfg.BackoffBase = min(cfg.BackoffBase, cfg.BackoffMax)
		}
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = max(defaultBackoffMax, cfg.BackoffBase)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	c := &Client{
		cfg:    cfg,
		target: t,
		log:    logger.Named("xds"),
		rnd:    rand.Int64N,
		synced: make(chan struct{}),
		events: make(chan event),
	}
	for k := range numKinds {
		c.types[k] = newTypeState(k, &c.cfg)
	}
	return c
}

// Synced is closed once the first complete set has been handed to Apply
// (whatever Apply answered) — everything arrived, or what did not was given
// up on after InitialFetchTimeout. It never closes if Run ends first.
func (c *Client) Synced() <-chan struct{} { return c.synced }

func (c *Config) validate(t Target) error {
	switch {
	case t == nil:
		return errors.New("xds client: no target")
	case c.Conn == nil:
		return errors.New("xds client: no gRPC connection")
	case c.Node == nil || c.Node.GetId() == "":
		return errors.New("xds client: node id is required")
	case !c.LDS && !c.CDS && len(c.StaticRoutes) == 0 && len(c.StaticEndpoints) == 0 && len(c.StaticSecrets) == 0:
		return errors.New("xds client: nothing to subscribe to (no LDS, CDS, static routes, endpoints or secrets)")
	case c.BackoffBase < 0 || c.BackoffMax < 0:
		return fmt.Errorf("xds client: negative backoff (base %s, max %s)", c.BackoffBase, c.BackoffMax)
	case c.BackoffBase > c.BackoffMax:
		return fmt.Errorf("xds client: backoff base %s exceeds max %s", c.BackoffBase, c.BackoffMax)
	}
	for _, n := range c.StaticRoutes {
		if n == "" {
			return errors.New("xds client: empty static route name")
		}
	}
	for _, n := range c.StaticEndpoints {
		if n == "" {
			return errors.New("xds client: empty static endpoints name")
		}
	}
	for _, n := range c.StaticSecrets {
		if n == "" {
			return errors.New("xds client: empty static secret name")
		}
	}
	return nil
}

// Run streams until ctx ends, reconnecting with backoff. It returns nil when
// ctx ends, after closing the stream it opened; an error only for a bad
// Config or a second call.
func (c *Client) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("xds client: Run called twice")
	}
	if err := c.cfg.validate(c.target); err != nil {
		return err
	}
	defer c.closeStream()

	now := time.Now()
	c.startWarming(now)
	c.redialAt = now
	c.publishStatus()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		var wake <-chan time.Time
		if next, ok := c.nextDeadline(); ok {
			timer.Reset(time.Until(next))
			wake = timer.C
		}
		select {
		case <-ctx.Done():
			c.log.Debug("stopping")
			return nil
		case ev := <-c.events:
			c.handleEvent(ev)
		case <-wake:
			c.handleDeadlines(ctx, time.Now())
		}
		c.publishStatus()
	}
}

// nextDeadline is the earliest time something is due: a redial, a warming
// timeout, a paced NACK.
func (c *Client) nextDeadline() (time.Time, bool) {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if c.stream == nil {
		consider(c.redialAt)
	}
	for _, st := range c.types {
		consider(st.nextDeadline())
	}
	return next, !next.IsZero()
}

// handleDeadlines does what is due at now.
func (c *Client) handleDeadlines(ctx context.Context, now time.Time) {
	if c.stream == nil && !c.redialAt.IsZero() && !now.Before(c.redialAt) {
		c.openStream(ctx)
	}
	expired := false
	for _, st := range c.types {
		if st.expire(now, c.log) {
			expired = true
		}
		if !st.nackAt.IsZero() && !now.Before(st.nackAt) {
			st.nackAt = time.Time{}
			c.sendPacedNack(st)
		}
	}
	if expired {
		c.refreshWanted(now)
		if err := c.maybeApply(); err != nil {
			c.log.Error("apply after initial fetch timeout failed; the previous set stays in force", "error", err)
		}
		c.pruneAndSubscribe(now)
	}
}

// backoff is the full-jitter delay before reconnect attempt n (0-based):
// uniform in [0, min(max, base·2ⁿ)].
func backoff(n int, base, max time.Duration, rnd func(int64) int64) time.Duration {
	ceiling := max
	if n < 62 && base > 0 && base <= max>>uint(n) {
		ceiling = base << uint(n)
	}
	if ceiling <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(ceiling) + 1))
}
