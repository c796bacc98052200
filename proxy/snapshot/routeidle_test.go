package snapshot

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/forward"
	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// managerClusters hands hcm the clusters of a real cluster.Manager.
type managerClusters struct{ m *cluster.Manager }

func (s managerClusters) Upstream(name string) (forward.Upstream, bool) {
	c := s.m.Get(name)
	if c == nil {
		return nil, false
	}
	return c, true
}

// A route's idle_timeout: unset inherits the connection manager's
// stream_idle_timeout, an explicit 0s disables the idle timeout for the
// route (Envoy's RouteAction.idle_timeout). End to end: Envoy protos ->
// Build -> hcm.Handler -> a real cluster and upstream on loopback.
func TestRouteIdleTimeoutZeroDisables(t *testing.T) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	const idle = 200 * time.Millisecond
	stall := 5 * idle // far past the stream idle timeout
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(stall):
		}
		io.WriteString(w, "done")
	}))
	t.Cleanup(up.Close)
	host, portStr, err := net.SplitHostPort(up.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)

	l := &listenerv3.Listener{}
	must(protojson.Unmarshal([]byte(fmt.Sprintf(`{"name": "l",
	  "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
	  "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": {
	    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
	    "stat_prefix": "in", "stream_idle_timeout": "%s",
	    "route_config": {"name": "r", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
	      {"match": {"prefix": "/inherit"}, "route": {"cluster": "app", "timeout": "0s"}},
	      {"match": {"prefix": "/off"}, "route": {"cluster": "app", "timeout": "0s", "idle_timeout": "0s"}},
	      {"match": {"prefix": "/own"}, "route": {"cluster": "app", "timeout": "0s", "idle_timeout": "%s"}}]}]},
	    "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
	      "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}`,
		durationJSON(idle), durationJSON(30*time.Second))), l))
	cl := &clusterv3.Cluster{}
	must(protojson.Unmarshal([]byte(fmt.Sprintf(`{"name": "app", "type": "STATIC", "connect_timeout": "1s",
	  "load_assignment": {"cluster_name": "app", "endpoints": [{"lb_endpoints": [{"endpoint": {"address":
	    {"socket_address": {"address": %q, "port_value": %d}}}}]}]}}`, host, port)), cl))

	snap, err := Build([]*listenerv3.Listener{l}, nil, []*clusterv3.Cluster{cl})
	must(err)
	hc := snap.Listeners[0].HTTP[0]
	fwd := func(i int) *router.ForwardAction { return hc.Routes.VirtualHosts[0].Routes[i].Forward }
	if a := fwd(0); a.IdleTimeoutSet {
		t.Errorf("/inherit: IdleTimeoutSet, want unset")
	}
	if a := fwd(1); !a.IdleTimeoutSet || a.IdleTimeout != 0 {
		t.Errorf("/off: IdleTimeout %v set %v, want 0 set", a.IdleTimeout, a.IdleTimeoutSet)
	}

	m := cluster.NewManager(nil)
	t.Cleanup(m.Close)
	must(m.Update(snap.Clusters))
	table, err := router.New(hc.Routes)
	must(err)
	front := httptest.NewServer(hcm.New(hc, table, hcm.Deps{Clusters: managerClusters{m}}))
	t.Cleanup(front.Close)

	get := func(path string) (int, string) {
		t.Helper()
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get(front.URL + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if st, _ := get("/inherit"); st != http.StatusRequestTimeout {
		t.Errorf("/inherit: status %d, want 408 (stream_idle_timeout %v applies)", st, idle)
	}
	if st, body := get("/off"); st != http.StatusOK || body != "done" {
		t.Errorf("/off: %d %q, want 200 \"done\" (idle_timeout 0s disables the idle timeout)", st, body)
	}
	if st, body := get("/own"); st != http.StatusOK || body != "done" {
		t.Errorf("/own: %d %q, want 200 \"done\" (the route's 30s replaces stream_idle_timeout)", st, body)
	}
}

// durationJSON renders d as a protojson Duration ("0.200s").
func durationJSON(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

// A cluster's common_http_protocol_options.idle_timeout: unset is Envoy's
// 1h, an explicit 0s reaches the cluster (and its transport) as 0, which
// disables the idle timeout.
func TestClusterIdleTimeoutZero(t *testing.T) {
	for _, tc := range []struct {
		common string
		want   time.Duration
	}{
		{``, time.Hour},
		{`"common_http_protocol_options": {"idle_timeout": "0s"},`, 0},
		{`"common_http_protocol_options": {"idle_timeout": "90s"},`, 90 * time.Second},
	} {
		cl := &clusterv3.Cluster{}
		js := `{"name": "c", "type": "STATIC", "typed_extension_protocol_options": {"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
		  "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions", ` + tc.common + `
		  "explicit_http_config": {"http_protocol_options": {}}}}}`
		if err := protojson.Unmarshal([]byte(js), cl); err != nil {
			t.Fatal(err)
		}
		snap, err := Build(nil, nil, []*clusterv3.Cluster{cl})
		if err != nil {
			t.Fatalf("%s: %v", tc.common, err)
		}
		if got := snap.Clusters[0].IdleTimeout; got != tc.want {
			t.Errorf("%s: IdleTimeout %v, want %v", tc.common, got, tc.want)
		}
		m := cluster.NewManager(nil)
		if err := m.Update(snap.Clusters); err != nil {
			t.Errorf("%s: cluster manager: %v", tc.common, err)
		}
		m.Close()
	}
}
