package translate

import (
	"net"
	"strconv"
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

// TestBindAddress: Consul's bind_address and bind_port move
// public_listener, from the registration or, for keys it does not set,
// from proxy-defaults; unset (absent, null, "" or 0) they leave it on the
// sidecar's service address (else its node's) and port.
func TestBindAddress(t *testing.T) {
	for _, c := range []struct {
		name          string
		own, defaults map[string]any
		serviceAddr   string
		want          string
	}{
		{"unset", nil, nil, "", "10.0.0.10:21000"},
		{"service address", nil, nil, "10.0.0.20", "10.0.0.20:21000"},
		{"registration", map[string]any{"bind_address": "0.0.0.0", "bind_port": 20000.0}, nil, "10.0.0.20", "0.0.0.0:20000"},
		{"address only", map[string]any{"bind_address": "::"}, nil, "", "[::]:21000"},
		{"port only, as a string", map[string]any{"bind_port": "20001"}, nil, "", "10.0.0.10:20001"},
		{"port as an int64", map[string]any{"bind_port": int64(20004)}, nil, "", "10.0.0.10:20004"},
		{"proxy-defaults", nil, map[string]any{"bind_address": "0.0.0.0", "bind_port": 20002}, "", "0.0.0.0:20002"},
		{"registration wins", map[string]any{"bind_address": "127.0.0.5"}, map[string]any{"bind_address": "0.0.0.0", "bind_port": 20003}, "", "127.0.0.5:20003"},
		{"null falls back", map[string]any{"bind_address": nil}, map[string]any{"bind_address": "0.0.0.0"}, "", "0.0.0.0:21000"},
		{"empty and zero are unset", map[string]any{"bind_address": "", "bind_port": 0}, nil, "", "10.0.0.10:21000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := baseMesh()
			sidecarProxy(m).Config = c.own
			m.ProxyDefaults.Config["bind_address"], m.ProxyDefaults.Config["bind_port"] = c.defaults["bind_address"], c.defaults["bind_port"]
			m.Proxies[proxyID].ServiceAddress = c.serviceAddr
			r, err := New(m).Proxy(proxyID)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range r.Listeners {
				if l.GetName() != publicListenerName {
					continue
				}
				sa := l.GetAddress().GetSocketAddress()
				if got := net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))); got != c.want {
					t.Errorf("public_listener binds %s, want %s", got, c.want)
				}
				return
			}
			t.Fatal("no public_listener")
		})
	}
}

// TestBindAddressWithoutServiceAddress: bind_address is enough when the
// catalog has no address for the sidecar.
func TestBindAddressWithoutServiceAddress(t *testing.T) {
	m := baseMesh()
	m.Proxies[proxyID].Address = ""
	sidecarProxy(m).Config = map[string]any{"bind_address": "0.0.0.0"}
	if _, err := Proxy(m, proxyID); err != nil {
		t.Fatal(err)
	}
}

// TestLocalTimeoutsFromProxyDefaults: like every proxy config key, the
// local timeouts come from proxy-defaults when the registration has none.
func TestLocalTimeoutsFromProxyDefaults(t *testing.T) {
	m := baseMesh()
	m.ProxyDefaults.Config["local_connect_timeout_ms"] = 750
	m.ProxyDefaults.Config["local_request_timeout_ms"] = 9000
	sidecarProxy(m).Config = map[string]any{"local_request_timeout_ms": 1000}
	r, err := Proxy(m, proxyID)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range r.Clusters {
		if cl.GetName() == localAppName && cl.GetConnectTimeout().AsDuration() != 750*time.Millisecond {
			t.Errorf("local_app connect timeout %v, want proxy-defaults' 750ms", cl.GetConnectTimeout().AsDuration())
		}
	}
	if got := inboundRoute(t, r).GetTimeout().AsDuration(); got != time.Second {
		t.Errorf("inbound route timeout %v, want the registration's 1s", got)
	}
}
