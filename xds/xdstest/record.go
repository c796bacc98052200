package xdstest

import (
	"context"
	"maps"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Request is one discovery request the server received, state of the world
// or delta, copied out of the stream.
type Request struct {
	// Seq is the request's index in Requests.
	Seq      int
	StreamID int64
	Delta    bool
	// Node is the request's node. go-control-plane fills in the stream's
	// node before a state-of-the-world request reaches the recorder, so there
	// it is never nil; a delta request shows what the client sent.
	Node          *corev3.Node
	TypeURL       string
	VersionInfo   string // state of the world only
	ResponseNonce string
	ResourceNames []string // state of the world only
	// Subscribe, Unsubscribe and InitialVersions are delta's fields.
	Subscribe       []string
	Unsubscribe     []string
	InitialVersions map[string]string
	ErrorDetail     *rpcstatus.Status
	// ResponseVersion is the version (delta: system_version_info) of the
	// response this request's nonce names, "" when it names none.
	ResponseVersion string
}

// IsACK tells whether the request accepts the response its nonce names.
func (r Request) IsACK() bool { return r.ResponseNonce != "" && r.ErrorDetail == nil }

// IsNACK tells whether the request rejects a response.
func (r Request) IsNACK() bool { return r.ErrorDetail != nil }

// Response is one discovery response the server sent.
type Response struct {
	StreamID int64
	Delta    bool
	TypeURL  string
	// Version is version_info (state of the world) or system_version_info.
	Version string
	Nonce   string
	// Resources names the resources carried, sorted; Removed is delta's
	// removed_resources.
	Resources []string
	Removed   []string
}

func (s *Server) callbacks() serverv3.Callbacks {
	return serverv3.CallbackFuncs{
		StreamOpenFunc:        func(context.Context, int64, string) error { s.streamOpened(); return nil },
		StreamClosedFunc:      func(int64, *corev3.Node) { s.streamClosed() },
		DeltaStreamOpenFunc:   func(context.Context, int64, string) error { s.streamOpened(); return nil },
		DeltaStreamClosedFunc: func(int64, *corev3.Node) { s.streamClosed() },
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			s.addRequest(Request{
				StreamID:      id,
				Node:          proto.Clone(req.GetNode()).(*corev3.Node),
				TypeURL:       req.GetTypeUrl(),
				VersionInfo:   req.GetVersionInfo(),
				ResponseNonce: req.GetResponseNonce(),
				ResourceNames: slices.Clone(req.GetResourceNames()),
				ErrorDetail:   cloneStatus(req.GetErrorDetail()),
			})
			return nil
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			names := make([]string, 0, len(resp.GetResources()))
			for _, a := range resp.GetResources() {
				names = append(names, anyName(a))
			}
			slices.Sort(names)
			s.addResponse(Response{StreamID: id, TypeURL: resp.GetTypeUrl(), Version: resp.GetVersionInfo(),
				Nonce: resp.GetNonce(), Resources: names})
		},
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			s.addRequest(Request{
				StreamID:        id,
				Delta:           true,
				Node:            proto.Clone(req.GetNode()).(*corev3.Node),
				TypeURL:         req.GetTypeUrl(),
				ResponseNonce:   req.GetResponseNonce(),
				Subscribe:       slices.Clone(req.GetResourceNamesSubscribe()),
				Unsubscribe:     slices.Clone(req.GetResourceNamesUnsubscribe()),
				InitialVersions: maps.Clone(req.GetInitialResourceVersions()),
				ErrorDetail:     cloneStatus(req.GetErrorDetail()),
			})
			return nil
		},
		StreamDeltaResponseFunc: func(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			names := make([]string, 0, len(resp.GetResources()))
			for _, r := range resp.GetResources() {
				names = append(names, r.GetName())
			}
			slices.Sort(names)
			removed := slices.Clone(resp.GetRemovedResources())
			slices.Sort(removed)
			s.addResponse(Response{StreamID: id, Delta: true, TypeURL: resp.GetTypeUrl(),
				Version: resp.GetSystemVersionInfo(), Nonce: resp.GetNonce(), Resources: names, Removed: removed})
		},
	}
}

func (s *Server) streamOpened() {
	s.record(func() { s.opened++; s.open++ })
}

func (s *Server) streamClosed() {
	s.record(func() { s.open-- })
}

// addRequest records r, naming the version of the response it answers.
func (s *Server) addRequest(r Request) {
	s.record(func() {
		r.Seq = len(s.requests)
		if r.ResponseNonce != "" {
			r.ResponseVersion = s.versions[nonceKey{stream: r.StreamID, delta: r.Delta, nonce: r.ResponseNonce}]
		}
		s.requests = append(s.requests, r)
	})
}

func (s *Server) addResponse(r Response) {
	s.record(func() {
		s.versions[nonceKey{stream: r.StreamID, delta: r.Delta, nonce: r.Nonce}] = r.Version
		s.responses = append(s.responses, r)
	})
}

func cloneStatus(st *rpcstatus.Status) *rpcstatus.Status {
	if st == nil {
		return nil
	}
	return proto.Clone(st).(*rpcstatus.Status)
}

// anyName is the name of the resource in a, or its type URL when it cannot
// be decoded.
func anyName(a *anypb.Any) string {
	m, err := a.UnmarshalNew()
	if err != nil {
		return a.GetTypeUrl()
	}
	if w, ok := m.(*discoveryv3.Resource); ok {
		return w.GetName()
	}
	return cachev3.GetResourceName(m)
}
