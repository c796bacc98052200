package e2e

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds"

	"github.com/outrigger-mesh/outrigger/internal/consultest"
)

// greeter answers UnaryCall with its instance name.
type greeter struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (g greeter) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{Hostname: g.name}, nil
}

func grpcApp(t *testing.T, name string) int {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, greeter{name: name})
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().(*net.TCPAddr).Port
}

// TestProxylessGRPC: a grpc-go client we did not write, with its xDS
// resolver pointed at the control plane, resolves xds:///greeter from
// Consul and balances over the passing instances, and follows a
// deregistration.
func TestProxylessGRPC(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client
	writeEntry(t, c, &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "greeter", Protocol: "grpc"})
	for _, name := range []string{"greeter-1", "greeter-2"} {
		reg := &api.AgentServiceRegistration{Name: "greeter", ID: name, Address: "127.0.0.1", Port: grpcApp(t, name),
			Check: &api.AgentServiceCheck{CheckID: "ttl:" + name, TTL: "10m", Status: api.HealthPassing}}
		if err := c.Agent().ServiceRegister(reg); err != nil {
			t.Fatal(err)
		}
	}
	cp := startControlPlane(t, c)

	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "proxyless-e2e", "cluster": "e2e"}
	}`, cp.addr)
	rb, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///greeter", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(rb))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client := testgrpc.NewTestServiceClient(cc)

	calls := func(n int) map[string]int {
		out := map[string]int{}
		for i := 0; i < n; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
			cancel()
			if err != nil {
				out["error: "+err.Error()]++
				continue
			}
			out[resp.GetHostname()]++
		}
		return out
	}
	waitCalls := func(limit time.Duration, want ...string) time.Duration {
		t.Helper()
		start := time.Now()
		var last map[string]int
		for time.Since(start) < limit {
			if last = calls(20); sameSet(last, want...) {
				return time.Since(start)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("xds:///greeter answered %v, want exactly %v", last, want)
		return 0
	}
	waitCalls(20*time.Second, "greeter-1", "greeter-2")
	if err := c.Agent().ServiceDeregister("greeter-2"); err != nil {
		t.Fatal(err)
	}
	t.Logf("deregistration reached the proxyless client in %v", waitCalls(followWithin, "greeter-1").Round(time.Millisecond))
	if cp.metric("outrigger_cp_xds_nacks_total") != 0 {
		t.Errorf("grpc-go NACKed the control plane's output: %+v", cp.srv.Status().LastNACKs)
	}
}
