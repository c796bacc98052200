package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/outrigger-mesh/outrigger/controlplane/server"
	"github.com/outrigger-mesh/outrigger/internal/consultest"
	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
)

// TestWithConsul runs the Consul-facing parts against a real agent.
func TestWithConsul(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// On the agent: a service and its sidecar.
	must(c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 8080}))
	must(c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: "web-sidecar-proxy", Name: "web-sidecar-proxy", Kind: api.ServiceKindConnectProxy, Port: 21000,
		Proxy: &api.AgentServiceConnectProxyConfig{DestinationServiceName: "web", DestinationServiceID: "web-1", LocalServicePort: 8080},
	}))
	// Elsewhere in the catalog (another node's agent): a sidecar and a service.
	_, err := c.Catalog().Register(&api.CatalogRegistration{Node: "node-2", Address: "10.0.0.9", Service: &api.AgentService{
		ID: "api-sidecar-proxy", Service: "api-sidecar-proxy", Kind: api.ServiceKindConnectProxy, Port: 21000,
		Proxy: &api.AgentServiceConnectProxyConfig{DestinationServiceName: "api", LocalServicePort: 9090},
	}}, nil)
	must(err)
	_, err = c.Catalog().Register(&api.CatalogRegistration{Node: "node-2", Address: "10.0.0.9",
		Service: &api.AgentService{ID: "db-1", Service: "db", Port: 5432}}, nil)
	must(err)
	// Ingress gateways, on the agent and elsewhere: node.cluster is their own name.
	must(c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "edge-1", Name: "edge", Kind: api.ServiceKindIngressGateway, Port: 8443}))
	_, err = c.Catalog().Register(&api.CatalogRegistration{Node: "node-2", Address: "10.0.0.9", Service: &api.AgentService{
		ID: "edge2-1", Service: "edge2", Kind: api.ServiceKindIngressGateway, Port: 8443}}, nil)
	must(err)

	t.Run("lookup", func(t *testing.T) {
		l := consulLookup{client: c, addr: agent.Addr}
		for _, tc := range []struct{ id, want, wantErr string }{
			{id: "web-sidecar-proxy", want: "web"},
			{id: "api-sidecar-proxy", want: "api"},
			{id: "edge-1", want: "edge"},
			{id: "edge2-1", want: "edge2"},
			{id: "web-1", wantErr: `service "web-1" is registered in Consul but is not a connect-proxy (kind typical)`},
			{id: "db-1", wantErr: `service "db-1" is registered in Consul but is not a connect-proxy`},
			{id: "nope", wantErr: `no service with ID "nope" is registered in Consul at ` + agent.Addr},
			{id: `x" or ServiceID != "`, wantErr: "no service with ID"},
			{id: "x` or ServiceID != `", wantErr: "no service with ID"},
			{id: "x` \" or", wantErr: "no service with ID"},
		} {
			got, err := l.ProxyDestination(tc.id)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("%s: %q, %v; want error %q", tc.id, got, err, tc.wantErr)
				}
				continue
			}
			if err != nil || got != tc.want {
				t.Errorf("%s: %q, %v; want %q", tc.id, got, err, tc.want)
			}
		}
	})

	t.Run("lookup unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		must(err)
		addr := l.Addr().String()
		l.Close()
		client, err := newConsulClient(addr)
		must(err)
		_, err = consulLookup{client: client, addr: addr}.ProxyDestination("web-sidecar-proxy")
		if err == nil || !strings.Contains(err.Error(), "in Consul at "+addr) {
			t.Errorf("unreachable Consul: %v", err)
		}
	})

	t.Run("bootstrap", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"bootstrap", "-proxy-id", "web-sidecar-proxy", "-consul-addr", agent.Addr}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		b, err := bootstrap.Load("", stdout.String())
		if err != nil {
			t.Fatalf("%v\n%s", err, stdout.String())
		}
		if b.Node.ID != "web-sidecar-proxy" || b.Node.Cluster != "web" {
			t.Errorf("node %+v", b.Node)
		}
		stdout.Reset()
		stderr.Reset()
		t.Setenv("CONSUL_HTTP_ADDR", agent.Addr)
		if code := run(context.Background(), []string{"bootstrap", "-proxy-id", "web-1"}, &stdout, &stderr); code != 1 ||
			!strings.Contains(stderr.String(), "not a connect-proxy") || stdout.Len() != 0 {
			t.Errorf("non-proxy: exit %d, stderr %q", code, stderr.String())
		}
	})

	t.Run("serve", func(t *testing.T) {
		logs := &syncBuffer{}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan int, 1)
		go func() {
			done <- run(ctx, []string{"-consul-addr", agent.Addr, "-xds-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
				"-dashboard-addr", "127.0.0.1:0", "-log-format", "json", "-pprof"}, &bytes.Buffer{}, logs)
		}()
		var base string
		addr := regexp.MustCompile(`"http":"(127\.0\.0\.1:\d+)"`)
		waitFor(t, "the starting line", func() bool {
			m := addr.FindStringSubmatch(logs.String())
			if m != nil {
				base = "http://" + m[1]
			}
			return m != nil
		})
		waitFor(t, "ready", func() bool { code, _ := get(t, base+"/readyz"); return code == http.StatusOK })
		// Two sidecars and two ingress gateways (gateways are proxies too).
		waitFor(t, "both sidecars and both gateways in the status", func() bool { return debugStatus(t, base).Proxies == 4 })
		dashURL := regexp.MustCompile(`"url":"(http://127\.0\.0\.1:\d+/)"`).FindStringSubmatch(logs.String())
		if dashURL == nil {
			t.Fatalf("no dashboard url in the logs:\n%s", logs.String())
		}
		waitFor(t, "the dashboard's state lists the proxies", func() bool {
			code, body := get(t, dashURL[1]+"api/state")
			return code == http.StatusOK && strings.Contains(body, "-sidecar-proxy")
		})
		waitFor(t, "consul_up 1", func() bool {
			_, m := get(t, base+"/metrics")
			return strings.Contains(m, "outrigger_cp_consul_up 1")
		})
		if code, body := get(t, base+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "heap") {
			t.Errorf("/debug/pprof/ with -pprof: %d", code)
		}

		// A sidecar connects: /debug/proxies shows it, and the metrics count it.
		xdsAddr := regexp.MustCompile(`"xds":"(127\.0\.0\.1:\d+)"`).FindStringSubmatch(logs.String())
		if xdsAddr == nil {
			t.Fatalf("no xds address in the logs:\n%s", logs.String())
		}
		sidecar := connectSidecar(t, ctx, xdsAddr[1], "web-sidecar-proxy")
		acked := sidecar.version
		var proxies []server.ProxyStatus
		waitFor(t, "the sidecar in /debug/proxies with its ACK", func() bool {
			code, body := get(t, base+"/debug/proxies")
			proxies = nil
			if err := json.Unmarshal([]byte(body), &proxies); code != http.StatusOK || err != nil {
				t.Fatalf("/debug/proxies: %d %v\n%s", code, err, body)
			}
			return len(proxies) == 1 && proxies[0].Resources[resource.ClusterType].Acked != ""
		})
		p := proxies[0]
		if p.ID != "web-sidecar-proxy" || p.Service != "web" || p.Type != "outrigger" || p.UserAgent != "outrigger" ||
			p.UserAgentVersion != "test-1" || p.Mode != "sotw" || p.ConnectedSince.IsZero() ||
			p.Resources[resource.ClusterType].Acked != acked || p.Resources[resource.ClusterType].Served != acked {
			t.Errorf("/debug/proxies: %+v", p)
		}
		_, m := get(t, base+"/metrics")
		for _, want := range []string{
			`outrigger_cp_connected_proxies{mode="sotw",type="outrigger"} 1`,
			`outrigger_cp_connected_proxies{mode="delta",type="envoy"} 0`,
			`outrigger_cp_xds_pushes_total{type="cluster"} 1`,
			`outrigger_cp_xds_push_latency_seconds_count{type="cluster"} 0`,
			`outrigger_cp_consul_watch_errors_total{watch="catalog/services"} 0`,
			`outrigger_cp_translate_errors_total 0`,
		} {
			if !strings.Contains(m, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}

		// A change in Consul that changes the sidecar's clusters (its local
		// app's port) reaches it; its ACK observes the push latency.
		must(c.Agent().ServiceRegister(&api.AgentServiceRegistration{
			ID: "web-sidecar-proxy", Name: "web-sidecar-proxy", Kind: api.ServiceKindConnectProxy, Port: 21000,
			Proxy: &api.AgentServiceConnectProxyConfig{DestinationServiceName: "web", DestinationServiceID: "web-1", LocalServicePort: 8081},
		}))
		if v := sidecar.ackNext(); v == acked {
			t.Errorf("the clusters after the change carry the old version %s", v)
		}
		waitFor(t, "the push latency of the change", func() bool {
			_, m := get(t, base+"/metrics")
			return strings.Contains(m, `outrigger_cp_xds_push_latency_seconds_count{type="cluster"} 1`)
		})
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("exit %d\n%s", code, logs.String())
			}
		case <-time.After(waitTimeout):
			t.Fatal("run did not stop")
		}
	})
}

// adsSidecar is a bare ADS stream that asks for clusters as our sidecar.
type adsSidecar struct {
	t       *testing.T
	stream  discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node    *corev3.Node
	version string // the last version ACKed
}

// connectSidecar opens an ADS stream to addr as our sidecar with ID id,
// asks for clusters and ACKs them. The stream lives until ctx ends.
func connectSidecar(t *testing.T, ctx context.Context, addr, id string) *adsSidecar {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s := &adsSidecar{t: t, stream: stream,
		node: &corev3.Node{Id: id, UserAgentName: "outrigger", UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "test-1"}}}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: s.node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	s.ackNext()
	return s
}

// ackNext receives the next CDS response, ACKs it and returns its version.
func (s *adsSidecar) ackNext() string {
	s.t.Helper()
	r, err := s.stream.Recv()
	if err != nil {
		s.t.Fatalf("CDS response: %v", err)
	}
	if err := s.stream.Send(&discovery.DiscoveryRequest{Node: s.node, TypeUrl: resource.ClusterType, VersionInfo: r.GetVersionInfo(),
		ResponseNonce: r.GetNonce()}); err != nil {
		s.t.Fatal(err)
	}
	s.version = r.GetVersionInfo()
	return s.version
}

// TestWatchErrorsCounted runs outrigger-cp against a Consul address where
// nothing listens: the watcher's failed queries show in
// outrigger_cp_consul_watch_errors_total by watch, and consul_up is 0.
func TestWatchErrorsCounted(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	consulAddr := closed.Addr().String()
	closed.Close()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-consul-addr", consulAddr, "-xds-addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0",
			"-log-format", "json"}, &bytes.Buffer{}, logs)
	}()
	var base string
	addr := regexp.MustCompile(`"http":"(127\.0\.0\.1:\d+)"`)
	waitFor(t, "the starting line", func() bool {
		m := addr.FindStringSubmatch(logs.String())
		if m != nil {
			base = "http://" + m[1]
		}
		return m != nil
	})
	failed := regexp.MustCompile(`outrigger_cp_consul_watch_errors_total\{watch="catalog/services"\} [1-9]`)
	waitFor(t, "catalog/services errors counted", func() bool {
		_, m := get(t, base+"/metrics")
		return failed.MatchString(m) && strings.Contains(m, "outrigger_cp_consul_up 0")
	})
	configFailed := regexp.MustCompile(`outrigger_cp_consul_watch_errors_total\{watch="config/service-defaults"\} [1-9]`)
	waitFor(t, "config/service-defaults errors counted", func() bool {
		_, m := get(t, base+"/metrics")
		return configFailed.MatchString(m)
	})
	// Every query of the watcher has a kind of its own: none is "other".
	if _, m := get(t, base+"/metrics"); !strings.Contains(m, `outrigger_cp_consul_watch_errors_total{watch="other"} 0`) {
		t.Errorf("a watcher query counted as other (add its kind to server.ConsulWatches):\n%s", m)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("run did not stop")
	}
}
