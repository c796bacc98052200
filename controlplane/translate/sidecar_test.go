package translate

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/hashicorp/consul/api"
)

// TestSkippedUpstreams: what the package comment says is skipped leaves no
// listener behind, and the rest is still there.
func TestSkippedUpstreams(t *testing.T) {
	m := baseMesh()
	sidecarProxy(m).Upstreams = append(sidecarProxy(m).Upstreams,
		api.Upstream{DestinationName: "q", DestinationType: api.UpstreamDestTypePreparedQuery, LocalBindPort: 9001},
		api.Upstream{DestinationName: "far", Datacenter: "dc2", LocalBindPort: 9002},
		api.Upstream{DestinationName: "peer", DestinationPeer: "p", LocalBindPort: 9003},
		api.Upstream{DestinationName: "sock", LocalBindSocketPath: "/tmp/s.sock"},
		api.Upstream{DestinationName: "near", Datacenter: "dc1", LocalBindPort: 9004},
	)
	r, err := Proxy(m, proxyID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range r.Listeners {
		got = append(got, l.GetName())
	}
	want := "api:127.0.0.1:9191 near:127.0.0.1:9004 public_listener"
	if strings.Join(got, " ") != want {
		t.Errorf("listeners %v, want %s", got, want)
	}
}

// TestLocalTimeouts: Consul's local_connect_timeout_ms and
// local_request_timeout_ms reach local_app and the inbound route.
func TestLocalTimeouts(t *testing.T) {
	for _, c := range []struct {
		cfg             map[string]any
		connect         time.Duration
		request         time.Duration
		requestIsNotSet bool
	}{
		{nil, 5 * time.Second, 0, true},
		{map[string]any{"local_connect_timeout_ms": 250.0, "local_request_timeout_ms": "30000"}, 250 * time.Millisecond, 30 * time.Second, false},
		{map[string]any{"local_connect_timeout_ms": 0, "local_request_timeout_ms": 0}, 5 * time.Second, 0, false},
	} {
		m := baseMesh()
		sidecarProxy(m).Config = c.cfg
		r, err := Proxy(m, proxyID)
		if err != nil {
			t.Fatal(err)
		}
		for _, cl := range r.Clusters {
			if cl.GetName() == localAppName && cl.GetConnectTimeout().AsDuration() != c.connect {
				t.Errorf("%v: local_app connect timeout %v, want %v", c.cfg, cl.GetConnectTimeout().AsDuration(), c.connect)
			}
		}
		route := inboundRoute(t, r)
		if got := route.GetTimeout(); (got == nil) != c.requestIsNotSet || got.AsDuration() != c.request {
			t.Errorf("%v: inbound route timeout %v, want %v (unset: %v)", c.cfg, got, c.request, c.requestIsNotSet)
		}
	}
}

// inboundRoute is the action of public_listener's only route.
func inboundRoute(t *testing.T, r *Resources) *routev3.RouteAction {
	t.Helper()
	for _, l := range r.Listeners {
		if l.GetName() != publicListenerName {
			continue
		}
		h := &hcmv3.HttpConnectionManager{}
		if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(h); err != nil {
			t.Fatal(err)
		}
		return h.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].GetRoute()
	}
	t.Fatal("no public_listener")
	return nil
}

// TestLocalAppByName: a local service address that is a name makes
// local_app STRICT_DNS (STATIC needs an IP); an http2 service gets HTTP/2
// to the local app.
func TestLocalAppByName(t *testing.T) {
	m := baseMesh()
	sidecarProxy(m).LocalServiceAddress = "app.local"
	svc(m, "web").Defaults = &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "web", Protocol: "http2"}
	r, err := Proxy(m, proxyID)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range r.Clusters {
		if cl.GetName() != localAppName {
			continue
		}
		if cl.GetType() != clusterv3.Cluster_STRICT_DNS {
			t.Errorf("local_app type %v, want STRICT_DNS", cl.GetType())
		}
		if cl.GetTypedExtensionProtocolOptions()[upstreamHTTPOptionsKey] == nil {
			t.Error("local_app of an http2 service has no HTTP/2 protocol options")
		}
		return
	}
	t.Fatal("no local_app")
}
