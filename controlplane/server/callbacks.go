package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// proxylessAgentPrefix starts the node.user_agent_name of gRPC's xDS
// clients ("gRPC Go", "gRPC C++", "gRPC Java").
const proxylessAgentPrefix = "gRPC"

// maxNACKs is how many recent NACKs Status keeps (all nodes together).
const maxNACKs = 32

// maxAgentLen bounds the user agent name and version kept per node (they
// are the client's words, shown in the debug endpoint and the dashboard).
const maxAgentLen = 128

// node is one connected xDS client (all its streams together).
type node struct {
	id      string
	kind    string
	streams int
	since   time.Time
	group   *group // nil until it has a configuration
	// service is the proxy's destination service in Consul, else the
	// node's cluster.
	service string
	// agent is the client's kind, mode the xDS variant of its first stream,
	// agentName and agentVersion its node.user_agent_*.
	agent                   agentIndex
	mode                    modeIndex
	agentName, agentVersion string
	// acked is the last version the node ACKed, per type; ackedAt when.
	acked    [numTypes]string
	ackedAt  [numTypes]time.Time
	lastNACK *NACK
	nacks    [numTypes]*NACK // the last NACK per type
	// pending is, per type, the version an Update handed the node while it
	// was connected and when that Update started; the ACK of that version
	// observes the push latency.
	pending [numTypes]pendingPush
}

// pendingPush is a change on its way to a node.
type pendingPush struct {
	version string
	since   time.Time
}

// streamKey names a stream: the ADS server and go-control-plane's
// per-type state-of-the-world and delta servers number their streams
// independently.
type streamKey struct {
	id    int64
	delta bool
	ads   bool // served by ads, not go-control-plane's server
}

// stream is one open xDS stream; its callbacks all run on the stream's
// goroutine, the lock only orders them with Update and Status.
type stream struct {
	node *node // nil until the first request identified it
	sent [numTypes]sent
}

// sent is the last response on a stream for one type.
type sent struct{ nonce, version string }

// hooks are the go-control-plane callbacks: node identification, ACK/NACK
// accounting, metrics.
type hooks struct{ s *Server }

func (h hooks) OnStreamOpen(_ context.Context, id int64, _ string) error {
	h.s.open(streamKey{id: id})
	return nil
}

func (h hooks) OnDeltaStreamOpen(_ context.Context, id int64, _ string) error {
	h.s.open(streamKey{id: id, delta: true})
	return nil
}

func (h hooks) OnStreamClosed(id int64, _ *corev3.Node) { h.s.close(streamKey{id: id}) }
func (h hooks) OnDeltaStreamClosed(id int64, _ *corev3.Node) {
	h.s.close(streamKey{id: id, delta: true})
}

// OnStreamRequest also stops the NACK loop of go-control-plane's snapshot
// cache: a NACK carries the last version the client accepted, which differs
// from the snapshot's, so the cache would resend the rejected response at
// once, and the client reject it again, forever. Presenting the NACK as a
// request at the rejected version parks the watch until the snapshot
// changes (and answers at once if it already has). Delta needs no help: the
// rejected resources' versions are recorded as returned, so nothing is
// resent until they change.
func (h hooks) OnStreamRequest(id int64, r *discovery.DiscoveryRequest) error {
	rejected, err := h.s.request(streamKey{id: id}, r.GetNode(), r.GetTypeUrl(), r.GetResponseNonce(), r.GetVersionInfo(), r.GetErrorDetail())
	if rejected != "" {
		r.VersionInfo = rejected
	}
	return err
}

func (h hooks) OnStreamDeltaRequest(id int64, r *discovery.DeltaDiscoveryRequest) error {
	_, err := h.s.request(streamKey{id: id, delta: true}, r.GetNode(), r.GetTypeUrl(), r.GetResponseNonce(), "", r.GetErrorDetail())
	return err
}

func (h hooks) OnStreamResponse(_ context.Context, id int64, _ *discovery.DiscoveryRequest, r *discovery.DiscoveryResponse) {
	h.s.response(streamKey{id: id}, r.GetTypeUrl(), r.GetNonce(), r.GetVersionInfo())
}

func (h hooks) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, r *discovery.DeltaDiscoveryResponse) {
	h.s.response(streamKey{id: id, delta: true}, r.GetTypeUrl(), r.GetNonce(), r.GetSystemVersionInfo())
}

// OnFetchRequest refuses unary fetches: snapshots exist only for nodes with
// an open stream.
func (h hooks) OnFetchRequest(context.Context, *discovery.DiscoveryRequest) error {
	return status.Error(codes.Unimplemented, "xDS fetch (REST or unary) is not served: open an ADS stream")
}

func (h hooks) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}

func (s *Server) open(k streamKey) {
	s.metrics.streams.Inc()
	s.mu.Lock()
	s.streams[k] = &stream{}
	s.mu.Unlock()
}

// close forgets a stream; a node's snapshot entry goes with its last stream.
func (s *Server) close(k streamKey) {
	defer s.metrics.streams.Dec() // after the state is gone
	s.mu.Lock()
	st := s.streams[k]
	delete(s.streams, k)
	if st == nil || st.node == nil {
		s.mu.Unlock()
		return
	}
	n := st.node
	n.streams--
	gone := n.streams == 0
	if gone {
		s.cacheFor(n.kind).ClearSnapshot(n.id)
		delete(s.nodes, n.id)
		s.metrics.connected[n.agent][n.mode].Dec()
	}
	s.mu.Unlock()
	if gone {
		s.log.Info("xDS client disconnected", "node", n.id, "type", n.agent.String(),
			"connected_for", time.Since(n.since).Round(time.Millisecond))
	}
}

// request identifies the stream's node on its first request and counts the
// request, and the ACK or NACK it carries. For a NACK of the stream's last
// response of that type it returns the rejected version.
func (s *Server) request(k streamKey, n *corev3.Node, typeURL, nonce, version string, detail *rpcstatus.Status) (rejected string, err error) {
	t := typeOf(typeURL)
	s.metrics.requests[t].Inc()
	// Envoy describes every extension it was built with in node.extensions
	// (hundreds of entries); nothing here reads them, and go-control-plane
	// keeps the node of every stream and watch.
	if n != nil && n.Extensions != nil {
		n.Extensions = nil
	}

	s.mu.Lock()
	st := s.streams[k]
	if st == nil {
		s.mu.Unlock()
		return "", status.Errorf(codes.Internal, "xds stream %d is not open", k.id)
	}
	if st.node == nil {
		nd, err := s.identify(st, n, k.delta)
		if err != nil {
			s.mu.Unlock()
			s.metrics.rejectedStream.Inc()
			s.log.Info("xDS stream refused", "node", n.GetId(), "user_agent", n.GetUserAgentName(), "error", status.Convert(err).Message())
			return "", err
		}
		if nd != nil {
			defer s.log.Info("xDS client connected", "node", nd.id, "kind", nd.kind, "service", nd.service,
				"type", nd.agent.String(), "user_agent", nd.agentName, "user_agent_version", nd.agentVersion,
				"mode", nd.mode.String())
		}
	}
	if nonce == "" {
		s.mu.Unlock()
		return "", nil
	}
	nd := st.node
	last := st.sent[t]
	answered := ""
	if last.nonce == nonce {
		answered = last.version
	}
	now := time.Now()
	if detail == nil {
		if version == "" {
			version = answered
		}
		nd.acked[t], nd.ackedAt[t] = version, now
		p := nd.pending[t]
		pushed := p.version != "" && p.version == version
		if pushed {
			nd.pending[t] = pendingPush{}
		}
		s.mu.Unlock()
		s.metrics.acks[t].Inc()
		if pushed {
			s.metrics.pushLatency[t].Observe(now.Sub(p.since).Seconds())
		}
		return "", nil
	}
	nack := NACK{Node: nd.id, Type: typeURL, Version: answered, Accepted: version, Nonce: nonce,
		Error: detail.GetMessage(), Time: now}
	nd.lastNACK = &nack
	nd.nacks[t] = &nack
	if nd.pending[t].version == answered {
		nd.pending[t] = pendingPush{} // this change will not be ACKed
	}
	if len(s.nacks) == maxNACKs {
		s.nacks = append(s.nacks[:0], s.nacks[1:]...)
	}
	s.nacks = append(s.nacks, nack)
	s.mu.Unlock()
	s.metrics.nacks[t].Inc()
	s.log.Warn("xDS client rejected a configuration (NACK)", "node", nack.Node, "type", typeURL,
		"version", nack.Version, "accepted_version", nack.Accepted, "nonce", nonce, "error", nack.Error)
	return answered, nil
}

// identify binds a stream to its node (mu held): a registered connect-proxy
// by its service ID, else a proxyless gRPC client, else an error that ends
// the stream. A node's first stream gets its configuration. It returns the
// node when the stream is its first (a client just connected), to be
// logged once mu is released.
func (s *Server) identify(st *stream, n *corev3.Node, delta bool) (connected *node, err error) {
	id := n.GetId()
	if id == "" {
		return nil, status.Error(codes.InvalidArgument,
			"xDS node.id is empty: set it to the sidecar proxy's Consul service ID")
	}
	if s.mesh == nil {
		return nil, status.Errorf(codes.Unavailable,
			"node %q: the control plane has not read the mesh from Consul yet; retry", id)
	}
	nd := s.nodes[id]
	if nd == nil {
		kind := kindProxy
		service := n.GetCluster()
		if p, registered := s.mesh.Proxies[id]; registered {
			if p != nil && p.ServiceProxy != nil && p.ServiceProxy.DestinationServiceName != "" {
				service = p.ServiceProxy.DestinationServiceName
			}
		} else {
			if !strings.HasPrefix(n.GetUserAgentName(), proxylessAgentPrefix) {
				return nil, status.Errorf(codes.NotFound,
					"node %q is not a registered connect-proxy: no Consul service of kind connect-proxy has this ID "+
						"(register the sidecar service first, or set node.id to its service ID)", id)
			}
			kind = kindProxyless
		}
		mode := modeSotW
		if delta {
			mode = modeDelta
		}
		nd = &node{id: id, kind: kind, since: time.Now(), service: service, agent: agentOf(n), mode: mode,
			agentName: truncate(n.GetUserAgentName()), agentVersion: truncate(agentVersion(n))}
		s.nodes[id] = nd
		s.metrics.connected[nd.agent][nd.mode].Inc()
		connected = nd
	}
	st.node = nd
	if nd.streams++; nd.streams == 1 {
		s.apply(nd, s.groupOf(nd))
	}
	return connected, nil
}

// response records what a stream was sent, to name the version an ACK or
// NACK answers.
func (s *Server) response(k streamKey, typeURL, nonce, version string) {
	t := typeOf(typeURL)
	s.metrics.pushes[t].Inc()
	s.mu.Lock()
	if st := s.streams[k]; st != nil {
		st.sent[t] = sent{nonce: nonce, version: version}
	}
	s.mu.Unlock()
}

// agentOf tells the client's kind by its node.user_agent_name.
func agentOf(n *corev3.Node) agentIndex {
	switch ua := n.GetUserAgentName(); {
	case ua == "outrigger":
		return agentOutrigger
	case ua == "envoy":
		return agentEnvoy
	case strings.HasPrefix(ua, proxylessAgentPrefix):
		return agentGRPC
	}
	return agentOther
}

// agentVersion is node.user_agent_version, else Envoy's
// user_agent_build_version as "major.minor.patch".
func agentVersion(n *corev3.Node) string {
	if v := n.GetUserAgentVersion(); v != "" {
		return v
	}
	if b := n.GetUserAgentBuildVersion(); b != nil && b.GetVersion() != nil {
		v := b.GetVersion()
		return fmt.Sprintf("%d.%d.%d", v.GetMajorNumber(), v.GetMinorNumber(), v.GetPatch())
	}
	return ""
}

// truncate bounds a client-chosen string kept per node (a rune cut in
// two is dropped).
func truncate(s string) string {
	if len(s) > maxAgentLen {
		return strings.ToValidUTF8(s[:maxAgentLen], "")
	}
	return s
}
