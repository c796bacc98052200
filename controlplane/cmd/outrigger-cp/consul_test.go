package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

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

	t.Run("lookup", func(t *testing.T) {
		l := consulLookup{client: c, addr: agent.Addr}
		for _, tc := range []struct{ id, want, wantErr string }{
			{id: "web-sidecar-proxy", want: "web"},
			{id: "api-sidecar-proxy", want: "api"},
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
				"-dashboard-addr", "127.0.0.1:0", "-log-format", "json"}, &bytes.Buffer{}, logs)
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
		waitFor(t, "both sidecars in the status", func() bool { return debugStatus(t, base).Proxies == 2 })
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
