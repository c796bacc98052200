package server

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
	"github.com/outrigger-mesh/outrigger/controlplane/translate"
)

// Node kinds, also the keys of the two caches.
const (
	kindProxy     = "proxy"
	kindProxyless = "proxyless"
)

// Update translates m for every registered proxy and for proxyless
// clients and hands connected nodes whatever changed. A proxy whose
// translation fails (an error, an invalid resource, a dangling reference)
// keeps its previous configuration; the failure is logged and counted. A
// connected proxy that is no longer registered keeps its last
// configuration until it disconnects. Update is meant to be called by the
// watcher's publish; calls are serialized.
func (s *Server) Update(m *model.Mesh) {
	// The watcher calls Update as soon as Consul answered with a change, so
	// its start (before waiting for an Update in progress) stands for the
	// change in the push latency.
	start := time.Now()
	if m == nil {
		return
	}
	s.updateMu.Lock()
	defer s.updateMu.Unlock()

	proxyFn, proxylessFn := s.translateProxy, s.translateProxyless
	if s.perMesh {
		tr := translate.NewWithOptions(m, s.translation)
		proxyFn = func(_ *model.Mesh, id string) (*translate.Resources, error) { return tr.Proxy(id) }
		proxylessFn = func(*model.Mesh) (*translate.Resources, error) { return tr.Proxyless() }
	}
	b := newBuilder(s.interned)
	proxyGroup := make(map[string]string, len(m.Proxies))
	groups := map[string]*group{}
	failed := 0
	for _, id := range slices.Sorted(maps.Keys(m.Proxies)) {
		g, err := s.group(b, kindProxy, func() (*translate.Resources, error) { return proxyFn(m, id) }, groups)
		if err != nil {
			failed++
			old, had := s.proxyGroup[id]
			if errors.Is(err, translate.ErrCANotReady) {
				// Not a failure: no sidecar gets half-configured TLS.
				s.log.Info("waiting for the Connect CA before configuring a proxy",
					"proxy", id, "has_previous", had, "mesh_index", m.Index, "error", err)
			} else {
				s.metrics.translateErrs.Inc()
				s.log.Error("translation failed for a proxy; it keeps its previous configuration",
					"proxy", id, "has_previous", had, "mesh_index", m.Index, "error", err)
			}
			if had {
				proxyGroup[id] = old
				groups[old] = s.groups[old]
			}
			continue
		}
		proxyGroup[id] = g.key
		groups[g.key] = g
	}

	proxyless := s.proxylessGroup
	if g, err := s.group(b, kindProxyless, func() (*translate.Resources, error) { return proxylessFn(m) }, nil); err != nil {
		failed++
		s.metrics.translateErrs.Inc()
		s.log.Error("translation failed for proxyless clients; they keep their previous configuration",
			"has_previous", proxyless != nil, "mesh_index", m.Index, "error", err)
	} else {
		proxyless = g
	}

	s.mu.Lock()
	s.mesh = m
	s.proxyGroup, s.groups, s.proxylessGroup = proxyGroup, groups, proxyless
	s.interned = b.interned
	s.updated = time.Now()
	changed := 0
	for _, n := range s.nodes {
		g := s.groupOf(n)
		if g != nil && g != n.group {
			changed++
			n.expect(g, start)
			s.apply(n, g)
		}
	}
	nodes := len(s.nodes)
	s.mu.Unlock()

	s.metrics.meshIndex.Set(float64(m.Index))
	s.metrics.proxies.Set(float64(len(m.Proxies)))
	s.metrics.groups.Set(float64(len(groups)))
	s.log.Debug("mesh translated", "mesh_index", m.Index, "proxies", len(m.Proxies), "groups", len(groups),
		"failed", failed, "connected_nodes", nodes, "nodes_updated", changed, "took", time.Since(start))
}

// group translates, validates and hashes one configuration and returns its
// group: the existing one (same object) when the content is unchanged or
// already built in this update, so connected nodes see no change.
func (s *Server) group(b *builder, kind string, tr func() (*translate.Resources, error), built map[string]*group) (*group, error) {
	res, err := safely(tr)
	if err != nil {
		return nil, err
	}
	c, err := b.content(kind, res)
	if err != nil {
		return nil, err
	}
	if g := built[c.key]; g != nil {
		return g, nil
	}
	if kind == kindProxyless {
		if s.proxylessGroup != nil && s.proxylessGroup.key == c.key {
			return s.proxylessGroup, nil
		}
	} else if g := s.groups[c.key]; g != nil {
		return g, nil
	}
	return &group{key: c.key, snap: c.snapshot()}, nil
}

// safely runs a translation, turning a panic into an error so one bad
// proxy cannot take the control plane down.
func safely(tr func() (*translate.Resources, error)) (res *translate.Resources, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("translation panicked: %v", r)
		}
	}()
	return tr()
}

// groupOf is the configuration node n should have now (mu held): its
// proxy's group, the proxyless set, or (a proxy no longer registered or
// never translated) what it has.
func (s *Server) groupOf(n *node) *group {
	if n.kind == kindProxyless {
		return s.proxylessGroup
	}
	if key, ok := s.proxyGroup[n.id]; ok {
		return s.groups[key]
	}
	return n.group
}

// expect records, per type whose version differs between the node's
// configuration and g, that g's version is on its way since start (mu
// held). A type that did not change keeps what was pending.
func (n *node) expect(g *group, start time.Time) {
	for _, slot := range slots {
		v := g.snap.Resources[slot.index].Version
		if v == "" || n.group != nil && n.group.snap.Resources[slot.index].Version == v {
			continue
		}
		n.pending[typeOf(slot.typeURL)] = pendingPush{version: v, since: start}
	}
}
