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
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Type is the client's kind by its user agent: outrigger, envoy, grpc
	// or other; UserAgent and UserAgentVersion are its node.user_agent_*
	// as sent; Mode the xDS variant of its first stream, sotw or delta.
	Type             string    `json:"type"`
	UserAgent        string    `json:"user_agent"`
	UserAgentVersion string    `json:"user_agent_version"`
	Mode             string    `json:"xds_mode"`
	Streams          int       `json:"streams"`
	ConnectedSince   time.Time `json:"connected_since"`
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
		ns := NodeStatus{ID: n.id, Kind: n.kind, Type: n.agent.String(), UserAgent: n.agentName,
			UserAgentVersion: n.agentVersion, Mode: n.mode.String(), Streams: n.streams, ConnectedSince: n.since,
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

// ProxyStatus is one connected xDS client as GET /debug/proxies shows it.
type ProxyStatus struct {
	// ID is node.id; Service the proxy's destination service in Consul
	// (node.cluster for a proxyless client).
	ID      string `json:"id"`
	Service string `json:"service"`
	// Kind is proxy (a registered connect-proxy) or proxyless; Type the
	// client by its user agent: outrigger, envoy, grpc or other.
	Kind             string `json:"kind"`
	Type             string `json:"type"`
	UserAgent        string `json:"user_agent"`
	UserAgentVersion string `json:"user_agent_version"`
	// Mode is the xDS variant of its first stream: sotw or delta.
	Mode           string    `json:"xds_mode"`
	Streams        int       `json:"streams"`
	ConnectedSince time.Time `json:"connected_since"`
	// Resources are its per-type state, by type URL, for the types it was
	// served, ACKed or NACKed.
	Resources map[string]ResourceStatus `json:"resources"`
}

// ResourceStatus is one client's state for one resource type.
type ResourceStatus struct {
	// Served is the version it is served now, Acked the version it last
	// accepted and AckedAt when ("" and zero before its first ACK).
	Served  string    `json:"served,omitempty"`
	Acked   string    `json:"acked"`
	AckedAt time.Time `json:"acked_at,omitzero"`
	// LastNACK is its last rejection of this type, kept after later ACKs.
	LastNACK *NACK `json:"last_nack,omitempty"`
}

// Proxies lists the connected xDS clients by ID.
func (s *Server) Proxies() []ProxyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProxyStatus, 0, len(s.nodes))
	for _, id := range slices.Sorted(maps.Keys(s.nodes)) {
		n := s.nodes[id]
		ps := ProxyStatus{ID: n.id, Service: n.service, Kind: n.kind, Type: n.agent.String(), UserAgent: n.agentName,
			UserAgentVersion: n.agentVersion, Mode: n.mode.String(), Streams: n.streams, ConnectedSince: n.since,
			Resources: map[string]ResourceStatus{}}
		served := map[typeIndex]string{}
		if n.group != nil {
			for _, slot := range slots {
				served[typeOf(slot.typeURL)] = n.group.snap.Resources[slot.index].Version
			}
		}
		for t := range typeOther {
			rs := ResourceStatus{Served: served[t], Acked: n.acked[t], AckedAt: n.ackedAt[t]}
			if nack := n.nacks[t]; nack != nil {
				c := *nack
				rs.LastNACK = &c
			}
			if rs != (ResourceStatus{}) {
				ps.Resources[typeURLs[t]] = rs
			}
		}
		out = append(out, ps)
	}
	return out
}
