package lb

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Priority is one EDS priority level. Its index in New's levels is its
// priority: 0 is the highest.
type Priority struct {
	Localities []Locality
}

// Locality is one locality of a priority level: its name, its
// load_balancing_weight (used with Config.LocalityWeighted; 0 takes no
// traffic then) and its hosts.
type Locality struct {
	Name   string
	Weight uint32
	Hosts  []*Host
}

// Balancer is the Picker New returns, with read-outs for the admin page and
// an explicit refresh.
type Balancer interface {
	Picker
	// Panic reports whether priority is in panic mode now: its picks go
	// to all its hosts, healthy or not. False for an unknown priority.
	Panic(priority int) bool
	// State describes the levels as the balancer sees them now.
	State() State
	// Refresh rebuilds now if a host changed since the last pick, as the
	// next pick would. Whoever flips flags (a health checker, outlier
	// detection) may call it right after, so that no request pays for
	// rebuilding a large ring or table.
	Refresh()
}

// State is a balancer's view of its levels, for /clusters and /stats.
type State struct {
	Levels []LevelState
	// HealthyPanic counts picks made in a priority in panic mode
	// (Envoy's lb_healthy_panic).
	HealthyPanic uint64
	// Rebuilds counts how often host changes made the balancer recompute
	// its levels and policies since New.
	Rebuilds uint64
}

// LevelState is one priority level.
type LevelState struct {
	Hosts, Healthy int
	// Health is the healthy percentage × the overprovisioning factor,
	// capped at 100; Load the percent of requests the level receives.
	Health, Load uint32
	Panic        bool
}

// New builds a balancer over levels (priority = index) with cfg's policy,
// spreading load over priorities and localities as Envoy does (see
// docs/load-balancing.md).
//
// Hosts may change health (SetFlag) and weight (SetWeight) at any time: the
// next Pick notices and recomputes the levels, the policies' tables
// included, once, while concurrent picks keep using the previous state. A
// change of the host list itself builds a new balancer. New keeps levels'
// slices: callers must not modify them afterwards.
func New(cfg Config, levels []Priority) (Balancer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := &balancer{cfg: cfg.withDefaults(), levels: levels}
	for p, lvl := range levels {
		for l, loc := range lvl.Localities {
			for i, h := range loc.Hosts {
				if h == nil {
					return nil, fmt.Errorf("lb: priority %d locality %d (%q): host %d is nil", p, l, loc.Name, i)
				}
				b.hosts = append(b.hosts, h)
			}
		}
	}
	// The epoch is read before the hosts: a change racing with New bumps
	// it again and is caught by the first pick.
	b.seen.Store(epoch.Load())
	b.state.Store(b.build(b.versionSum()))
	return b, nil
}

// balancer is the Picker New returns. Its derived state (loads, panic
// flags, policies) sits behind an atomic pointer; picks load it, check one
// global counter, and take no lock of their own.
type balancer struct {
	cfg    Config
	levels []Priority
	hosts  []*Host // every host of every level, to sum versions

	state atomic.Pointer[lbState]
	seen  atomic.Uint64 // the epoch state was last checked against
	mu    sync.Mutex    // one rebuild at a time

	healthyPanic atomic.Uint64
	rebuilds     atomic.Uint64
}

// lbState is one immutable computation of the levels.
type lbState struct {
	versions uint64   // sum of the hosts' versions it was built from
	cum      []uint32 // running sums of the levels' loads
	levels   []levelPicker
	info     []LevelState
}

// levelPicker picks within one priority level.
type levelPicker struct {
	panic bool
	pol   policy // the whole level; nil with locs, or with no host
	// locs and locCum: per-locality policies and the running sums of the
	// localities' effective weights (LocalityWeighted, not hashed, not in
	// panic).
	locs   []policy
	locCum []float64
}

// Pick chooses a host, or nil when there is none to choose.
func (b *balancer) Pick(r *Request) *Host {
	st := b.current()
	if len(st.cum) == 0 {
		return nil
	}
	if b.cfg.Policy.hashed() {
		// The hash picks the priority too, so a key sticks to one
		// level; retries walk the same level's table.
		hash := r.hash()
		lp := st.level(hash)
		if lp.panic {
			b.healthyPanic.Add(1)
		}
		if lp.pol == nil {
			return nil
		}
		h := lp.pol.choose(hash, 0)
		for i := 0; i < r.retries() && h != nil && r.Rejects(h); i++ {
			h = lp.pol.choose(hash, i+1)
		}
		return h
	}
	// As in Envoy, every attempt chooses its priority and locality anew.
	h := b.pickOnce(st)
	for i := 0; i < r.retries() && h != nil && r.Rejects(h); i++ {
		h = b.pickOnce(st)
	}
	return h
}

func (b *balancer) pickOnce(st *lbState) *Host {
	lp := st.level(rand.Uint64())
	if lp.panic {
		b.healthyPanic.Add(1)
	}
	if lp.locs != nil {
		x := rand.Float64() * lp.locCum[len(lp.locCum)-1]
		return lp.locs[searchFloat(lp.locCum, x)].choose(0, 0)
	}
	if lp.pol == nil {
		return nil
	}
	return lp.pol.choose(0, 0)
}

// hash is the request's hash, or a random one.
func (r *Request) hash() uint64 {
	if r != nil && r.HasHash {
		return r.Hash
	}
	return rand.Uint64()
}

// level chooses a priority as Envoy does: hash%100+1 against the running
// load percentages.
func (st *lbState) level(hash uint64) *levelPicker {
	x := uint32(hash%100) + 1
	for i, c := range st.cum {
		if x <= c {
			return &st.levels[i]
		}
	}
	return &st.levels[len(st.levels)-1]
}

// current returns the state, first rebuilding it if a host of b changed.
// Only one goroutine rebuilds; the others keep picking from the previous
// state meanwhile rather than wait.
func (b *balancer) current() *lbState {
	st := b.state.Load()
	if epoch.Load() == b.seen.Load() {
		return st
	}
	if !b.mu.TryLock() {
		return st
	}
	defer b.mu.Unlock()
	e := epoch.Load() // before reading versions and flags, as in New
	st = b.state.Load()
	if v := b.versionSum(); v != st.versions {
		st = b.build(v)
		b.state.Store(st)
		b.rebuilds.Add(1)
	}
	b.seen.Store(e)
	return st
}

// versionSum changes whenever a host of b changed: versions only grow.
func (b *balancer) versionSum() uint64 {
	var v uint64
	for _, h := range b.hosts {
		v += h.version.Load()
	}
	return v
}

// build computes the levels' loads and panic flags from the hosts' flags
// now, and builds a policy for every level that receives load. Each host's
// availability is read once, so counts and policies agree even while flags
// flip under the build.
func (b *balancer) build(versions uint64) *lbState {
	counts := make([]levelCount, len(b.levels))
	healthy := make([][][]*Host, len(b.levels)) // [level][locality]
	for i, lvl := range b.levels {
		healthy[i] = make([][]*Host, len(lvl.Localities))
		for l, loc := range lvl.Localities {
			healthy[i][l] = available(loc.Hosts)
			counts[i].total += len(loc.Hosts)
			counts[i].healthy += len(healthy[i][l])
		}
	}
	health, load, inPanic := priorityLoads(counts, b.cfg.OverprovisioningFactor, *b.cfg.PanicThreshold)
	st := &lbState{
		versions: versions,
		cum:      make([]uint32, len(b.levels)),
		levels:   make([]levelPicker, len(b.levels)),
		info:     make([]LevelState, len(b.levels)),
	}
	var sum uint32
	for i := range b.levels {
		sum += load[i]
		st.cum[i] = sum
		st.info[i] = LevelState{Hosts: counts[i].total, Healthy: counts[i].healthy, Health: health[i], Load: load[i], Panic: inPanic[i]}
		if load[i] > 0 {
			st.levels[i] = b.buildLevel(b.levels[i], healthy[i], inPanic[i])
		}
	}
	return st
}

// buildLevel builds the pickers of one level; healthy holds each
// locality's available hosts.
func (b *balancer) buildLevel(lvl Priority, healthy [][]*Host, inPanic bool) levelPicker {
	lp := levelPicker{panic: inPanic}
	use := healthy
	if inPanic {
		use = make([][]*Host, len(lvl.Localities))
		for l, loc := range lvl.Localities {
			use[l] = loc.Hosts
		}
	}
	if b.cfg.LocalityWeighted {
		// A hash policy keeps one table per level, its hosts weighted by
		// their localities' weights, over all hosts in panic (Envoy).
		// The others pick a locality, then a host in it; in panic they
		// ignore localities (Envoy again).
		if b.cfg.Policy.hashed() {
			if hosts, weights := localityWeights(lvl, use); len(hosts) > 0 {
				lp.pol = b.newPolicy(hosts, weights)
				return lp
			}
		} else if !inPanic {
			var sum float64
			for l, loc := range lvl.Localities {
				w := effectiveLocalityWeight(loc, len(healthy[l]), b.cfg.OverprovisioningFactor)
				if w <= 0 {
					continue
				}
				sum += w
				lp.locs = append(lp.locs, b.newPolicy(healthy[l], nil))
				lp.locCum = append(lp.locCum, sum)
			}
			if lp.locs != nil {
				return lp
			}
		}
		// No locality with weight and a host to use: balance over the
		// whole level, as Envoy falls back to.
	}
	var hosts []*Host
	for _, hs := range use {
		hosts = append(hosts, hs...)
	}
	if len(hosts) > 0 {
		lp.pol = b.newPolicy(hosts, nil)
	}
	return lp
}

// newPolicy builds cfg's policy over hosts. weights are the hosts'
// normalized weights, which only the hash policies use (nil otherwise).
func (b *balancer) newPolicy(hosts []*Host, weights []float64) policy {
	c := &b.cfg
	switch c.Policy {
	case LeastRequestPolicy:
		return newLeastRequest(hosts, int(c.ChoiceCount), *c.ActiveRequestBias)
	case RandomPolicy:
		return newRandom(hosts)
	case RingHashPolicy:
		if weights == nil {
			weights = normalizedWeights(hosts, 1, nil)
		}
		return newRingHash(hosts, weights, c.MinRingSize, c.MaxRingSize)
	case MaglevPolicy:
		if weights == nil {
			weights = normalizedWeights(hosts, 1, nil)
		}
		return newMaglev(hosts, weights, c.TableSize)
	case PeakEWMAPolicy:
		return newPeakEWMA(hosts, int(c.ChoiceCount), c.DefaultRTT, c.Decay)
	}
	// The hosts are the level's healthy ones already (or all of them in
	// panic); between a flip and the rebuild a stale pick is better than
	// none, as with the other policies.
	return newRoundRobin(hosts, false)
}

// available returns the hosts that are available now.
func available(hosts []*Host) []*Host {
	out := make([]*Host, 0, len(hosts))
	for _, h := range hosts {
		if h.Available() {
			out = append(out, h)
		}
	}
	return out
}

// effectiveLocalityWeight is Envoy's: the locality's weight × its healthy
// fraction × the overprovisioning factor, the product of the last two
// capped at 1.
func effectiveLocalityWeight(loc Locality, healthy int, overprovisioning uint32) float64 {
	if len(loc.Hosts) == 0 || healthy == 0 {
		return 0
	}
	ratio := float64(overprovisioning) / 100 * float64(healthy) / float64(len(loc.Hosts))
	return float64(loc.Weight) * min(1, ratio)
}

// normalizedWeights appends to dst each host's weight / the hosts' total,
// times scale.
func normalizedWeights(hosts []*Host, scale float64, dst []float64) []float64 {
	var sum float64
	for _, h := range hosts {
		sum += float64(h.Weight())
	}
	for _, h := range hosts {
		dst = append(dst, scale*float64(h.Weight())/sum)
	}
	return dst
}

// localityWeights returns the hosts of use (per locality: the available
// ones, or all in panic) with the weights a hash policy gives them under
// LocalityWeighted, as Envoy normalizes them: a host's share of its
// locality times its locality's share of the locality weights. Unlike
// Envoy, only localities with a host to use share the whole (Envoy leaves
// the others' share unassigned, which only shrinks the ring).
func localityWeights(lvl Priority, use [][]*Host) ([]*Host, []float64) {
	var total float64
	for l, loc := range lvl.Localities {
		if loc.Weight > 0 && len(use[l]) > 0 {
			total += float64(loc.Weight)
		}
	}
	var hosts []*Host
	var weights []float64
	for l, loc := range lvl.Localities {
		if loc.Weight > 0 && len(use[l]) > 0 {
			hosts = append(hosts, use[l]...)
			weights = normalizedWeights(use[l], float64(loc.Weight)/total, weights)
		}
	}
	return hosts, weights
}

// searchFloat returns the first index whose running sum exceeds x.
func searchFloat(cum []float64, x float64) int {
	lo, hi := 0, len(cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// Panic reports whether priority is in panic mode now.
func (b *balancer) Panic(priority int) bool {
	st := b.current()
	return priority >= 0 && priority < len(st.info) && st.info[priority].Panic
}

// Refresh rebuilds now if a host changed.
func (b *balancer) Refresh() { b.current() }

// State describes the levels now.
func (b *balancer) State() State {
	st := b.current()
	return State{
		Levels:       append([]LevelState(nil), st.info...),
		HealthyPanic: b.healthyPanic.Load(),
		Rebuilds:     b.rebuilds.Load(),
	}
}
