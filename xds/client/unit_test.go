package client

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	quicv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/quic/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestBackoffIsFullJitterBounded(t *testing.T) {
	const base, max = 20 * time.Millisecond, 30 * time.Second
	top := func(n int64) int64 { return n - 1 }
	bottom := func(int64) int64 { return 0 }
	for n := range 100 {
		ceiling := max
		if n < 20 && base<<n < max {
			ceiling = base << n
		}
		if got := backoff(n, base, max, top); got != ceiling {
			t.Fatalf("attempt %d: largest delay %s, want %s", n, got, ceiling)
		}
		if got := backoff(n, base, max, bottom); got != 0 {
			t.Fatalf("attempt %d: smallest delay %s, want 0", n, got)
		}
		for range 50 {
			if got := backoff(n, base, max, rand.Int64N); got < 0 || got > ceiling {
				t.Fatalf("attempt %d: delay %s outside [0, %s]", n, got, ceiling)
			}
		}
	}
	// Full jitter spreads: many draws at one attempt are not all equal.
	seen := map[time.Duration]bool{}
	for range 100 {
		seen[backoff(5, base, max, rand.Int64N)] = true
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct delays in 100 draws", len(seen))
	}
	if got := backoff(3, 0, 0, top); got != 0 {
		t.Fatalf("zero bounds: %s", got)
	}
}

func TestClusterEndpointsName(t *testing.T) {
	eds := func(name, service string) *clusterv3.Cluster {
		return &clusterv3.Cluster{
			Name:                 name,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{ServiceName: service},
		}
	}
	tests := []struct {
		c    *clusterv3.Cluster
		want string
	}{
		{eds("c1", ""), "c1"},
		{eds("c1", "svc"), "svc"},
		{&clusterv3.Cluster{Name: "static"}, ""},
		{&clusterv3.Cluster{Name: "dns", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}}, ""},
	}
	for _, tt := range tests {
		if got := strings.Join(clusterEndpoints(tt.c), ","); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.c.GetName(), got, tt.want)
		}
	}
}

func TestJoinErrorsCaps(t *testing.T) {
	var errs []error
	for i := range 11 {
		errs = append(errs, fmt.Errorf("e%d", i))
	}
	if got := joinErrors(errs); got != "e0; e1; e2; e3; e4; e5; e6; e7; and 3 more" {
		t.Fatalf("%q", got)
	}
	if got := joinErrors([]error{errors.New("one")}); got != "one" {
		t.Fatalf("%q", got)
	}
}

func TestNewDefaults(t *testing.T) {
	tests := []struct {
		name                string
		in                  Config
		base, max, deadline time.Duration
	}{
		{"all defaults", Config{}, defaultBackoffBase, defaultBackoffMax, defaultInitialFetchTimeout},
		{"small max", Config{BackoffMax: 100 * time.Millisecond}, 100 * time.Millisecond, 100 * time.Millisecond, defaultInitialFetchTimeout},
		{"large base", Config{BackoffBase: time.Minute}, time.Minute, time.Minute, defaultInitialFetchTimeout},
		{"no fetch timeout", Config{InitialFetchTimeout: -1}, defaultBackoffBase, defaultBackoffMax, -1},
	}
	for _, tt := range tests {
		c := New(tt.in, nil)
		if c.cfg.BackoffBase != tt.base || c.cfg.BackoffMax != tt.max || c.cfg.InitialFetchTimeout != tt.deadline {
			t.Errorf("%s: base %s max %s timeout %s", tt.name, c.cfg.BackoffBase, c.cfg.BackoffMax, c.cfg.InitialFetchTimeout)
		}
	}
}

func TestNegativeInitialFetchTimeoutWaitsForever(t *testing.T) {
	cfg := Config{LDS: true, CDS: true, InitialFetchTimeout: -1}
	c := New(cfg, nil)
	start := time.Now()
	c.startWarming(start)
	c.types[kindCluster].entries["C1"] = &entry{msg: &clusterv3.Cluster{Name: "C1"}, refs: []string{"C1"}}
	c.types[kindCluster].received = true
	c.refreshWanted(start)
	if _, ok := c.nextDeadline(); ok {
		t.Fatal("a deadline is set although the timeout is disabled")
	}
	later := start.Add(24 * time.Hour)
	for _, st := range c.types {
		if st.expire(later, c.log) {
			t.Fatalf("%s expired", st.url)
		}
	}
	if c.complete() {
		t.Fatal("complete without listeners and C1's assignment")
	}
}

func TestSecretNamesDecodeErrors(t *testing.T) {
	broken := func(typeURL string) *corev3.TransportSocket {
		return &corev3.TransportSocket{ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: typeURL, Value: []byte{0xff}}}}
	}
	const tlsPrefix = "type.googleapis.com/envoy.extensions.transport_sockets."
	for _, tt := range []struct {
		name, want string
		err        func() error
	}{
		{"downstream TLS", "filter_chains[0].transport_socket: decode DownstreamTlsContext", func() error {
			_, err := listenerSecrets(&listenerv3.Listener{FilterChains: []*listenerv3.FilterChain{{TransportSocket: broken(tlsPrefix + "tls.v3.DownstreamTlsContext")}}})
			return err
		}},
		{"downstream QUIC in the default chain", "default_filter_chain.transport_socket: decode QuicDownstreamTransport", func() error {
			_, err := listenerSecrets(&listenerv3.Listener{DefaultFilterChain: &listenerv3.FilterChain{TransportSocket: broken(tlsPrefix + "quic.v3.QuicDownstreamTransport")}})
			return err
		}},
		{"upstream TLS", "transport_socket: decode UpstreamTlsContext", func() error {
			_, err := clusterSecrets(&clusterv3.Cluster{TransportSocket: broken(tlsPrefix + "tls.v3.UpstreamTlsContext")})
			return err
		}},
		{"upstream QUIC", "transport_socket: decode QuicUpstreamTransport", func() error {
			_, err := clusterSecrets(&clusterv3.Cluster{TransportSocket: broken(tlsPrefix + "quic.v3.QuicUpstreamTransport")})
			return err
		}},
	} {
		if err := tt.err(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	// Through decodeBody, the listener is named.
	l := &listenerv3.Listener{Name: "L", FilterChains: []*listenerv3.FilterChain{{TransportSocket: broken(tlsPrefix + "tls.v3.DownstreamTlsContext")}}}
	a, _ := anypb.New(l)
	if _, _, err := decodeBody(kindListener, a); err == nil || !strings.Contains(err.Error(), `listener "L": filter_chains[0]`) {
		t.Errorf("decodeBody: %v", err)
	}
	c := &clusterv3.Cluster{Name: "C", TransportSocket: broken(tlsPrefix + "tls.v3.UpstreamTlsContext")}
	a, _ = anypb.New(c)
	if _, _, err := decodeBody(kindCluster, a); err == nil || !strings.Contains(err.Error(), `cluster "C": transport_socket`) {
		t.Errorf("decodeBody: %v", err)
	}
}

func TestSecretNamesOfQUIC(t *testing.T) {
	common := &tlsv3.CommonTlsContext{TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{
		{Name: "q", SdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}},
		{Name: "file", SdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{PathConfigSource: &corev3.PathConfigSource{Path: "/x"}}}},
	}}
	ts := func(m proto.Message) *corev3.TransportSocket {
		a, _ := anypb.New(m)
		return &corev3.TransportSocket{ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}
	}
	l := &listenerv3.Listener{FilterChains: []*listenerv3.FilterChain{{TransportSocket: ts(&quicv3.QuicDownstreamTransport{DownstreamTlsContext: &tlsv3.DownstreamTlsContext{CommonTlsContext: common}})}}}
	if got, err := listenerSecrets(l); err != nil || strings.Join(got, ",") != "q" {
		t.Errorf("QUIC listener: %v, %v", got, err)
	}
	c := &clusterv3.Cluster{TransportSocket: ts(&quicv3.QuicUpstreamTransport{UpstreamTlsContext: &tlsv3.UpstreamTlsContext{CommonTlsContext: common}})}
	if got, err := clusterSecrets(c); err != nil || strings.Join(got, ",") != "q" {
		t.Errorf("QUIC cluster: %v, %v", got, err)
	}
}
