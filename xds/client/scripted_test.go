package client_test

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/xds/client"
)

// scripted is an ADS server whose responses the test writes by hand, for
// what go-control-plane never sends: malformed resources, unknown types,
// wrappers, heartbeats. It serves one stream at a time.
type scripted struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	// hangUp ends each state-of-the-world stream right after its first
	// response.
	hangUp bool
	opened atomic.Int32
	reqs   chan *discoveryv3.DiscoveryRequest
	dreqs  chan *discoveryv3.DeltaDiscoveryRequest
	resps  chan *discoveryv3.DiscoveryResponse
	dresps chan *discoveryv3.DeltaDiscoveryResponse
}

func startScripted(t *testing.T) (*scripted, *grpc.ClientConn) {
	s := &scripted{
		reqs:   make(chan *discoveryv3.DiscoveryRequest, 100),
		dreqs:  make(chan *discoveryv3.DeltaDiscoveryRequest, 100),
		resps:  make(chan *discoveryv3.DiscoveryResponse),
		dresps: make(chan *discoveryv3.DeltaDiscoveryResponse),
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s)
	done := make(chan struct{})
	go func() { defer close(done); _ = g.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); g.Stop(); <-done })
	return s, conn
}

func (s *scripted) StreamAggregatedResources(str discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	s.opened.Add(1)
	go func() {
		for {
			r, err := str.Recv()
			if err != nil {
				return
			}
			select {
			case s.reqs <- r:
			case <-str.Context().Done():
				return
			}
		}
	}()
	for {
		select {
		case r := <-s.resps:
			if err := str.Send(r); err != nil {
				return err
			}
			if s.hangUp {
				return nil
			}
		case <-str.Context().Done():
			return nil
		}
	}
}

func (s *scripted) DeltaAggregatedResources(str discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesServer) error {
	go func() {
		for {
			r, err := str.Recv()
			if err != nil {
				return
			}
			select {
			case s.dreqs <- r:
			case <-str.Context().Done():
				return
			}
		}
	}()
	for {
		select {
		case r := <-s.dresps:
			if err := str.Send(r); err != nil {
				return err
			}
		case <-str.Context().Done():
			return nil
		}
	}
}

// reply waits for the client's answer to the response with nonce.
func (s *scripted) reply(t *testing.T, nonce string) *discoveryv3.DiscoveryRequest {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case r := <-s.reqs:
			if r.GetResponseNonce() == nonce {
				return r
			}
		case <-timeout:
			t.Fatalf("no answer to nonce %s", nonce)
			return nil
		}
	}
}

func (s *scripted) dreply(t *testing.T, nonce string) *discoveryv3.DeltaDiscoveryRequest {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case r := <-s.dreqs:
			if r.GetResponseNonce() == nonce {
				return r
			}
		case <-timeout:
			t.Fatalf("no answer to nonce %s", nonce)
			return nil
		}
	}
}

// bareListener has no filters, so it needs no route.
func bareListener(name string) *listenerv3.Listener { return &listenerv3.Listener{Name: name} }

// hcmListener has one connection manager with the given RDS name, placed by
// where: "chain", "default" or "api".
func hcmListener(t testing.TB, name, rds, where string) *listenerv3.Listener {
	hcm := mustAny(t, &hcmv3.HttpConnectionManager{
		StatPrefix:     name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: ads(), RouteConfigName: rds}},
	})
	chain := &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}}
	l := &listenerv3.Listener{Name: name}
	switch where {
	case "chain":
		l.FilterChains = []*listenerv3.FilterChain{chain}
	case "default":
		l.DefaultFilterChain = chain
	case "api":
		l.ApiListener = &listenerv3.ApiListener{ApiListener: hcm}
	}
	return l
}

func wrap(t testing.TB, name string, body *anypb.Any) *anypb.Any {
	return mustAny(t, &discoveryv3.Resource{Name: name, Version: "1", Resource: body})
}

func TestSotwResponsesByHand(t *testing.T) {
	lds := resource.ListenerType
	tests := []struct {
		name      string
		typeURL   string
		resources func(t *testing.T) []*anypb.Any
		wantNack  string // "" for an ACK
		wantSet   string // describe() of the last Apply, when checked
	}{
		{
			name: "plain", typeURL: lds,
			resources: func(t *testing.T) []*anypb.Any { return []*anypb.Any{mustAny(t, bareListener("L1"))} },
			wantSet:   "L[L1] R[] C[] E[]",
		},
		{
			name: "resource wrapper", typeURL: lds,
			resources: func(t *testing.T) []*anypb.Any {
				return []*anypb.Any{wrap(t, "L-w", mustAny(t, bareListener("L-w")))}
			},
			wantSet: "L[L-w] R[] C[] E[]",
		},
		{
			name: "wrapper named differently", typeURL: lds,
			resources: func(t *testing.T) []*anypb.Any {
				return []*anypb.Any{wrap(t, "other", mustAny(t, bareListener("L-w")))}
			},
			wantNack: `resource 0: listener "L-w": wrapper is named "other"`,
		},
		{
			name: "wrapper with nothing", typeURL: lds,
			resources: func(t *testing.T) []*anypb.Any { return []*anypb.Any{mustAny(t, &discoveryv3.Resource{})} },
			wantNack:  "resource 0: resource wrapper with neither name nor body",
		},
		{
			name: "wrapper that does not decode", typeURL: lds,
			resources: func(t *testing.T) []*anypb.Any {
				return []*anypb.Any{{TypeUrl: "type.googleapis.com/envoy.service.discovery.v3.Resource", Value: []byte{0xff}}}
			},
			wantNack: "resource 0: decode Resource wrapper",
		},
		{
			name: "undecodable", typeURL: lds,
			resources: func(t *testing.T) []*anypb.Any {
				return []*anypb.Any{mustAny(t, bareListener("L1")), {TypeUrl: lds, Value: []byte{0xff, 0xff}}}
			},
			wantNack: "resource 1: decode listener",
		},
		{
			name: "wrong type in the response", typeURL: lds,
			resources: func(t *testing.T) []*anypb.Any { return []*anypb.Any{mustAny(t, edsCluster("C1"))} },
			wantNack:  `resource 0: resource of type "type.googleapis.com/envoy.config.cluster.v3.Cluster" in a type.googleapis.com/envoy.config.listener.v3.Listener response`,
		},
		{
			name: "listed twice", typeURL: lds,
			resources: func(t *testing.T) []*anypb.Any {
				return []*anypb.Any{mustAny(t, bareListener("L1")), mustAny(t, bareListener("L1"))}
			},
			wantNack: `listener "L1": listed twice`,
		},
		{
			name: "no name", typeURL: lds,
			resources: func(t *testing.T) []*anypb.Any { return []*anypb.Any{mustAny(t, bareListener(""))} },
			wantNack:  "resource 0: listener without a name",
		},
		{
			name: "rds without a name", typeURL: lds,
			resources: func(t *testing.T) []*anypb.Any { return []*anypb.Any{mustAny(t, hcmListener(t, "L1", "", "chain"))} },
			wantNack:  `resource 0: listener "L1": filter_chains[0].filters[0].typed_config: rds without route_config_name`,
		},
		{
			name: "connection manager that does not decode", typeURL: lds,
			resources: func(t *testing.T) []*anypb.Any {
				l := bareListener("L1")
				l.DefaultFilterChain = &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{
					TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", Value: []byte{0xff}},
				}}}}
				return []*anypb.Any{mustAny(t, l)}
			},
			wantNack: `listener "L1": default_filter_chain.filters[0].typed_config: decode http_connection_manager`,
		},
		{
			name: "unknown type", typeURL: "type.googleapis.com/envoy.service.runtime.v3.Runtime",
			resources: func(t *testing.T) []*anypb.Any { return nil },
			wantNack:  `type "type.googleapis.com/envoy.service.runtime.v3.Runtime" is not subscribed`,
		},
		{
			name: "known type not subscribed", typeURL: resource.ClusterType,
			resources: func(t *testing.T) []*anypb.Any { return []*anypb.Any{mustAny(t, &clusterv3.Cluster{Name: "C1"})} },
			wantNack:  "is not subscribed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, conn := startScripted(t)
			tgt := newTarget(t)
			cfg := baseConfig(t, conn, false)
			cfg.CDS = false
			c := client.New(cfg, tgt)
			run(t, c)
			srv.reply(t, "") // the initial LDS request
			srv.resps <- &discoveryv3.DiscoveryResponse{TypeUrl: tt.typeURL, VersionInfo: "1", Nonce: "n1", Resources: tt.resources(t)}
			req := srv.reply(t, "n1")
			if req.GetTypeUrl() != tt.typeURL {
				t.Fatalf("answer for %s, want %s", req.GetTypeUrl(), tt.typeURL)
			}
			if tt.wantNack == "" {
				if req.GetErrorDetail() != nil || req.GetVersionInfo() != "1" {
					t.Fatalf("want ACK of 1, got version %q error %v", req.GetVersionInfo(), req.GetErrorDetail())
				}
			} else if !strings.Contains(req.GetErrorDetail().GetMessage(), tt.wantNack) || req.GetVersionInfo() != "" {
				t.Fatalf("want NACK containing %q with no version, got version %q error %q",
					tt.wantNack, req.GetVersionInfo(), req.GetErrorDetail().GetMessage())
			}
			if tt.wantSet != "" {
				if d := describe(tgt.last()); d != tt.wantSet {
					t.Fatalf("applied %s, want %s", d, tt.wantSet)
				}
			} else if tgt.last() != nil {
				t.Fatalf("applied %s after a NACK", describe(tgt.last()))
			}
		})
	}
}

func TestSotwHeartbeatKeepsListeners(t *testing.T) {
	srv, conn := startScripted(t)
	tgt := newTarget(t)
	cfg := baseConfig(t, conn, false)
	cfg.CDS = false
	c := client.New(cfg, tgt)
	run(t, c)
	srv.reply(t, "")
	srv.resps <- &discoveryv3.DiscoveryResponse{TypeUrl: resource.ListenerType, VersionInfo: "1", Nonce: "n1",
		Resources: []*anypb.Any{mustAny(t, bareListener("L1")), mustAny(t, bareListener("L2"))}}
	srv.reply(t, "n1")
	srv.resps <- &discoveryv3.DiscoveryResponse{TypeUrl: resource.ListenerType, VersionInfo: "1", Nonce: "n2",
		Resources: []*anypb.Any{mustAny(t, &discoveryv3.Resource{Name: "L1"})}}
	if req := srv.reply(t, "n2"); req.GetErrorDetail() != nil {
		t.Fatalf("heartbeat NACKed: %v", req.GetErrorDetail())
	}
	if applied, _ := tgt.applies(); len(applied) != 1 || describe(applied[0]) != "L[L1 L2] R[] C[] E[]" {
		t.Fatalf("Applies after a heartbeat: %d, last %s", len(applied), describe(tgt.last()))
	}
}

// Routes named by a default filter chain and by an api_listener are
// subscribed to, and a route nobody asked for is ignored.
func TestSotwRouteNamesFromEveryConnectionManager(t *testing.T) {
	srv, conn := startScripted(t)
	tgt := newTarget(t)
	cfg := baseConfig(t, conn, false)
	cfg.CDS = false
	cfg.StaticRoutes = []string{"R-static"}
	c := client.New(cfg, tgt)
	run(t, c)
	srv.reply(t, "")
	srv.resps <- &discoveryv3.DiscoveryResponse{TypeUrl: resource.ListenerType, VersionInfo: "1", Nonce: "n1",
		Resources: []*anypb.Any{mustAny(t, hcmListener(t, "L-default", "R-default", "default")), mustAny(t, hcmListener(t, "L-api", "R-api", "api"))}}
	deadline := time.After(waitFor)
	for {
		var r *discoveryv3.DiscoveryRequest
		select {
		case r = <-srv.reqs:
		case <-deadline:
			t.Fatal("no RDS request naming every route")
		}
		if r.GetTypeUrl() == resource.RouteType && strings.Join(r.GetResourceNames(), ",") == "R-api,R-default,R-static" {
			break
		}
	}
	srv.resps <- &discoveryv3.DiscoveryResponse{TypeUrl: resource.RouteType, VersionInfo: "1", Nonce: "n2", Resources: []*anypb.Any{
		mustAny(t, route("R-api", "/", "C")), mustAny(t, route("R-default", "/", "C")),
		mustAny(t, route("R-static", "/", "C")), mustAny(t, route("R-unasked", "/", "C")),
	}}
	if req := srv.reply(t, "n2"); req.GetErrorDetail() != nil {
		t.Fatalf("NACK: %v", req.GetErrorDetail())
	}
	got := tgt.waitApply(func(*client.Resources) bool { return true })
	if d := describe(got); d != "L[L-api L-default] R[R-api R-default R-static] C[] E[]" {
		t.Fatalf("applied %s", d)
	}
}

func TestDeltaResponsesByHand(t *testing.T) {
	lds := resource.ListenerType
	tests := []struct {
		name     string
		resp     func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse
		wantNack string
		wantSet  string
	}{
		{
			name: "no name",
			resp: func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse {
				return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: lds, Resources: []*discoveryv3.Resource{{Resource: mustAny(t, bareListener("L1"))}}}
			},
			wantNack: "resource 0: no name",
		},
		{
			name: "undecodable",
			resp: func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse {
				return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: lds, Resources: []*discoveryv3.Resource{{Name: "L1", Resource: &anypb.Any{TypeUrl: lds, Value: []byte{0xff}}}}}
			},
			wantNack: `resource 0: listener "L1": decode listener`,
		},
		{
			name: "updated and removed",
			resp: func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse {
				return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: lds, RemovedResources: []string{"L1"},
					Resources: []*discoveryv3.Resource{{Name: "L1", Resource: mustAny(t, bareListener("L1"))}}}
			},
			wantNack: `listener "L1": both updated and removed`,
		},
		{
			name: "unknown type",
			resp: func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse {
				return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: "type.googleapis.com/envoy.service.runtime.v3.Runtime"}
			},
			wantNack: "is not subscribed",
		},
		{
			name: "added",
			resp: func(t *testing.T) *discoveryv3.DeltaDiscoveryResponse {
				return &discoveryv3.DeltaDiscoveryResponse{TypeUrl: lds, Resources: []*discoveryv3.Resource{
					{Name: "L1", Version: "a", Resource: mustAny(t, bareListener("L1"))},
					{Name: "L2", Version: "a", Resource: mustAny(t, bareListener("L2"))},
				}}
			},
			wantSet: "L[L1 L2] R[] C[] E[]",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, conn := startScripted(t)
			tgt := newTarget(t)
			cfg := baseConfig(t, conn, true)
			cfg.CDS = false
			c := client.New(cfg, tgt)
			run(t, c)
			first := srv.dreply(t, "")
			if strings.Join(first.GetResourceNamesSubscribe(), ",") != "*" || first.GetNode().GetId() != "node-1" {
				t.Fatalf("initial request %v", first)
			}
			resp := tt.resp(t)
			resp.Nonce = "n1"
			srv.dresps <- resp
			req := srv.dreply(t, "n1")
			if tt.wantNack == "" {
				if req.GetErrorDetail() != nil {
					t.Fatalf("want ACK, got %v", req.GetErrorDetail())
				}
			} else if !strings.Contains(req.GetErrorDetail().GetMessage(), tt.wantNack) {
				t.Fatalf("want NACK containing %q, got %q", tt.wantNack, req.GetErrorDetail().GetMessage())
			}
			if tt.wantSet != "" {
				if d := describe(tgt.last()); d != tt.wantSet {
					t.Fatalf("applied %s, want %s", d, tt.wantSet)
				}
			} else if tgt.last() != nil {
				t.Fatalf("applied %s after a NACK", describe(tgt.last()))
			}
		})
	}
}

func TestDeltaRemovalByName(t *testing.T) {
	srv, conn := startScripted(t)
	tgt := newTarget(t)
	cfg := baseConfig(t, conn, true)
	cfg.CDS = false
	c := client.New(cfg, tgt)
	run(t, c)
	srv.dreply(t, "")
	srv.dresps <- &discoveryv3.DeltaDiscoveryResponse{TypeUrl: resource.ListenerType, Nonce: "n1", Resources: []*discoveryv3.Resource{
		{Name: "L1", Version: "a", Resource: mustAny(t, bareListener("L1"))},
		{Name: "L2", Version: "a", Resource: mustAny(t, bareListener("L2"))},
		{Name: "L3", Version: "a", Resource: mustAny(t, bareListener("L3"))},
	}}
	srv.dreply(t, "n1")
	srv.dresps <- &discoveryv3.DeltaDiscoveryResponse{TypeUrl: resource.ListenerType, Nonce: "n2",
		RemovedResources:     []string{"L1"},
		RemovedResourceNames: []*discoveryv3.ResourceName{{Name: "L3"}},
	}
	if req := srv.dreply(t, "n2"); req.GetErrorDetail() != nil {
		t.Fatalf("NACK: %v", req.GetErrorDetail())
	}
	if d := describe(tgt.last()); d != "L[L2] R[] C[] E[]" {
		t.Fatalf("applied %s", d)
	}
}

// A state-of-the-world RDS response that omits a route does not remove it.
func TestSotwRouteResponsesAreNotFullState(t *testing.T) {
	srv, conn := startScripted(t)
	tgt := newTarget(t)
	cfg := baseConfig(t, conn, false)
	cfg.LDS, cfg.CDS = false, false
	cfg.StaticRoutes = []string{"R1", "R2"}
	c := client.New(cfg, tgt)
	run(t, c)
	srv.reply(t, "")
	srv.resps <- &discoveryv3.DiscoveryResponse{TypeUrl: resource.RouteType, VersionInfo: "1", Nonce: "n1",
		Resources: []*anypb.Any{mustAny(t, route("R1", "/", "C")), mustAny(t, route("R2", "/", "C"))}}
	srv.reply(t, "n1")
	srv.resps <- &discoveryv3.DiscoveryResponse{TypeUrl: resource.RouteType, VersionInfo: "2", Nonce: "n2",
		Resources: []*anypb.Any{mustAny(t, route("R1", "/new", "C"))}}
	if req := srv.reply(t, "n2"); req.GetErrorDetail() != nil || req.GetVersionInfo() != "2" {
		t.Fatalf("answer %v", req)
	}
	got := tgt.last()
	if d := describe(got); d != "L[] R[R1 R2] C[] E[]" || got.Routes[0].GetVirtualHosts()[0].GetRoutes()[0].GetMatch().GetPrefix() != "/new" {
		t.Fatalf("applied %s", d)
	}
}

// A delta removal of a route a listener still needs applies it empty.
func TestDeltaRemovalOfAReferencedRoute(t *testing.T) {
	srv, conn := startScripted(t)
	tgt := newTarget(t)
	cfg := baseConfig(t, conn, true)
	cfg.CDS = false
	c := client.New(cfg, tgt)
	run(t, c)
	srv.dreply(t, "")
	srv.dresps <- &discoveryv3.DeltaDiscoveryResponse{TypeUrl: resource.ListenerType, Nonce: "n1", Resources: []*discoveryv3.Resource{
		{Name: "L1", Version: "a", Resource: mustAny(t, listener(t, "L1", "R1", 10001))},
	}}
	srv.dreply(t, "n1")
	srv.dresps <- &discoveryv3.DeltaDiscoveryResponse{TypeUrl: resource.RouteType, Nonce: "n2", Resources: []*discoveryv3.Resource{
		{Name: "R1", Version: "a", Resource: mustAny(t, route("R1", "/", "C"))},
	}}
	srv.dreply(t, "n2")
	if got := tgt.last(); describe(got) != "L[L1] R[R1] C[] E[]" || len(got.Routes[0].GetVirtualHosts()) != 1 {
		t.Fatalf("applied %s", describe(got))
	}
	srv.dresps <- &discoveryv3.DeltaDiscoveryResponse{TypeUrl: resource.RouteType, Nonce: "n3", RemovedResources: []string{"R1"}}
	srv.dreply(t, "n3")
	if got := tgt.last(); describe(got) != "L[L1] R[R1] C[] E[]" || len(got.Routes[0].GetVirtualHosts()) != 0 {
		t.Fatalf("applied %s, want R1 empty", describe(got))
	}
	eventually(t, "status to name R1 missing", func() bool {
		m := c.Status().Types[resource.RouteType].Missing
		return len(m) == 1 && m[0] == "R1"
	})
}

// A server that ends the stream after a response is redialled; the set
// stays.
func TestStreamEndedByTheServerIsRedialled(t *testing.T) {
	srv, conn := startScripted(t)
	srv.hangUp = true
	tgt := newTarget(t)
	cfg := baseConfig(t, conn, false)
	cfg.CDS = false
	c := client.New(cfg, tgt)
	run(t, c)
	srv.reply(t, "")
	srv.resps <- &discoveryv3.DiscoveryResponse{TypeUrl: resource.ListenerType, VersionInfo: "1", Nonce: "n1",
		Resources: []*anypb.Any{mustAny(t, bareListener("L1"))}}
	// The next stream resubscribes with what the client has.
	deadline := time.After(waitFor)
	for {
		var r *discoveryv3.DiscoveryRequest
		select {
		case r = <-srv.reqs:
		case <-deadline:
			t.Fatal("no resubscription")
		}
		if r.GetResponseNonce() == "" && r.GetVersionInfo() == "1" && r.GetTypeUrl() == resource.ListenerType {
			break
		}
	}
	if srv.opened.Load() < 2 {
		t.Fatalf("%d streams", srv.opened.Load())
	}
	if applied, _ := tgt.applies(); len(applied) != 1 || describe(applied[0]) != "L[L1] R[] C[] E[]" {
		t.Fatalf("%d Applies, last %s", len(applied), describe(tgt.last()))
	}
}
