package client

import (
	"slices"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
)

// kind is one of the five resource types, in the order Envoy subscribes:
// clusters and their endpoints before listeners and their routes, then
// the secrets both reference.
type kind int

const (
	kindCluster kind = iota
	kindEndpoint
	kindListener
	kindRoute
	kindSecret
	numKinds
)

var kindURL = [numKinds]string{
	kindCluster:  resource.ClusterType,
	kindEndpoint: resource.EndpointType,
	kindListener: resource.ListenerType,
	kindRoute:    resource.RouteType,
	kindSecret:   resource.SecretType,
}

var kindNoun = [numKinds]string{
	kindCluster:  "cluster",
	kindEndpoint: "cluster load assignment",
	kindListener: "listener",
	kindRoute:    "route configuration",
	kindSecret:   "secret",
}

// derived are the non-wildcard kinds, whose names come from what the
// others reference.
var derived = []kind{kindRoute, kindEndpoint, kindSecret}

func kindOf(typeURL string) (kind, bool) {
	for k, u := range kindURL {
		if u == typeURL {
			return kind(k), true
		}
	}
	return 0, false
}

// entry is one accepted resource.
type entry struct {
	msg     proto.Message
	version string   // delta's per-resource version
	refs    []string // listener: RDS names; cluster: its EDS name
	secrets []string // listener, cluster: the SDS secrets it expects over ADS
}

// want is the warming state of one name a non-wildcard type needs.
type want struct {
	deadline time.Time // when to give up on its first arrival; zero: never
	absent   bool      // given up on, or removed by the server: empty
}

// typeState is everything the client knows about one type URL.
type typeState struct {
	kind     kind
	url      string
	wildcard bool // LDS, CDS
	enabled  bool // subscribed at all
	timeout  time.Duration

	// Accepted state.
	entries  map[string]*entry
	version  string
	received bool // a response was accepted (wildcard warming)

	// Wildcard warming: the first response is due by initialDeadline.
	initialDeadline time.Time
	timedOut        bool

	// Non-wildcard: the names needed now, with their warming state.
	wanted map[string]*want

	// Per stream.
	started bool            // a request for the type was sent on this stream
	sent    map[string]bool // names the server was last told (non-wildcard)
	nonce   string

	// NACK state. nackErr is set while the latest response was rejected;
	// lastErr* keep the latest rejection for Status.
	nackErr        string
	nackRepeats    int
	nackAt         time.Time // a paced NACK is due then
	lastErr        string
	lastErrVersion string
	lastErrTime    time.Time

	accepted, rejected uint64
}

func newTypeState(k kind, cfg *Config) *typeState {
	st := &typeState{
		kind:    k,
		url:     kindURL[k],
		entries: make(map[string]*entry),
		wanted:  make(map[string]*want),
		timeout: cfg.InitialFetchTimeout,
	}
	switch k {
	case kindListener:
		st.wildcard, st.enabled = true, cfg.LDS
	case kindCluster:
		st.wildcard, st.enabled = true, cfg.CDS
	case kindRoute:
		st.enabled = cfg.LDS || len(cfg.StaticRoutes) > 0
	case kindEndpoint:
		st.enabled = cfg.CDS || len(cfg.StaticEndpoints) > 0
	case kindSecret:
		st.enabled = cfg.LDS || cfg.CDS || len(cfg.StaticSecrets) > 0
	}
	return st
}

func (st *typeState) deadlineFrom(now time.Time) time.Time {
	if st.timeout < 0 {
		return time.Time{}
	}
	return now.Add(st.timeout)
}

// ready tells whether the type holds back no Apply.
func (st *typeState) ready() bool {
	if !st.enabled {
		return true
	}
	if st.wildcard {
		return st.received || st.timedOut
	}
	for name, w := range st.wanted {
		if _, ok := st.entries[name]; !ok && !w.absent {
			return false
		}
	}
	return true
}

// nextDeadline is the earliest warming timeout or paced NACK of the type.
func (st *typeState) nextDeadline() time.Time {
	next := st.nackAt
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if st.enabled && st.wildcard && !st.received && !st.timedOut {
		consider(st.initialDeadline)
	}
	for name, w := range st.wanted {
		if _, ok := st.entries[name]; !ok && !w.absent {
			consider(w.deadline)
		}
	}
	return next
}

// expire gives up on what was due by now and tells whether it did.
func (st *typeState) expire(now time.Time, log hclog.Logger) bool {
	expired := false
	if st.enabled && st.wildcard && !st.received && !st.timedOut && !st.initialDeadline.IsZero() && !now.Before(st.initialDeadline) {
		st.timedOut = true
		expired = true
		log.Warn("initial fetch timed out; proceeding without", "type", st.url, "timeout", st.timeout)
	}
	var names []string
	for name, w := range st.wanted {
		if _, ok := st.entries[name]; ok || w.absent || w.deadline.IsZero() || now.Before(w.deadline) {
			continue
		}
		w.absent = true
		names = append(names, name)
	}
	if len(names) > 0 {
		slices.Sort(names)
		expired = true
		log.Warn("initial fetch timed out; treating as empty", "type", st.url, "names", names, "timeout", st.timeout)
	}
	return expired
}

// saved is a type's accepted state, to restore when Apply fails.
type saved struct {
	entries  map[string]*entry
	version  string
	received bool
	absent   map[string]bool
}

func (st *typeState) save() saved {
	// commit builds a new entries map, so the old one can be kept as is.
	s := saved{entries: st.entries, version: st.version, received: st.received, absent: make(map[string]bool)}
	for name, w := range st.wanted {
		s.absent[name] = w.absent
	}
	return s
}

func (st *typeState) restore(s saved) {
	st.entries, st.version, st.received = s.entries, s.version, s.received
	for name, w := range st.wanted {
		if a, ok := s.absent[name]; ok {
			w.absent = a
		}
	}
}

// startWarming sets the initial deadlines and the static names.
func (c *Client) startWarming(now time.Time) {
	for _, st := range c.types {
		if st.wildcard && st.enabled {
			st.initialDeadline = st.deadlineFrom(now)
		}
	}
	c.refreshWanted(now)
}

// wantedNames derives the names a non-wildcard type needs from the accepted
// listeners or clusters and the static names.
func (c *Client) wantedNames(k kind) map[string]bool {
	names := make(map[string]bool)
	var static []string
	var from *typeState
	switch k {
	case kindRoute:
		static, from = c.cfg.StaticRoutes, c.types[kindListener]
	case kindEndpoint:
		static, from = c.cfg.StaticEndpoints, c.types[kindCluster]
	case kindSecret:
		for _, n := range c.cfg.StaticSecrets {
			names[n] = true
		}
		for _, from := range []*typeState{c.types[kindListener], c.types[kindCluster]} {
			for _, e := range from.entries {
				for _, n := range e.secrets {
					names[n] = true
				}
			}
		}
		return names
	default:
		return names
	}
	for _, n := range static {
		names[n] = true
	}
	for _, e := range from.entries {
		for _, n := range e.refs {
			names[n] = true
		}
	}
	return names
}

// refreshWanted recomputes the names RDS, EDS and SDS need: new ones
// start warming at now, ones no longer needed are forgotten (their
// resources are dropped by pruneAndSubscribe).
func (c *Client) refreshWanted(now time.Time) {
	for _, k := range derived {
		st := c.types[k]
		names := c.wantedNames(k)
		for n := range names {
			if _, ok := st.wanted[n]; !ok {
				st.wanted[n] = &want{deadline: st.deadlineFrom(now)}
			}
		}
		for n := range st.wanted {
			if !names[n] {
				delete(st.wanted, n)
			}
		}
	}
}

// pruneAndSubscribe drops resources no longer needed and tells the server
// about changed RDS/EDS/SDS names.
func (c *Client) pruneAndSubscribe(now time.Time) {
	for _, k := range []kind{kindEndpoint, kindRoute, kindSecret} {
		st := c.types[k]
		for n := range st.entries {
			if _, ok := st.wanted[n]; !ok {
				delete(st.entries, n)
				c.log.Debug("dropped resource no longer referenced", "type", st.url, "name", n)
			}
		}
		c.sendSubscription(st)
	}
}

// complete tells whether every type is warm.
func (c *Client) complete() bool {
	for _, st := range c.types {
		if !st.ready() {
			return false
		}
	}
	return true
}

// maybeApply hands the set to the target if it is complete and differs from
// the one in force. The error is Apply's.
func (c *Client) maybeApply() error {
	if !c.complete() {
		return nil
	}
	res := c.assemble()
	if c.last != nil && sameResources(c.last, res) {
		return nil
	}
	err := c.target.Apply(res)
	c.syncOne.Do(func() { close(c.synced) })
	c.statusMu.Lock()
	if err != nil {
		c.status.ApplyErrors++
	} else {
		c.status.Applies++
	}
	c.statusMu.Unlock()
	if err != nil {
		return err
	}
	c.last = res
	c.log.Info("applied", "listeners", len(res.Listeners), "routes", len(res.Routes),
		"clusters", len(res.Clusters), "endpoints", len(res.Endpoints), "secrets", len(res.Secrets))
	return nil
}
