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
}

func staticTargets(eps []Endpoint) []target {
	ts := make([]target, len(eps))
	for i, ep := range eps {
		ts[i] = target{addr: ep.Address, weight: ep.Weight}
	}
	return ts
}

// newHostSet builds a set over targets, reusing the Host of an address the
// previous set already had so its counters and health survive the update.
// An address listed twice becomes two hosts, as in Envoy.
func newHostSet(prev *hostSet, ts []target) *hostSet {
	reuse := map[string][]*lb.Host{}
	if prev != nil {
		for _, h := range prev.hosts {
			reuse[h.Address] = append(reuse[h.Address], h)
		}
	}
	s := &hostSet{hosts: make([]*lb.Host, 0, len(ts)), byAddr: make(map[string]*lb.Host, len(ts))}
	for _, t := range ts {
		var h *lb.Host
		if old := reuse[t.addr]; len(old) > 0 {
			h, reuse[t.addr] = old[0], old[1:]
			h.SetWeight(t.weight)
		} else {
			h = lb.NewHost(t.addr, t.weight)
			h.Hostname = t.hostname
		}
		s.hosts = append(s.hosts, h)
		if _, dup := s.byAddr[t.addr]; !dup {
			s.byAddr[t.addr] = h
		}
	}
	s.picker = lb.NewRoundRobin(s.hosts)
	return s
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
		if h.Address != t.addr || h.Weight() != w {
			return false
		}
	}
	return true
}
