package server

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// Status is the server's state for the debug endpoint (JSON).
type Status struct {
	// Ready is true once a mesh was given to Update.
	Ready bool `json:"ready"`
	// MeshIndex is the Consul index of the last mesh; Updated when it came.
	MeshIndex uint64    `json:"mesh_index"`
	Updated   time.Time `json:"updated,omitzero"`
	// Proxies counts the registered connect-proxies in the last mesh.
	Proxies int `json:"proxies"`
	// Groups are the distinct configurations (proxy groups, then the
	// proxyless set), by key.
	Groups []GroupStatus `json:"groups"`
	// Nodes are the connected xDS clients, by ID.
	Nodes []NodeStatus `json:"nodes"`
	// LastNACKs are the most recent rejections, oldest first (at most 32).
	LastNACKs []NACK `json:"last_nacks"`
}

// GroupStatus is one shared configuration.
type GroupStatus struct {
	Key  string `json:"key"`
	Kind string `json:"kind"`
	// Proxies are the registered proxies currently assigned to it (0 for
	// the proxyless set).
	Proxies int `json:"proxies"`
	// Connected counts nodes being served from it.
	Connected int `json:"connected"`
	// Versions by type name (listener, route, cluster, endpoint).
	Versions map[string]string `json:"versions"`
}

// NodeStatus is one connected xDS client.
type NodeStatus struct {
	ID             string    `json:"id"`
	Kind           string    `json:"kind"`
	Streams        int       `json:"streams"`
	ConnectedSince time.Time `json:"connected_since"`
	// Group is the key of the configuration it is served, "" while it has
	// none (its translation never succeeded).
	Group string `json:"group"`
	// Served are the versions it is served now, Acked those it last
	// accepted, by type name.
	Served   map[string]string `json:"served"`
	Acked    map[string]string `json:"acked"`
	LastNACK *NACK             `json:"last_nack,omitempty"`
}

// NACK is one rejected response.
type NACK struct {
	Node string `json:"node"`
	// Type is the type URL.
	Type string `json:"type"`
	// Version is the rejected version (when the nonce matched the last
	// response); Accepted the version the client still runs (state of the
	// world only).
	Version  string    `json:"version,omitempty"`
	Accepted string    `json:"accepted_version,omitempty"`
	Nonce    string    `json:"nonce"`
	Error    string    `json:"error"`
	Time     time.Time `json:"time"`
}

// Status returns a copy of the server's state.
func (s *Server) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Ready: s.mesh != nil, Updated: s.updated, LastNACKs: slices.Clone(s.nacks),
		Groups: []GroupStatus{}, Nodes: []NodeStatus{}}
	if st.LastNACKs == nil {
		st.LastNACKs = []NACK{}
	}
	if s.mesh != nil {
		st.MeshIndex = s.mesh.Index
		st.Proxies = len(s.mesh.Proxies)
	}
	members := map[string]int{}
	for _, key := range s.proxyGroup {
		members[key]++
	}
	connected := map[*group]int{}
	for _, id := range slices.Sorted(maps.Keys(s.nodes)) {
		n := s.nodes[id]
		ns := NodeStatus{ID: n.id, Kind: n.kind, Streams: n.streams, ConnectedSince: n.since,
			Served: versions(n.group), Acked: map[string]string{}}
		if n.group != nil {
			ns.Group = n.group.key
			connected[n.group]++
		}
		for t, v := range n.acked {
			if v != "" {
				ns.Acked[typeNames[t]] = v
			}
		}
		if n.lastNACK != nil {
			nack := *n.lastNACK
			ns.LastNACK = &nack
		}
		st.Nodes = append(st.Nodes, ns)
	}
	for _, g := range s.groups {
		st.Groups = append(st.Groups, GroupStatus{Key: g.key, Kind: kindProxy, Proxies: members[g.key],
			Connected: connected[g], Versions: versions(g)})
	}
	slices.SortFunc(st.Groups, func(a, b GroupStatus) int { return strings.Compare(a.Key, b.Key) })
	if g := s.proxylessGroup; g != nil {
		st.Groups = append(st.Groups, GroupStatus{Key: g.key, Kind: kindProxyless, Connected: connected[g], Versions: versions(g)})
	}
	return st
}

// versions lists a group's type versions by type name.
func versions(g *group) map[string]string {
	out := map[string]string{}
	if g == nil {
		return out
	}
	for _, slot := range slots {
		out[slot.kind] = g.snap.Resources[slot.index].Version
	}
	return out
}
