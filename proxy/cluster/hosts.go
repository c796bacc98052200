package cluster

import (
	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// hostSet is one immutable generation of a cluster's hosts and the picker
// over them. A change of endpoints publishes a new one.
type hostSet struct {
	hosts  []*lb.Host
	picker lb.Picker
	byAddr map[string]*lb.Host
}

// target is one address to balance over, before it becomes a Host.
type target struct {
	addr     string // "ip:port"
	hostname string // the DNS name it came from, "" for STATIC
	weight   uint32

	priority       uint32
	locality       string
	localityWeight uint32
	unhealthy      bool // EDS health_status
}

// endpointTarget is the target of an endpoint at addr (its own address, or
// one its name resolved to).
func endpointTarget(ep *Endpoint, addr, hostname string) target {
	return target{
		addr: addr, hostname: hostname, weight: ep.Weight,
		priority: ep.Priority, locality: ep.Locality, localityWeight: ep.LocalityWeight,
		unhealthy: ep.Unhealthy,
	}
}

func staticTargets(eps []Endpoint) []target {
	ts := make([]target, len(eps))
	for i := range eps {
		ts[i] = endpointTarget(&eps[i], eps[i].Address, "")
	}
	return ts
}

// hostKey tells hosts apart across updates: an address that moves to
// another priority or locality becomes a new host.
type hostKey struct {
	addr     string
	priority uint32
	locality string
}

// newHostSet builds a set over targets, reusing the Host of an address the
// previous set already had so its counters and health survive the update.
// An address listed twice becomes two hosts, as in Envoy. The picker is
// built by cfg's policy over the hosts grouped by priority and locality.
func newHostSet(prev *hostSet, ts []target, cfg *lb.Config) (*hostSet, error) {
	reuse := map[hostKey][]*lb.Host{}
	if prev != nil {
		for _, h := range prev.hosts {
			k := hostKey{h.Address, h.Priority, h.Locality}
			reuse[k] = append(reuse[k], h)
		}
	}
	s := &hostSet{hosts: make([]*lb.Host, 0, len(ts)), byAddr: make(map[string]*lb.Host, len(ts))}
	var levels []lb.Priority
	locAt := map[hostKey]int{} // (priority, locality) → index in its level
	for _, t := range ts {
		var h *lb.Host
		k := hostKey{t.addr, t.priority, t.locality}
		if old := reuse[k]; len(old) > 0 {
			h, reuse[k] = old[0], old[1:]
			h.SetWeight(t.weight)
		} else {
			h = lb.NewHost(t.addr, t.weight)
			h.Hostname = t.hostname
			h.Priority = t.priority
			h.Locality = t.locality
		}
		h.SetFlag(lb.FailedEDSHealth, t.unhealthy)
		s.hosts = append(s.hosts, h)
		if _, dup := s.byAddr[t.addr]; !dup {
			s.byAddr[t.addr] = h
		}
		for int(t.priority) >= len(levels) {
			levels = append(levels, lb.Priority{})
		}
		lk := hostKey{priority: t.priority, locality: t.locality}
		i, ok := locAt[lk]
		if !ok {
			i = len(levels[t.priority].Localities)
			locAt[lk] = i
			levels[t.priority].Localities = append(levels[t.priority].Localities,
				lb.Locality{Name: t.locality, Weight: t.localityWeight})
		}
		loc := &levels[t.priority].Localities[i]
		loc.Hosts = append(loc.Hosts, h)
	}
	var c lb.Config
	if cfg != nil {
		c = *cfg
	}
	picker, err := lb.New(c, levels)
	if err != nil {
		return nil, err
	}
	s.picker = picker
	return s, nil
}

// sameTargets reports whether a set already balances exactly over ts, so a
// DNS refresh that changed nothing keeps the picker's rotation.
func (s *hostSet) sameTargets(ts []target) bool {
	if s == nil || len(s.hosts) != len(ts) {
		return false
	}
	for i, t := range ts {
		h := s.hosts[i]
		w := t.weight
		if w == 0 {
			w = 1
		}
		if h.Address != t.addr || h.Weight() != w || h.Priority != t.priority || h.Locality != t.locality {
			return false
		}
	}
	return true
}
