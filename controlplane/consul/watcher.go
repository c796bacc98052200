// Package consul watches Consul with blocking queries (catalog, health,
// config entries, Connect CA) and publishes a fresh model.Mesh on every
// change, keeping the last good state through an outage. It is the only
// package that talks to Consul.
//
// Watches, and what they fill in the Mesh:
//
//	agent/self (once)                    Datacenter; IntentionDefaultAllow from
//	                                     DebugConfig.ACLResolverSettings.ACLDefaultPolicy
//	catalog/services                     the set of names; one catalog/service/<name> watch per name
//	catalog/service/<name>               Proxies (connect-proxy and ingress-gateway entries, by service ID),
//	                                     Gateways (the ingress-gateway ones); non-proxy names get the two
//	                                     health watches below
//	health/service/<name>?passing        Services[name].Instances
//	health/connect/<name>?passing        Services[name].Sidecars
//	config/<kind> for service-defaults, service-router, service-splitter, service-resolver
//	                                     Services[name].Defaults/Router/Splitter/Resolver
//	config/proxy-defaults                ProxyDefaults (the "global" entry)
//	config/service-intentions            Intentions, by destination name
//	config/ingress-gateway               IngressGateways, by gateway service name
//	config/jwt-provider                  JWTProviders, by name
//	health/connect/<name>?passing&filter one per service-resolver subset with a Filter: Services[name].Subsets
//	agent/connect/ca/roots               Roots, RootsIndex, TrustDomain
//	agent/connect/ca/leaf/<service>      one per service with a registered sidecar proxy, and one per
//	                                     ingress gateway service: Leaves[service]
//
// The Connect CA watches go through the local agent, which caches roots and
// leaves and re-signs leaves itself (before expiry, and after a roots change
// within a random spread of up to 30 s): a blocking query answers as soon as
// it has a new one, so a rotation reaches the Mesh within the debounce. A
// failed query keeps the last certificate; a leaf is dropped only when its
// service has no sidecar proxy left. With ACLs on, the watcher's token
// needs agent:read (agent/self) and service:write on every service with a
// sidecar (a leaf is the service's identity).
//
// A name that only has config entries (a virtual service reached through a
// router, splitter or resolver redirect) still gets a Services entry, with
// no instances, so the translator sees its discovery chain. Gateways and
// connect-native services are ordinary (non-proxy) names here (an ingress
// gateway is both: a proxy in Proxies and Gateways, and a name with health
// watches).
//
// Every watch is one goroutine holding one HTTP connection for its blocking
// query: 11 + 1 per name + 2 per non-proxy service + 1 per filtered subset +
// 1 per service with a sidecar or an ingress gateway.
// Consul refuses connections from one address beyond its
// limits.http_max_conns_per_client (200 by default), so a mesh of more than
// about 45 services needs that limit raised; the watcher warns when it gets
// close.
package consul

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// Defaults for zero Options fields.
const (
	DefaultWaitTime       = 5 * time.Minute
	DefaultRequestTimeout = 15 * time.Second
	DefaultDebounce       = 30 * time.Millisecond
	DefaultSettleTimeout  = 10 * time.Second
	DefaultBackoffMin     = 250 * time.Millisecond
	DefaultBackoffMax     = 10 * time.Second
)

// Options configure a Watcher. Zero fields take the defaults above.
type Options struct {
	Logger hclog.Logger
	// WaitTime bounds each blocking query (Consul caps it at 10 minutes and
	// adds up to WaitTime/16 of jitter). Tests shorten it so that nothing
	// waits long.
	WaitTime time.Duration
	// RequestTimeout is how long a request may take beyond WaitTime and
	// Consul's jitter before it counts as failed: it catches a Consul that
	// accepts connections but never answers.
	RequestTimeout time.Duration
	// Debounce coalesces changes: a Mesh is published Debounce after the
	// first change not yet published.
	Debounce time.Duration
	// SettleTimeout bounds how long a publish waits for watches that have
	// not answered once yet (at start, every watch; later, the watches of a
	// new service or subset). After it the Mesh is published with what
	// exists and the missing watches are logged. The first publish also
	// needs the catalog service list, however long that takes.
	SettleTimeout time.Duration
	// BackoffMin and BackoffMax bound the jittered exponential delay before
	// a failed query is retried.
	BackoffMin, BackoffMax time.Duration
	// OnUp, when set, is called with false when Consul becomes unreachable
	// and with true when it answers again (and at the first answer); never
	// concurrently. It must not block.
	OnUp func(up bool)
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.WaitTime, DefaultWaitTime)
	def(&o.RequestTimeout, DefaultRequestTimeout)
	def(&o.Debounce, DefaultDebounce)
	def(&o.SettleTimeout, DefaultSettleTimeout)
	def(&o.BackoffMin, DefaultBackoffMin)
	def(&o.BackoffMax, DefaultBackoffMax)
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	return o
}

// ErrRunTwice is returned by a second call of Run on one Watcher.
var ErrRunTwice = errors.New("consul: Watcher.Run called twice")

// Watcher follows Consul. Its zero value is not usable: call NewWatcher.
type Watcher struct {
	client *api.Client
	o      Options
	log    hclog.Logger

	started atomic.Bool
	conn    connState
	failed  atomic.Uint64 // queries that failed, for tests

	// changed wakes the publisher; a buffered send never blocks a watch.
	changed chan struct{}
	// wg counts every watch goroutine; Run waits for it.
	wg sync.WaitGroup

	mu  sync.Mutex // guards the fields below and every watch's fields
	ctx context.Context
	st  state
	// connWarn is the number of concurrent watches beyond which a warning
	// is logged, once (connWarned).
	connWarn   int
	connWarned bool
}

// connWarnWatches leaves headroom under Consul's default
// limits.http_max_conns_per_client of 200 for the caller's other requests.
const connWarnWatches = 180

// NewWatcher returns a watcher over client.
func NewWatcher(client *api.Client, o Options) *Watcher {
	o = o.withDefaults()
	w := &Watcher{
		client:   client,
		o:        o,
		log:      o.Logger,
		changed:  make(chan struct{}, 1),
		st:       newState(),
		connWarn: connWarnWatches,
	}
	w.conn.init(w)
	return w
}

// Up reports whether Consul answered the watcher's latest queries: false
// before the first answer and during an outage.
func (w *Watcher) Up() bool { return w.conn.up.Load() }

// Run blocks until ctx ends, calling publish with each new Mesh (changes
// coalesced; never concurrently; never twice with equal content). The first
// Mesh is published once every watch has answered (or SettleTimeout after
// the first answer, with what exists). Through an outage nothing is
// published: the last Mesh stays the truth until Consul answers again. Run
// returns nil when ctx ends, after every goroutine it started has stopped.
func (w *Watcher) Run(ctx context.Context, publish func(*model.Mesh)) error {
	if !w.started.CompareAndSwap(false, true) {
		return ErrRunTwice
	}
	ctx, cancel := context.WithCancel(ctx)
	defer func() {
		cancel()
		w.wg.Wait()
	}()

	w.mu.Lock()
	w.ctx = ctx
	w.startTopLevel()
	w.mu.Unlock()

	w.publishLoop(ctx, publish)
	return nil
}

// notify wakes the publisher.
func (w *Watcher) notify() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// publishLoop debounces changes, waits for pending watches, builds and
// publishes Meshes until ctx ends.
func (w *Watcher) publishLoop(ctx context.Context, publish func(*model.Mesh)) {
	var (
		last       *model.Mesh
		dirty      bool      // a change has not been published yet
		dirtySince time.Time // when it came
		waiting    bool      // the timer waits for pending watches: a change re-checks early
		warnedList bool      // "no service list yet" was logged
	)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.changed:
			switch {
			case !dirty:
				dirty, dirtySince = true, time.Now()
				timer.Reset(w.o.Debounce)
			case waiting:
				waiting = false
				timer.Reset(w.o.Debounce)
			}
			continue
		case <-timer.C:
		}

		w.mu.Lock()
		pending := w.st.pendingNames()
		haveList := w.st.servicesFetched
		w.mu.Unlock()
		if last == nil && !haveList {
			// Publishing without the service list would announce an empty
			// mesh; wait for it however long it takes (changes wake us).
			waiting = true
			if left := w.o.SettleTimeout - time.Since(dirtySince); left > 0 {
				timer.Reset(left)
			} else if !warnedList {
				w.log.Warn("no catalog service list from Consul yet; nothing published", "pending", pending)
				warnedList = true
			}
			continue
		}
		if len(pending) > 0 {
			if left := w.o.SettleTimeout - time.Since(dirtySince); left > 0 {
				waiting = true
				timer.Reset(left)
				continue
			}
			w.log.Warn("publishing before every watch has answered", "pending", pending, "waited", time.Since(dirtySince).Round(time.Millisecond))
		}

		w.mu.Lock()
		m := w.st.build()
		w.mu.Unlock()
		dirty, waiting = false, false
		if last != nil && sameContent(m, last) {
			continue
		}
		w.log.Debug("publishing mesh", "index", m.Index, "services", len(m.Services), "proxies", len(m.Proxies))
		publish(m)
		last = m
	}
}

// sameContent reports whether a and b differ at most in Index.
func sameContent(a, b *model.Mesh) bool {
	c := *a
	c.Index = b.Index
	return reflect.DeepEqual(&c, b)
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
