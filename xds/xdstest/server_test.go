package xdstest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/config"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/outrigger-mesh/outrigger/xds/xdstest"
)

const wait = 10 * time.Second

var node = &corev3.Node{Id: "n1"}

func TestSotwRequestsAndResponsesAreRecorded(t *testing.T) {
	srv := xdstest.Start(t, xdstest.Verbose())
	if err := srv.Set("n1", "v1", &listenerv3.Listener{Name: "L1"}, &listenerv3.Listener{Name: "L2"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	str, err := discoveryv3.NewAggregatedDiscoveryServiceClient(srv.Conn()).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := str.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.ListenerType}); err != nil {
		t.Fatal(err)
	}
	resp, err := str.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVersionInfo() != "v1" || len(resp.GetResources()) != 2 {
		t.Fatalf("response %v", resp)
	}
	// NACK it, then ACK it.
	nack := &discoveryv3.DiscoveryRequest{TypeUrl: resource.ListenerType, ResponseNonce: resp.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: "no thanks"}}
	if err := str.Send(nack); err != nil {
		t.Fatal(err)
	}
	resp, err = str.Recv() // go-control-plane answers a NACK with the same version
	if err != nil {
		t.Fatal(err)
	}
	if err := str.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ListenerType, VersionInfo: "v1", ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	ack, err := srv.WaitRequest(wait, func(r xdstest.Request) bool { return r.IsACK() })
	if err != nil {
		t.Fatal(err)
	}
	if ack.ResponseVersion != "v1" || ack.VersionInfo != "v1" || ack.Delta || ack.Node.GetId() != "n1" {
		t.Fatalf("ACK %+v", ack)
	}
	reqs := srv.Requests()
	if len(reqs) != 3 || !reqs[1].IsNACK() || reqs[1].ErrorDetail.GetMessage() != "no thanks" || reqs[1].ResponseVersion != "v1" || reqs[2].Seq != 2 {
		t.Fatalf("requests %+v", reqs)
	}
	resps := srv.Responses()
	if len(resps) != 2 || strings.Join(resps[0].Resources, ",") != "L1,L2" || resps[0].TypeURL != resource.ListenerType {
		t.Fatalf("responses %+v", resps)
	}
	if srv.StreamsOpened() != 1 || srv.OpenStreams() != 1 {
		t.Fatalf("streams opened %d, open %d", srv.StreamsOpened(), srv.OpenStreams())
	}
}

func TestDeltaIsServed(t *testing.T) {
	srv := xdstest.Start(t, xdstest.XDSOptions(config.DeactivateLegacyWildcard()))
	if err := srv.Set("n1", "v1", &listenerv3.Listener{Name: "L1"}); err != nil {
		t.Fatal(err)
	}
	str, err := discoveryv3.NewAggregatedDiscoveryServiceClient(srv.Conn()).DeltaAggregatedResources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := str.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node, TypeUrl: resource.ListenerType, ResourceNamesSubscribe: []string{"*"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := str.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := str.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ListenerType, ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	ack, err := srv.WaitRequest(wait, func(r xdstest.Request) bool { return r.IsACK() })
	if err != nil {
		t.Fatal(err)
	}
	if !ack.Delta || ack.ResponseVersion != "v1" || ack.Node != nil {
		t.Fatalf("ACK %+v", ack)
	}
	if first := srv.Requests()[0]; strings.Join(first.Subscribe, ",") != "*" || first.Node.GetId() != "n1" {
		t.Fatalf("first request %+v", first)
	}
	if r := srv.Responses()[0]; !r.Delta || strings.Join(r.Resources, ",") != "L1" || r.Version != "v1" {
		t.Fatalf("response %+v", r)
	}
}

func TestStopAndRestartOnTheSamePort(t *testing.T) {
	srv := xdstest.Start(t)
	if err := srv.Set("n1", "v1", &listenerv3.Listener{Name: "L1"}); err != nil {
		t.Fatal(err)
	}
	conn := srv.Conn()
	addr := srv.Addr()
	open := func() discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
		t.Helper()
		str, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := str.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.ListenerType}); err != nil {
			t.Fatal(err)
		}
		if _, err := str.Recv(); err != nil {
			t.Fatal(err)
		}
		return str
	}
	str := open()
	srv.Stop()
	srv.Stop() // idempotent
	if _, err := str.Recv(); err == nil {
		t.Fatal("stream survived Stop")
	}
	if err := srv.Wait(wait, func() bool { return srv.OpenStreams() == 0 }); err != nil {
		t.Fatal(err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != addr {
		t.Fatalf("address moved from %s to %s", addr, srv.Addr())
	}
	// The same connection reaches the restarted server, which kept the
	// snapshot. The connection may need a moment to notice.
	deadline := time.Now().Add(wait)
	for {
		str, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(t.Context())
		if err == nil {
			err = str.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.ListenerType})
		}
		if err == nil {
			_, err = str.Recv()
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no answer after restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if srv.StreamsOpened() < 2 {
		t.Fatalf("%d streams opened", srv.StreamsOpened())
	}
}

func TestSetRefusesWhatItCannotServe(t *testing.T) {
	srv := xdstest.Start(t)
	if err := srv.Set("n1", "v1", nil); err == nil || !strings.Contains(err.Error(), "resource 0 is nil") {
		t.Fatalf("nil resource: %v", err)
	}
	if err := srv.Set("n1", "v1", &corev3.Node{}); err == nil || !strings.Contains(err.Error(), "is not served") {
		t.Fatalf("a Node as a resource: %v", err)
	}
}

func TestWaitTimesOut(t *testing.T) {
	srv := xdstest.Start(t)
	if err := srv.Wait(10*time.Millisecond, func() bool { return false }); !errors.Is(err, xdstest.ErrTimeout) {
		t.Fatalf("Wait = %v", err)
	}
	if _, err := srv.WaitRequest(10*time.Millisecond, func(xdstest.Request) bool { return true }); !errors.Is(err, xdstest.ErrTimeout) {
		t.Fatalf("WaitRequest = %v", err)
	}
}
