// Package lb picks an upstream host for a request. Every policy is one small
// type behind the one-method Picker interface, and asks one predicate of a
// host: Available. Policies never see Envoy protos or clusters.
package lb

import (
	"strings"
	"sync/atomic"
)

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

	weight atomic.Uint32
	flags  atomic.Uint32

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
	h := &Host{Address: address}
	h.SetWeight(weight)
	return h
}

// Weight is the host's load-balancing weight, at least 1.
func (h *Host) Weight() uint32 { return h.weight.Load() }

// SetWeight changes the weight; pickers built afterwards see it. 0 means 1.
func (h *Host) SetWeight(w uint32) {
	if w == 0 {
		w = 1
	}
	h.weight.Store(w)
}

// Available reports whether a balancer may send new requests to h: no
// health flag is set. Later (circuit breakers) it also means "not full".
func (h *Host) Available() bool { return h.flags.Load() == 0 }

// Healthy is Available under the name health checkers use.
func (h *Host) Healthy() bool { return h.Available() }

// SetFlag sets or clears one health flag.
func (h *Host) SetFlag(f HealthFlag, on bool) {
	if on {
		h.flags.Or(uint32(f))
	} else {
		h.flags.And(^uint32(f))
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
