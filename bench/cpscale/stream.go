package cpscale

import (
	"context"
	"fmt"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// UserAgent is the node.user_agent_name of the bench's streams.
const UserAgent = "outrigger-cpbench"

// The four types a sidecar subscribes to, in the order Envoy asks.
const (
	typeCluster = iota
	typeEndpoint
	typeListener
	typeRoute
	numTypes
)

var typeURLs = [numTypes]string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

func typeIndex(url string) (int, bool) {
	i := slices.Index(typeURLs[:], url)
	return i, i >= 0
}

// typeState is a stream's view of one type.
type typeState struct {
	version, nonce string
	// names are the subscribed resources of EDS and RDS (LDS and CDS are
	// wildcards).
	names []string
	// subscribed: a request was sent; answered: a response came (and was
	// ACKed) since the subscription last changed.
	subscribed, answered bool
}

// adsStream is one simulated sidecar: a real ADS stream that subscribes
// like Envoy (CDS and LDS wildcards, then EDS and RDS for the names they
// reference) and ACKs every response right after decoding it.
type adsStream struct {
	f     *fleet
	idx   int
	node  *corev3.Node
	types [numTypes]typeState
	// delta only: per resource, the names it references (CDS: EDS names,
	// LDS: RDS names).
	refs [numTypes]map[string][]string
	// lastChange is the id of the last change this stream showed.
	lastChange int64
	synced     bool
	// onSync is called once when the stream first syncs.
	onSync func()
}

func (s *adsStream) isSynced() bool {
	for _, t := range []int{typeCluster, typeListener, typeEndpoint, typeRoute} {
		ts := &s.types[t]
		if ts.subscribed && !ts.answered {
			return false
		}
	}
	return s.types[typeCluster].answered && s.types[typeListener].answered
}

// after records what a response meant once it was ACKed: sync, and the
// change in progress if the response showed it.
func (s *adsStream) after(matched *tracking) {
	now := time.Now()
	if matched != nil {
		matched.record(s.idx, now)
	}
	if !s.synced && s.isSynced() {
		s.synced = true
		s.f.markSynced(s.idx, now)
		if s.onSync != nil {
			s.onSync()
		}
	}
}

// watch returns the change in progress when this stream has not shown it
// yet and resource (of type t) is the one that carries it.
func (s *adsStream) watch(t int, name string) *tracking {
	tr := s.f.current.Load()
	if tr == nil || tr.id == s.lastChange || typeURLs[t] != tr.change.TypeURL || name != tr.change.Resource {
		return nil
	}
	return tr
}

// runSotW runs a state-of-the-world ADS stream until ctx ends or the
// stream fails.
func (s *adsStream) runSotW(ctx context.Context, conn *grpc.ClientConn) error {
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	first := true
	send := func(t int) error {
		ts := &s.types[t]
		req := &discoverygrpc.DiscoveryRequest{TypeUrl: typeURLs[t], VersionInfo: ts.version, ResponseNonce: ts.nonce, ResourceNames: ts.names}
		if first {
			req.Node, first = s.node, false
		}
		ts.subscribed = true
		return st.Send(req)
	}
	if err := send(typeCluster); err != nil {
		return err
	}
	if err := send(typeListener); err != nil {
		return err
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		t, ok := typeIndex(resp.GetTypeUrl())
		if !ok {
			return fmt.Errorf("response of unexpected type %q", resp.GetTypeUrl())
		}
		ts := &s.types[t]
		ts.version, ts.nonce = resp.GetVersionInfo(), resp.GetNonce()
		var refs []string
		var matched *tracking
		for _, a := range resp.GetResources() {
			switch t {
			case typeCluster:
				refs = append(refs, clusterEDS(a)...)
			case typeListener:
				refs = append(refs, listenerRDS(a)...)
			default:
				if tr := s.watch(t, resourceName(a.GetValue())); tr != nil && tr.change.match(a.GetValue()) {
					matched = tr
				}
			}
		}
		if err := send(t); err != nil { // the ACK
			return err
		}
		ts.answered = true
		if matched != nil {
			s.lastChange = matched.id
		}
		if t == typeCluster || t == typeListener {
			dep := typeEndpoint
			if t == typeListener {
				dep = typeRoute
			}
			slices.Sort(refs)
			refs = slices.Compact(refs)
			if ds := &s.types[dep]; !slices.Equal(refs, ds.names) && (len(refs) > 0 || ds.subscribed) {
				ds.names, ds.answered = refs, false
				if err := send(dep); err != nil {
					return err
				}
			}
		}
		s.after(matched)
	}
}

// runDelta runs an incremental (delta) ADS stream until ctx ends or the
// stream fails.
func (s *adsStream) runDelta(ctx context.Context, conn *grpc.ClientConn) error {
	st, err := discoverygrpc.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		return err
	}
	first := true
	send := func(req *discoverygrpc.DeltaDiscoveryRequest) error {
		if first {
			req.Node, first = s.node, false
		}
		return st.Send(req)
	}
	for _, t := range []int{typeCluster, typeListener} {
		s.types[t].subscribed = true
		s.refs[t] = map[string][]string{}
		if err := send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: typeURLs[t]}); err != nil {
			return err
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		t, ok := typeIndex(resp.GetTypeUrl())
		if !ok {
			return fmt.Errorf("response of unexpected type %q", resp.GetTypeUrl())
		}
		var matched *tracking
		for _, r := range resp.GetResources() {
			a := r.GetResource()
			switch t {
			case typeCluster:
				s.refs[t][r.GetName()] = clusterEDS(a)
			case typeListener:
				s.refs[t][r.GetName()] = listenerRDS(a)
			default:
				if tr := s.watch(t, r.GetName()); tr != nil && tr.change.match(a.GetValue()) {
					matched = tr
				}
			}
		}
		for _, name := range resp.GetRemovedResources() {
			if s.refs[t] != nil {
				delete(s.refs[t], name)
			}
		}
		if err := send(&discoverygrpc.DeltaDiscoveryRequest{TypeUrl: typeURLs[t], ResponseNonce: resp.GetNonce()}); err != nil {
			return err
		}
		s.types[t].answered = true
		if matched != nil {
			s.lastChange = matched.id
		}
		if t == typeCluster || t == typeListener {
			dep := typeEndpoint
			if t == typeListener {
				dep = typeRoute
			}
			var want []string
			for _, names := range s.refs[t] {
				want = append(want, names...)
			}
			slices.Sort(want)
			want = slices.Compact(want)
			ds := &s.types[dep]
			add, remove := diff(ds.names, want)
			if len(add) > 0 || len(remove) > 0 {
				ds.names, ds.subscribed, ds.answered = want, true, len(add) == 0
				req := &discoverygrpc.DeltaDiscoveryRequest{TypeUrl: typeURLs[dep], ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: remove}
				if err := send(req); err != nil {
					return err
				}
			}
		}
		s.after(matched)
	}
}

// diff returns what is in want but not have, and in have but not want
// (both sorted).
func diff(have, want []string) (add, remove []string) {
	for _, n := range want {
		if _, found := slices.BinarySearch(have, n); !found {
			add = append(add, n)
		}
	}
	for _, n := range have {
		if _, found := slices.BinarySearch(want, n); !found {
			remove = append(remove, n)
		}
	}
	return add, remove
}

// resourceName reads field 1 of a serialized resource: the name of a
// Listener, Cluster and RouteConfiguration, the cluster_name of a
// ClusterLoadAssignment. It decodes nothing else.
func resourceName(b []byte) string {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return ""
			}
			return string(v)
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return ""
		}
		b = b[m:]
	}
	return ""
}

// clusterEDS is the EDS name a cluster subscribes to, if it is an EDS
// cluster.
func clusterEDS(a *anypb.Any) []string {
	c := &clusterv3.Cluster{}
	if proto.Unmarshal(a.GetValue(), c) != nil || c.GetType() != clusterv3.Cluster_EDS {
		return nil
	}
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return []string{n}
	}
	return []string{c.GetName()}
}

// listenerRDS lists the route configurations a listener's connection
// managers take from RDS.
func listenerRDS(a *anypb.Any) []string {
	l := &listenerv3.Listener{}
	if proto.Unmarshal(a.GetValue(), l) != nil {
		return nil
	}
	chains := l.GetFilterChains()
	if d := l.GetDefaultFilterChain(); d != nil {
		chains = append(slices.Clip(chains), d)
	}
	var out []string
	for _, fc := range chains {
		for _, f := range fc.GetFilters() {
			tc := f.GetTypedConfig()
			if tc == nil || tc.GetTypeUrl() != "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager" {
				continue
			}
			h := &hcmv3.HttpConnectionManager{}
			if proto.Unmarshal(tc.GetValue(), h) != nil {
				continue
			}
			if n := h.GetRds().GetRouteConfigName(); n != "" {
				out = append(out, n)
			}
		}
	}
	return out
}
