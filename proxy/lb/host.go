// Package lb picks an upstream host for a request. New builds a Balancer
// over a cluster's priority levels and localities: it decides, as Envoy
// does, which level (and locality) a request goes to from the hosts'
// Available flags, and hands the choice of host to one small policy type
// (round robin, least request, random, ring hash, Maglev, peak EWMA) over
// the hosts to use. Policies never see Envoy protos or clusters.
package lb

import (
	"strings"
	"sync/atomic"
)

// epoch counts every effective change of any host's health flags or weight
// in the process. Balancers built by New compare it with the value they last
// saw: one atomic load per pick tells them nothing changed anywhere. When it
// moved they sum their own hosts' versions to learn whether the change was
// theirs before rebuilding anything.
var epoch atomic.Uint64

// HealthFlag is one reason a host is unavailable. Flags combine; a host with
// none is available. The names follow Envoy's /clusters health_flags.
type HealthFlag uint32

const (
	FailedActiveHC        HealthFlag = 1 << iota // active health check failed
	FailedOutlierCheck                           // ejected by outlier detection
	FailedEDSHealth                              // the control plane says unhealthy
	PendingDynamicRemoval                        // removed, draining its requests
)

var flagNames = [...]struct {
	f    HealthFlag
	name string
}{
	{FailedActiveHC, "/failed_active_hc"},
	{FailedOutlierCheck, "/failed_outlier_check"},
	{FailedEDSHealth, "/failed_eds_health"},
	{PendingDynamicRemoval, "/pending_dynamic_removal"},
}

// Host is one upstream address as the balancers and the admin page see it.
// Its counters are the ones Envoy reports per host; load-aware policies read
// RqActive. A Host is shared by every goroutine: all mutable state is atomic.
type Host struct {
	// Address is "ip:port" (or "[ip6]:port"), ready to dial.
	Address string
	// Hostname is the DNS name the address was resolved from, "" for STATIC.
	Hostname string
	// Priority is the EDS priority the host was listed at (0 is highest)
	// and Locality its locality's name, for /clusters. Whoever creates the
	// host sets them before sharing it; balancers do not read them (New
	// takes the grouping from its levels argument). A host that moves to
	// another priority or locality is a new Host.
	Priority uint32
	Locality string

	weight  atomic.Uint32
	flags   atomic.Uint32
	version atomic.Uint64 // bumped with epoch on every effective change

	latency latency // PEAK_EWMA's estimate, fed by ObserveLatency

	Stats HostStats
}

// HostStats are Envoy's per-host counters (cx_* and rq_*).
type HostStats struct {
	CxActive      atomic.Int64
	CxTotal       atomic.Uint64
	CxConnectFail atomic.Uint64
	RqActive      atomic.Int64
	RqTotal       atomic.Uint64
	RqSuccess     atomic.Uint64
	RqError       atomic.Uint64
	RqTimeout     atomic.Uint64
}

// NewHost returns an available host. A weight of 0 means 1, as in Envoy.
func NewHost(address string, weight uint32) *Host {
	if weight == 0 {
		weight = 1
	}
	h := &Host{Address: address}
	h.weight.Store(weight) // not shared yet: no balancer needs telling
	return h
}

// Weight is the host's load-balancing weight, at least 1.
func (h *Host) Weight() uint32 { return h.weight.Load() }

// SetWeight changes the weight. 0 means 1. Balancers built by New see the
// change on their next pick; a RoundRobin from NewRoundRobin keeps the
// weights it was built with.
func (h *Host) SetWeight(w uint32) {
	if w == 0 {
		w = 1
	}
	if h.weight.Swap(w) != w {
		h.changed()
	}
}

// changed tells balancers that h's flags or weight moved.
func (h *Host) changed() {
	h.version.Add(1)
	epoch.Add(1)
}

// Available reports whether a balancer may send new requests to h: no
// health flag is set. Later (circuit breakers) it also means "not full".
func (h *Host) Available() bool { return h.flags.Load() == 0 }

// Healthy is Available under the name health checkers use.
func (h *Host) Healthy() bool { return h.Available() }

// SetFlag sets or clears one health flag. Balancers built by New notice an
// actual change on their next pick and rebuild; setting a flag that is
// already set costs them nothing.
func (h *Host) SetFlag(f HealthFlag, on bool) {
	var old, now uint32
	if on {
		old = h.flags.Or(uint32(f))
		now = old | uint32(f)
	} else {
		old = h.flags.And(^uint32(f))
		now = old &^ uint32(f)
	}
	if now != old {
		h.changed()
	}
}

// Flags returns the health flags now set.
func (h *Host) Flags() HealthFlag { return HealthFlag(h.flags.Load()) }

// HealthString renders the flags as Envoy's /clusters does: "healthy", or
// the failing reasons each prefixed by '/'.
func (h *Host) HealthString() string {
	f := h.Flags()
	if f == 0 {
		return "healthy"
	}
	var b strings.Builder
	for _, n := range flagNames {
		if f&n.f != 0 {
			b.WriteString(n.name)
		}
	}
	return b.String()
}
