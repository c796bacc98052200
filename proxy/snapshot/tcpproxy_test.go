package snapshot

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/outrigger-mesh/outrigger/proxy/tcpproxy"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// tcpListener decodes a Listener whose one chain is chain (JSON of a
// FilterChain with its tcp_proxy).
func tcpListener(t *testing.T, chains string) *listenerv3.Listener {
	t.Helper()
	var l listenerv3.Listener
	js := `{"name": "tcp", "address": {"socketAddress": {"address": "127.0.0.1", "portValue": 0}}, "filterChains": [` + chains + `]}`
	if err := protojson.Unmarshal([]byte(js), &l); err != nil {
		t.Fatalf("listener JSON: %v\n%s", err, js)
	}
	return &l
}

func tcpFilter(fields string) string {
	return `{"name": "envoy.filters.network.tcp_proxy", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy", "statPrefix": "s"` + fields + `}}`
}

func staticClusterProto(t *testing.T, names ...string) []*clusterv3.Cluster {
	t.Helper()
	var out []*clusterv3.Cluster
	for _, n := range names {
		var c clusterv3.Cluster
		js := `{"name": "` + n + `", "type": "STATIC", "loadAssignment": {"clusterName": "` + n + `", "endpoints": [{"lbEndpoints": [{"endpoint": {"address": {"socketAddress": {"address": "127.0.0.1", "portValue": 9}}}}]}]}}`
		if err := protojson.Unmarshal([]byte(js), &c); err != nil {
			t.Fatal(err)
		}
		out = append(out, &c)
	}
	return out
}

func TestTCPProxyConversion(t *testing.T) {
	l := tcpListener(t, `{"filters": [`+tcpFilter(`, "cluster": "a", "idleTimeout": "0s", "maxConnectAttempts": 3,
		"accessLog": [{"name": "envoy.access_loggers.stdout", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"}}]`)+`]},
		{"filterChainMatch": {"serverNames": ["db.example"]}, "filters": [`+tcpFilter(`, "weightedClusters": {"clusters": [{"name": "a", "weight": 1}, {"name": "b", "weight": 3}]}`)+`]}`)
	s, err := Build([]*listenerv3.Listener{l}, nil, staticClusterProto(t, "a", "b"))
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	sl := s.Listeners[0]
	if len(sl.Config.FilterChains) != 2 || len(sl.HTTP) != 2 {
		t.Fatalf("%d chains, %d HTTP configs; want 2 and 2 (parallel)", len(sl.Config.FilterChains), len(sl.HTTP))
	}
	// The SNI chain sorts first.
	pass, plain := sl.Config.FilterChains[0], sl.Config.FilterChains[1]
	if pass.TCPProxy == nil || pass.TLS != nil || pass.Match.ServerNames[0] != "db.example" {
		t.Errorf("passthrough chain = %+v", pass)
	}
	if got := pass.TCPProxy.WeightedClusters; len(got) != 2 || got[1] != (tcpproxy.WeightedCluster{Name: "b", Weight: 3}) {
		t.Errorf("weighted clusters = %v", got)
	}
	if pass.TCPProxy.IdleTimeout != time.Hour || pass.TCPProxy.MaxConnectAttempts != 1 {
		t.Errorf("defaults: idle %s, attempts %d; want 1h and 1", pass.TCPProxy.IdleTimeout, pass.TCPProxy.MaxConnectAttempts)
	}
	want := tcpproxy.Config{StatPrefix: "s", Cluster: "a", IdleTimeout: 0, MaxConnectAttempts: 3,
		AccessLogs: []tcpproxy.AccessLog{{Path: "/dev/stdout"}}}
	if got := *plain.TCPProxy; got.Cluster != want.Cluster || got.IdleTimeout != 0 || got.MaxConnectAttempts != 3 ||
		len(got.AccessLogs) != 1 || got.AccessLogs[0] != want.AccessLogs[0] || got.StatPrefix != "s" {
		t.Errorf("plain chain config = %+v, want %+v", got, want)
	}
	if err := s.Consistent(); err != nil {
		t.Errorf("Consistent: %v", err)
	}
	if err := sl.Config.Validate(); err == nil || !strings.Contains(err.Error(), "no handler") {
		t.Errorf("a converted chain has no handler until the server builds it: Validate = %v", err)
	}
}

// TestTCPProxyTLSChain: a transport_socket terminates TLS; ALPN is only
// what the context lists (no HTTP codec's default).
func TestTCPProxyTLSChain(t *testing.T) {
	dir := t.TempDir()
	cert, key := writeTestCert(t, dir)
	ts := func(alpn string) string {
		return `"transportSocket": {"name": "envoy.transport_sockets.tls", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
			"commonTlsContext": {` + alpn + `"tlsCertificates": [{"certificateChain": {"filename": "` + cert + `"}, "privateKey": {"filename": "` + key + `"}}]}}}`
	}
	l := tcpListener(t, `{"filterChainMatch": {"serverNames": ["a"]}, `+ts("")+`, "filters": [`+tcpFilter(`, "cluster": "a"`)+`]},
		{"filterChainMatch": {"serverNames": ["b"]}, `+ts(`"alpnProtocols": ["postgresql"], `)+`, "filters": [`+tcpFilter(`, "cluster": "a"`)+`]}`)
	s, err := Build([]*listenerv3.Listener{l}, nil, staticClusterProto(t, "a"))
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	a, b := s.Listeners[0].Config.FilterChains[0], s.Listeners[0].Config.FilterChains[1]
	if a.TLS == nil || len(a.TLS.NextProtos) != 0 {
		t.Errorf("chain a: TLS %v, ALPN %v; want TLS without ALPN", a.TLS != nil, a.TLS.NextProtos)
	}
	if b.TLS == nil || len(b.TLS.NextProtos) != 1 || b.TLS.NextProtos[0] != "postgresql" {
		t.Errorf("chain b ALPN = %v, want [postgresql]", b.TLS.NextProtos)
	}
}

func TestTCPProxyRefused(t *testing.T) {
	hcm := `{"name": "envoy.filters.network.http_connection_manager", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"statPrefix": "x", "httpFilters": [{"name": "envoy.filters.http.router", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}], "routeConfig": {"name": "r"}}}`
	tests := []struct {
		name, chains, path, reason string
		unsupported                bool
	}{
		{"two filters", `{"filters": [` + tcpFilter(`, "cluster": "a"`) + `, ` + hcm + `]}`,
			"listeners[0].filter_chains[0].filters[0]", "must be the chain's last", false},
		{"unknown cluster", `{"filters": [` + tcpFilter(`, "cluster": "zz"`) + `]}`,
			"listeners[0].filter_chains[0].filters[0].typed_config.cluster", `cluster "zz" is not defined`, false},
		{"unknown weighted cluster", `{"filters": [` + tcpFilter(`, "weightedClusters": {"clusters": [{"name": "a", "weight": 1}, {"name": "zz", "weight": 1}]}`) + `]}`,
			"listeners[0].filter_chains[0].filters[0].typed_config.weighted_clusters.clusters[1].name", `cluster "zz" is not defined`, false},
		{"weight 0 (the proto's own rule)", `{"filters": [` + tcpFilter(`, "weightedClusters": {"clusters": [{"name": "a", "weight": 0}]}`) + `]}`,
			"listeners[0].filter_chains[0].filters[0].typed_config.weighted_clusters.clusters[0].weight", "value must be greater than or equal to 1", false},
		{"hash_policy", `{"filters": [` + tcpFilter(`, "cluster": "a", "hashPolicy": [{"sourceIp": {}}]`) + `]}`,
			"listeners[0].filter_chains[0].filters[0].typed_config.hash_policy", "not supported", true},
		{"metadata_match", `{"filters": [` + tcpFilter(`, "weightedClusters": {"clusters": [{"name": "a", "weight": 1, "metadataMatch": {}}]}`) + `]}`,
			"listeners[0].filter_chains[0].filters[0].typed_config.weighted_clusters.clusters[0].metadata_match", "not supported", true},
		{"access log filter", `{"filters": [` + tcpFilter(`, "cluster": "a", "accessLog": [{"name": "x", "filter": {"notHealthCheckFilter": {}}, "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog"}}]`) + `]}`,
			"listeners[0].filter_chains[0].filters[0].typed_config.access_log[0].filter", "not supported", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build([]*listenerv3.Listener{tcpListener(t, tt.chains)}, nil, staticClusterProto(t, "a"))
			var fields []resource.FieldError
			var u *resource.UnsupportedError
			var in *resource.InvalidError
			switch {
			case errors.As(err, &u) && tt.unsupported:
				fields = u.Fields
			case errors.As(err, &in) && !tt.unsupported:
				fields = in.Fields
			default:
				t.Fatalf("Build error = %v (%T)", err, err)
			}
			for _, f := range fields {
				if f.Path == tt.path && strings.Contains(f.Reason, tt.reason) {
					return
				}
			}
			t.Errorf("errors %v, want %s: ...%s", fields, tt.path, tt.reason)
		})
	}
}

// TestControlPlaneTCPOutput: every resource the control plane emits for
// protocol = tcp services (controlplane/translate's golden files) is
// accepted and converted whole.
func TestControlPlaneTCPOutput(t *testing.T) {
	for _, name := range []string{"tcp", "upstream_config", "transparent"} {
		t.Run(name, func(t *testing.T) {
			ls, rs, cs, eps := controlPlaneGolden(t, name)
			s, err := BuildResources(Options{}, ls, rs, cs, eps)
			if err != nil {
				t.Fatalf("BuildResources: %v", err)
			}
			tcp := 0
			for _, l := range s.Listeners {
				for _, fc := range l.Config.FilterChains {
					if fc.TCPProxy != nil {
						tcp++
					}
				}
			}
			if tcp == 0 {
				t.Errorf("no TCP proxy chain converted from %s", name)
			}
		})
	}
}

// controlPlaneGolden decodes one of controlplane/translate's golden files
// (skipping when it is not there).
func controlPlaneGolden(t *testing.T, name string) ([]*listenerv3.Listener, []*routev3.RouteConfiguration, []*clusterv3.Cluster, []*endpointv3.ClusterLoadAssignment) {
	t.Helper()
	b, err := os.ReadFile("../../controlplane/translate/testdata/" + name + ".golden")
	if err != nil {
		t.Skipf("golden file: %v", err)
	}
	var doc struct {
		Listeners, Routes, Clusters, Endpoints []json.RawMessage
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var (
		ls  []*listenerv3.Listener
		rs  []*routev3.RouteConfiguration
		cs  []*clusterv3.Cluster
		eps []*endpointv3.ClusterLoadAssignment
	)
	for _, raw := range doc.Listeners {
		ls = append(ls, decode(t, raw, new(listenerv3.Listener)))
	}
	for _, raw := range doc.Routes {
		rs = append(rs, decode(t, raw, new(routev3.RouteConfiguration)))
	}
	for _, raw := range doc.Clusters {
		cs = append(cs, decode(t, raw, new(clusterv3.Cluster)))
	}
	for _, raw := range doc.Endpoints {
		eps = append(eps, decode(t, raw, new(endpointv3.ClusterLoadAssignment)))
	}
	return ls, rs, cs, eps
}

func decode[M proto.Message](t *testing.T, raw json.RawMessage, m M) M {
	t.Helper()
	if err := protojson.Unmarshal(raw, m); err != nil {
		t.Fatal(err)
	}
	return m
}

// writeTestCert writes a self-signed certificate and its key as PEM files.
func writeTestCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a"}, DNSNames: []string{"a", "b"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
