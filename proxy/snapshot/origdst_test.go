package snapshot

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

const origDstListenerFilter = `"listenerFilters": [{"name": "envoy.filters.listener.original_dst",
	"typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst"}}]`

func origListener(t *testing.T, extra, chains string) *listenerv3.Listener {
	t.Helper()
	var l listenerv3.Listener
	js := `{"name": "outbound", "address": {"socketAddress": {"address": "127.0.0.1", "portValue": 15001}}` + extra + `, "filterChains": [` + chains + `]}`
	if err := protojson.Unmarshal([]byte(js), &l); err != nil {
		t.Fatalf("listener JSON: %v\n%s", err, js)
	}
	return &l
}

func origCluster(t *testing.T, js string) *clusterv3.Cluster {
	t.Helper()
	var c clusterv3.Cluster
	if err := protojson.Unmarshal([]byte(js), &c); err != nil {
		t.Fatalf("cluster JSON: %v\n%s", err, js)
	}
	return &c
}

// The transparent outbound listener: original_dst, chains matched by
// destination, and an ORIGINAL_DST passthrough cluster.
func TestOriginalDstConversion(t *testing.T) {
	l := origListener(t, ", "+origDstListenerFilter,
		`{"filterChainMatch": {"destinationPort": 9191, "prefixRanges": [{"addressPrefix": "10.0.0.5", "prefixLen": 32}, {"addressPrefix": "10.1.0.0", "prefixLen": 16}]},
		  "filters": [`+tcpFilter(`, "cluster": "a"`)+`]},
		 {"filterChainMatch": {"destinationPort": 9191, "prefixRanges": [{"addressPrefix": "10.0.0.6", "prefixLen": 32}]}, "filters": [`+tcpFilter(`, "cluster": "a"`)+`]},
		 {"filters": [`+tcpFilter(`, "cluster": "passthrough"`)+`]}`)
	pass := origCluster(t, `{"name": "passthrough", "type": "ORIGINAL_DST", "lbPolicy": "CLUSTER_PROVIDED", "connectTimeout": "2s", "cleanupInterval": "30s"}`)
	s, err := Build([]*listenerv3.Listener{l}, nil, append(staticClusterProto(t, "a"), pass))
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	sl := s.Listeners[0]
	if !sl.Config.OriginalDst {
		t.Error("original_dst listener filter not converted")
	}
	m := sl.Config.FilterChains[0].Match
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32"), netip.MustParsePrefix("10.1.0.0/16")}
	if m.DestinationPort != 9191 || len(m.PrefixRanges) != 2 || m.PrefixRanges[0] != want[0] || m.PrefixRanges[1] != want[1] {
		t.Errorf("chain match = %+v, want port 9191 and %v", m, want)
	}
	var pc cluster.Config
	for _, c := range s.Clusters {
		if c.Name == "passthrough" {
			pc = c
		}
	}
	if pc.Discovery != cluster.OriginalDst || pc.CleanupInterval != 30*time.Second || len(pc.Endpoints) != 0 {
		t.Errorf("passthrough cluster = %+v", pc)
	}
	if err := pc.Validate(); err != nil {
		t.Errorf("converted ORIGINAL_DST cluster invalid: %v", err)
	}
	// Without cleanup_interval: Envoy's 5s.
	s, err = Build(nil, nil, []*clusterv3.Cluster{origCluster(t, `{"name": "p", "type": "ORIGINAL_DST", "lbPolicy": "CLUSTER_PROVIDED"}`)})
	if err != nil || s.Clusters[0].CleanupInterval != 5*time.Second {
		t.Errorf("default cleanup_interval: %v, %v", err, s)
	}
	// A listener without the filter does not restore anything.
	s, err = Build([]*listenerv3.Listener{origListener(t, "", `{"filters": [`+tcpFilter(`, "cluster": "a"`)+`]}`)}, nil, staticClusterProto(t, "a"))
	if err != nil || s.Listeners[0].Config.OriginalDst {
		t.Errorf("listener without original_dst: %v, OriginalDst %v", err, err == nil && s.Listeners[0].Config.OriginalDst)
	}
}

func TestOriginalDstRefused(t *testing.T) {
	chain := func(match string) string {
		return `{"filterChainMatch": ` + match + `, "filters": [` + tcpFilter(`, "cluster": "a"`) + `]}`
	}
	tests := []struct {
		name        string
		listener    *listenerv3.Listener
		cluster     string
		path        string
		reason      string
		unsupported bool
	}{
		{"bad prefix", origListener(t, "", chain(`{"prefixRanges": [{"addressPrefix": "nope", "prefixLen": 8}]}`)), "",
			"listeners[0].filter_chains[0].filter_chain_match.prefix_ranges[0].address_prefix", "not an IP address", false},
		{"prefix too long", origListener(t, "", chain(`{"prefixRanges": [{"addressPrefix": "10.0.0.0", "prefixLen": 33}]}`)), "",
			"listeners[0].filter_chains[0].filter_chain_match.prefix_ranges[0].prefix_len", "longer than", false},
		{"same destination twice", origListener(t, "", chain(`{"destinationPort": 80}`)+`, `+chain(`{"destinationPort": 80}`)), "",
			"listeners[0].filter_chains[1]", "the same as filter_chains[0]", false},
		{"source_prefix_ranges", origListener(t, "", chain(`{"sourcePrefixRanges": [{"addressPrefix": "10.0.0.0", "prefixLen": 8}]}`)), "",
			"listeners[0].filter_chains[0].filter_chain_match.source_prefix_ranges", "not supported", true},
		{"use_original_dst", origListener(t, `, "useOriginalDst": true`, chain(`{}`)), "",
			"listeners[0].use_original_dst", "not supported", true},
		{"ORIGINAL_DST without CLUSTER_PROVIDED", nil, `{"name": "p", "type": "ORIGINAL_DST"}`,
			"clusters[1].lb_policy", "needs CLUSTER_PROVIDED", false},
		{"CLUSTER_PROVIDED on STATIC", nil, `{"name": "p", "type": "STATIC", "lbPolicy": "CLUSTER_PROVIDED"}`,
			"clusters[1].lb_policy", "only for clusters of type ORIGINAL_DST", false},
		{"ORIGINAL_DST with endpoints", nil, `{"name": "p", "type": "ORIGINAL_DST", "lbPolicy": "CLUSTER_PROVIDED", "loadAssignment": {"clusterName": "p"}}`,
			"clusters[1].load_assignment", "not supported on an ORIGINAL_DST cluster", false},
		{"ORIGINAL_DST with health checks", nil, `{"name": "p", "type": "ORIGINAL_DST", "lbPolicy": "CLUSTER_PROVIDED", "healthChecks": [{"timeout": "1s", "interval": "1s", "healthyThreshold": 1, "unhealthyThreshold": 1, "tcpHealthCheck": {}}]}`,
			"clusters[1].health_checks", "not supported on an ORIGINAL_DST cluster", false},
		{"use_http_header", nil, `{"name": "p", "type": "ORIGINAL_DST", "lbPolicy": "CLUSTER_PROVIDED", "originalDstLbConfig": {"useHttpHeader": true}}`,
			"clusters[1].original_dst_lb_config", "not supported", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ls []*listenerv3.Listener
			if tt.listener != nil {
				ls = append(ls, tt.listener)
			}
			cls := staticClusterProto(t, "a")
			if tt.cluster != "" {
				cls = append(cls, origCluster(t, tt.cluster))
			}
			_, err := Build(ls, nil, cls)
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
	// The protos' own rules (checked before conversion) refuse a port out
	// of range and a zero cleanup_interval.
	var v *resource.ValidationError
	if _, err := Build([]*listenerv3.Listener{origListener(t, "", chain(`{"destinationPort": 70000}`))}, nil, staticClusterProto(t, "a")); !errors.As(err, &v) {
		t.Errorf("destination_port 70000: %v", err)
	}
	if _, err := Build(nil, nil, []*clusterv3.Cluster{origCluster(t, `{"name": "p", "type": "ORIGINAL_DST", "lbPolicy": "CLUSTER_PROVIDED", "cleanupInterval": "0s"}`)}); !errors.As(err, &v) {
		t.Errorf("cleanup_interval 0s: %v", err)
	}
}

// The errors of an ORIGINAL_DST cluster with several fields it cannot use
// come in the same order every time (they were gathered over a map).
func TestOriginalDstErrorOrder(t *testing.T) {
	js := `{"name": "p", "type": "ORIGINAL_DST", "lbPolicy": "CLUSTER_PROVIDED",
	  "healthChecks": [{"timeout": "1s", "interval": "1s", "healthyThreshold": 1, "unhealthyThreshold": 1, "tcpHealthCheck": {}}],
	  "outlierDetection": {}, "commonLbConfig": {}, "loadAssignment": {"clusterName": "p"}}`
	const why = ": is not supported on an ORIGINAL_DST cluster (its hosts are the connections' original destinations)"
	want := "clusters[0].health_checks" + why + "\nclusters[0].outlier_detection" + why +
		"\nclusters[0].common_lb_config" + why + "\nclusters[0].load_assignment" + why
	for i := 0; i < 50; i++ {
		_, err := Build(nil, nil, []*clusterv3.Cluster{origCluster(t, js)})
		if err == nil || err.Error() != want {
			t.Fatalf("build %d: %v\nwant %s", i, err, want)
		}
	}
}
