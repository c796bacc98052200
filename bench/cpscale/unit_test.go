package cpscale

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func cla(name string, hosts ...string) *endpointv3.ClusterLoadAssignment {
	c := &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{}}}
	for _, h := range hosts {
		c.Endpoints[0].LbEndpoints = append(c.Endpoints[0].LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
				Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: h,
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: sidecarPort}}}}}},
		})
	}
	return c
}

func TestResourceNameReadsFieldOne(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  proto.Message
	}{
		{"cpb-hub", cla("cpb-hub", "10.0.0.1")},
		{"web:127.0.0.1:9000", &listenerv3.Listener{Name: "web:127.0.0.1:9000", Address: &corev3.Address{}}},
		{"cpb-svc-1", &clusterv3.Cluster{Name: "cpb-svc-1", ConnectTimeout: nil}},
		{"route", &routev3.RouteConfiguration{Name: "route", VirtualHosts: []*routev3.VirtualHost{{Name: "x"}}}},
	} {
		raw, err := proto.Marshal(tc.msg)
		if err != nil {
			t.Fatal(err)
		}
		if got := resourceName(raw); got != tc.name {
			t.Errorf("resourceName(%T) = %q, want %q", tc.msg, got, tc.name)
		}
	}
	// A resource whose name is not the first field on the wire.
	raw, _ := proto.Marshal(&endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{{Priority: 1}}})
	raw = append(raw, []byte{0x0a, 3, 'a', 'b', 'c'}...)
	if got := resourceName(raw); got != "abc" {
		t.Errorf("name after another field = %q, want abc", got)
	}
	for _, bad := range [][]byte{{0xff}, {0x0a, 10, 'a'}, {0x12, 50}, nil} {
		if got := resourceName(bad); got != "" {
			t.Errorf("resourceName(%x) = %q, want empty", bad, got)
		}
	}
}

func TestClusterAndListenerReferences(t *testing.T) {
	eds := &clusterv3.Cluster{Name: "a", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}
	named := &clusterv3.Cluster{Name: "b", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: "b-eds"}}
	static := &clusterv3.Cluster{Name: "local_app", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
	for _, tc := range []struct {
		c    *clusterv3.Cluster
		want string
	}{{eds, "a"}, {named, "b-eds"}, {static, ""}} {
		got := strings.Join(clusterEDS(mustAny(t, tc.c)), ",")
		if got != tc.want {
			t.Errorf("clusterEDS(%s) = %q, want %q", tc.c.Name, got, tc.want)
		}
	}
	if got := clusterEDS(&anypb.Any{Value: []byte{0xff}}); got != nil {
		t.Errorf("clusterEDS(garbage) = %v", got)
	}

	hcm := func(rds string) *listenerv3.Filter {
		h := &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: rds}}}
		return &listenerv3.Filter{Name: "hcm", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}}
	}
	other := &listenerv3.Filter{Name: "tcp", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, &routev3.Route{})}}
	l := &listenerv3.Listener{Name: "l",
		FilterChains:       []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{other, hcm("r1")}}},
		DefaultFilterChain: &listenerv3.FilterChain{Filters: []*listenerv3.Filter{hcm("r2")}},
	}
	if got := strings.Join(listenerRDS(mustAny(t, l)), ","); got != "r1,r2" {
		t.Errorf("listenerRDS = %q, want r1,r2", got)
	}
	if got := listenerRDS(&anypb.Any{Value: []byte{0xff}}); got != nil {
		t.Errorf("listenerRDS(garbage) = %v", got)
	}
}

func TestChangeMatchers(t *testing.T) {
	raw := func(m proto.Message) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	changes := Changes(6)
	kinds := []string{}
	for _, c := range changes {
		kinds = append(kinds, c.Kind)
	}
	if got := strings.Join(kinds, ","); got != "endpoint-add,endpoint-remove,splitter-set,splitter-delete,endpoint-add,endpoint-remove" {
		t.Fatalf("Changes(6) kinds = %s", got)
	}
	if changes[0].Detail == changes[4].Detail {
		t.Errorf("the second endpoint-add repeats the first: %s", changes[0].Detail)
	}
	add, remove, split, unsplit := changes[0], changes[1], changes[2], changes[3]
	with := raw(cla(HubService, hubAddress(0), extraHubAddress(0)))
	without := raw(cla(HubService, hubAddress(0)))
	if !add.match(with) || add.match(without) || remove.match(with) || !remove.match(without) {
		t.Error("endpoint matchers do not tell the hub's endpoints with and without the extra instance apart")
	}
	if add.match([]byte{0xff}) {
		t.Error("an undecodable CLA matched endpoint-add")
	}
	weighted := raw(&routev3.RouteConfiguration{Name: HubService, VirtualHosts: []*routev3.VirtualHost{{Routes: []*routev3.Route{{
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{
			WeightedClusters: &routev3.WeightedCluster{Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: HubService}, {Name: splitTarget}}},
		}}}}}}}})
	single := raw(&routev3.RouteConfiguration{Name: HubService, VirtualHosts: []*routev3.VirtualHost{{Routes: []*routev3.Route{{
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: HubService}}}}}}}})
	if !split.match(weighted) || split.match(single) || unsplit.match(weighted) || !unsplit.match(single) {
		t.Error("splitter matchers do not tell the hub's route with and without the split apart")
	}
	if split.match([]byte{0xff}) {
		t.Error("an undecodable route matched splitter-set")
	}
}

func TestLayout(t *testing.T) {
	for _, tc := range []struct {
		l       Layout
		wantErr string
	}{
		{Layout{Proxies: 10, Services: 2, Upstreams: 2, HubInstances: 3}, ""},
		{Layout{Proxies: 0, Services: 2, Upstreams: 2, HubInstances: 3}, "proxies 0"},
		{Layout{Proxies: 10, Services: 0, Upstreams: 2, HubInstances: 3}, "services 0"},
		{Layout{Proxies: 10, Services: 2, Upstreams: 3, HubInstances: 3}, "upstreams 3"},
		{Layout{Proxies: 10, Services: 2, Upstreams: 1, HubInstances: 0}, "hub instances 0"},
	} {
		err := tc.l.Validate()
		if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: Validate = %v, want %q", tc.l, err, tc.wantErr)
		}
	}
	if err := (Layout{}).Register(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "layout") {
		t.Errorf("Register of an invalid layout = %v", err)
	}

	pods := Layout{Proxies: 70000, Services: 3, Upstreams: 2, HubInstances: 1}
	seen := map[string]bool{}
	for _, j := range []int{0, 1, 255, 256, 65535, 65536, 69999} {
		a := pods.podAddress(j)
		if seen[a] {
			t.Errorf("pod %d: address %s repeats", j, a)
		}
		seen[a] = true
	}
	shared := pods
	shared.Shared = true
	if shared.podAddress(0) != shared.podAddress(3) || shared.podAddress(0) == shared.podAddress(1) {
		t.Errorf("shared addresses: %s %s %s; want one per service", shared.podAddress(0), shared.podAddress(3), shared.podAddress(1))
	}
	if pods.ProxyID(4) != "cpb-svc-1-4-sidecar-proxy" || pods.ProxyService(4) != "cpb-svc-1" {
		t.Errorf("proxy 4: id %s service %s", pods.ProxyID(4), pods.ProxyService(4))
	}
	if ups := pods.upstreams(2); len(ups) != 2 || ups[0].DestinationName != HubService || ups[1].DestinationName != "cpb-svc-0" {
		t.Errorf("upstreams of the last service: %+v", ups)
	}
	if pods.RegisteredProxies() != 70001 {
		t.Errorf("RegisteredProxies = %d", pods.RegisteredProxies())
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Layout: Layout{Proxies: 1, Services: 1, Upstreams: 1, HubInstances: 1}, ConsulBin: "c", ControlPlaneBin: "cp", Dir: "d"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	inproc := ok
	inproc.ControlPlaneBin, inproc.InProcess = "", true
	if err := inproc.Validate(); err != nil {
		t.Errorf("in-process needs no binary: %v", err)
	}
	bad := Config{}
	err := bad.Validate()
	for _, want := range []string{"proxies 0", "no Consul binary", "no outrigger-cp binary", "no work directory"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate of an empty config = %v, want it to say %q", err, want)
		}
	}
	if _, err := Run(context.Background(), bad); err == nil {
		t.Error("Run accepted an empty config")
	}
}

func TestStats(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	if got := summarize(nil); got != (Latency{}) {
		t.Errorf("summarize(nil) = %+v", got)
	}
	var hundred []time.Duration
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	got := summarize(hundred)
	if got.Count != 100 || got.P50 != 50*time.Millisecond || got.P99 != 99*time.Millisecond || got.Max != 100*time.Millisecond {
		t.Errorf("summarize(1..100 ms) = %+v", got)
	}
	if got := summarize(ms(7)); got.P50 != 7*time.Millisecond || got.P99 != 7*time.Millisecond {
		t.Errorf("one value: %+v", got)
	}
	if median(nil) != 0 || median([]float64{3, 1, 2}) != 2 || median([]float64{4, 1, 3, 2}) != 2.5 {
		t.Error("median")
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing")
	}
}

func TestParseTranslations(t *testing.T) {
	in := `{"@level":"debug","@message":"publishing mesh","@timestamp":"2026-11-25T23:00:00.000000Z"}
not json "mesh translated"
{"@level":"debug","@message":"mesh translated","@timestamp":"2026-11-25T23:00:01.500000Z","mesh_index":42,"proxies":10,"groups":3,"nodes_updated":7,"took":1500000}
{"@level":"debug","@message":"mesh translated","@timestamp":"2026-11-25T23:00:02.000000Z","mesh_index":43,"proxies":10,"groups":3,"took":"2.5ms"}
`
	got, err := parseTranslations(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].MeshIndex != 42 || got[0].Took != 1500*time.Microsecond || got[0].Updated != 7 ||
		got[1].Took != 2500*time.Microsecond || got[1].At.Sub(got[0].At) != 500*time.Millisecond {
		t.Errorf("parseTranslations = %+v", got)
	}
	for _, bad := range []string{
		`{"@message":"mesh translated","@timestamp":"yesterday","took":1}`,
		`{"@message":"mesh translated","@timestamp":"2026-11-25T23:00:01.500000Z","took":"soon"}`,
		`{"@message":"mesh translated","@timestamp":"2026-11-25T23:00:01.500000Z","took":{}}`,
	} {
		if _, err := parseTranslations(strings.NewReader(bad)); err == nil {
			t.Errorf("parseTranslations(%s) accepted it", bad)
		}
	}
}

func TestParseGCTrace(t *testing.T) {
	start := time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC)
	in := `{"@message":"starting"}
gc 1 @0.016s 1%: 0.051+2.6+0.005 ms clock, 0.10+0.61/0/0+0.011 ms cpu, 3->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P
gc 27 @78.770s 5%: 0.88+1444+0.048 ms clock, 1.7+0.38/730/931+0.097 ms cpu, 7461->7587->1481 MB, 8770 MB goal, 49 MB stacks, 0 MB globals, 2 P
gc 28 @80s 5%: garbled
`
	got, err := parseGCTrace(strings.NewReader(in), start)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].N != 27 || got[1].Live != 1481<<20 || !got[1].At.Equal(start.Add(78770*time.Millisecond)) {
		t.Fatalf("parseGCTrace = %+v", got)
	}
	if gc, ok := firstGCSince(got, start.Add(time.Second)); !ok || gc.N != 27 {
		t.Errorf("firstGCSince = %+v, %v", gc, ok)
	}
	if _, ok := firstGCSince(got, start.Add(time.Hour)); ok {
		t.Error("firstGCSince found a cycle after the last")
	}
}

func TestParseMetrics(t *testing.T) {
	in := `# TYPE go_goroutines gauge
go_goroutines 17
# TYPE outrigger_cp_xds_nacks_total counter
outrigger_cp_xds_nacks_total{type="listener"} 1
outrigger_cp_xds_nacks_total{type="route"} 2
# TYPE other untyped
other 5
`
	got, err := parseMetrics(strings.NewReader(in), []string{metricGoroutines, metricNACKs, "other", "absent"})
	if err != nil {
		t.Fatal(err)
	}
	if got[metricGoroutines] != 17 || got[metricNACKs] != 3 || got["other"] != 5 {
		t.Errorf("parseMetrics = %v", got)
	}
	if _, ok := got["absent"]; ok {
		t.Error("an absent metric has a value")
	}
	if _, err := parseMetrics(strings.NewReader("go_goroutines not-a-number\n"), nil); err == nil {
		t.Error("parseMetrics accepted a malformed value")
	}
}

func TestRecordError(t *testing.T) {
	f := &fleet{errors: map[string]int{}}
	f.recordError(io.EOF)
	f.recordError(nil)
	f.recordError(status.Error(codes.NotFound, "node x is not registered"))
	f.recordError(errors.New("boom"))
	got := f.Errors()
	if got["closed by the server"] != 2 || got["NotFound: node x is not registered"] != 1 || got["boom"] != 1 {
		t.Errorf("Errors = %v", got)
	}
}

func TestDiff(t *testing.T) {
	add, remove := diff([]string{"a", "b", "c"}, []string{"b", "c", "d"})
	if strings.Join(add, ",") != "d" || strings.Join(remove, ",") != "a" {
		t.Errorf("diff = %v, %v", add, remove)
	}
}

func TestRepoRootAndInstallScript(t *testing.T) {
	if _, err := RepoRoot("/"); err == nil || !strings.Contains(err.Error(), "no repository root") {
		t.Errorf("RepoRoot(/) = %v", err)
	}
	root, err := RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scripts", "install-consul.sh")); err != nil {
		t.Errorf("RepoRoot = %s: %v", root, err)
	}

	// The install script's error paths are tested in internal/consulagent.
	dir := t.TempDir()
	ctx := context.Background()
	if _, err := ConsulBinary(ctx, dir); err == nil {
		t.Error("ConsulBinary without the script succeeded")
	}
	if _, err := BuildControlPlane(ctx, dir, dir); err == nil || !strings.Contains(err.Error(), "go build outrigger-cp") {
		t.Errorf("BuildControlPlane outside the repository = %v", err)
	}
}

// TestChildrenThatExitEarly: an agent or control plane that exits at once
// is an error carrying its output.
func TestChildrenThatExitEarly(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "fails")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho 'bad flag' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := StartConsul(ctx, bin, dir); err == nil || !strings.Contains(err.Error(), "bad flag") {
		t.Errorf("StartConsul = %v, want the agent's output", err)
	}
	if _, err := StartControlPlane(ctx, bin, "127.0.0.1:1", dir, "cp"); err == nil || !strings.Contains(err.Error(), "bad flag") {
		t.Errorf("StartControlPlane = %v, want the process's output", err)
	}
	if _, err := StartControlPlane(ctx, filepath.Join(dir, "absent"), "127.0.0.1:1", dir, "cp"); err == nil {
		t.Error("StartControlPlane of a missing binary succeeded")
	}
}

func TestRaiseFileLimit(t *testing.T) {
	if err := RaiseFileLimit(64); err != nil {
		t.Errorf("RaiseFileLimit(64) = %v", err)
	}
	if err := RaiseFileLimit(1 << 62); err == nil || !strings.Contains(err.Error(), "hard limit") {
		t.Errorf("RaiseFileLimit(huge) = %v, want the hard limit named", err)
	}
}

func sampleResult(n int, p99 time.Duration, before, after float64) *Result {
	r := &Result{Proxies: n, Services: 10, Upstreams: 2, HubInstances: 3, Layout: "pods", Mode: "sotw", Conns: n / 16,
		Registered: n + 3, Synced: n, Groups: 13,
		Empty:    Memory{RSS: 20 << 20, Samples: 1},
		Baseline: Memory{RSS: before, LiveHeap: before / 2, LiveGC: 3, LiveFresh: true, Samples: 1},
		After:    Memory{RSS: after, LiveHeap: after / 2, LiveGC: 5, LiveFresh: true, Samples: 1},
		Changes: []*ChangeResult{{Kind: "endpoint-add", Detail: "a|b", Streams: n, Got: n,
			Latency: Latency{Count: n, P50: p99 / 2, P99: p99, Max: p99}, latencies: []time.Duration{p99}}},
		StreamErrors: map[string]int{"Unavailable: x": 1},
		NACKs:        2,
	}
	r.pool()
	r.All.Latency.P99 = p99
	return r
}

func TestReportTargetsAndRoundTrip(t *testing.T) {
	rep := &Report{Generated: time.Now(), Commands: []string{"outrigger-cpbench --proxies 1000,10000"}, Cases: []*Result{
		sampleResult(1000, 300*time.Millisecond, 100<<20, 110<<20),
		sampleResult(10000, 25*time.Second, 100<<20, 100<<20+10000*50000),
	}, Notes: []string{"a note"}}
	rep.Cases[1].Error = "cpscale: boom\nsecond-line"
	var b bytes.Buffer
	if err := rep.Markdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"| change → last ACK p99 ≤ 1s at 1,000 proxies | sotw N=1000 M=10 pods 62 conns | p99 300 ms",
		"| pass |",
		"| ≤ 20.0 KB per proxy at 10,000 proxies: RSS after − before the streams (understated when the baseline still holds a translation's garbage) | sotw N=10000 M=10 pods 625 conns | 50.0 KB",
		"| ≤ 20.0 KB per proxy at 10,000 proxies: live heap + goroutine stacks, after − before the streams | sotw N=10000 M=10 pods 625 conns | 25.0 KB | **miss** |",
		"**miss**",
		`a\|b`, "1 × Unavailable: x", "NACKs counted by outrigger-cp: 2", "stopped with an error:** cpscale: boom", "- a note",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "second-line") {
		t.Error("the report shows more than an error's first line")
	}

	dir := t.TempDir()
	path, err := rep.Write(dir, "cpscale")
	if err != nil || path != filepath.Join(dir, "cpscale.md") {
		t.Fatalf("Write = %q, %v", path, err)
	}
	back, err := ReadReport(filepath.Join(dir, "cpscale.json"))
	if err != nil {
		t.Fatal(err)
	}
	if lat, got, want := back.Cases[0].AllChanges(); lat.P99 != 300*time.Millisecond || got != 1000 || want != 1000 {
		t.Errorf("read back: %+v %d/%d", lat, got, want)
	}
	if _, err := ReadReport(filepath.Join(dir, "cpscale.md")); err == nil {
		t.Error("ReadReport accepted Markdown")
	}
	if _, err := ReadReport(filepath.Join(dir, "absent.json")); err == nil {
		t.Error("ReadReport of a missing file succeeded")
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rep.Write(file, "x"); err == nil {
		t.Error("Write under a file succeeded")
	}

	dup := &Report{Cases: []*Result{sampleResult(1000, time.Second, 1, 1), sampleResult(1000, time.Second, 1, 1)}}
	var d bytes.Buffer
	if err := dup.Markdown(&d); err != nil || !strings.Contains(d.String(), "### sotw N=1000 M=10 pods 62 conns, run 2") {
		t.Errorf("a repeated case is not numbered: %v\n%s", err, d.String())
	}

	var empty bytes.Buffer
	if err := (&Report{}).Markdown(&empty); err != nil || !strings.Contains(empty.String(), "no case ran at") {
		t.Errorf("empty report: %v\n%s", err, empty.String())
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{fmtDur(0), "—"}, {fmtDur(500 * time.Microsecond), "500 µs"}, {fmtDur(1500 * time.Millisecond), "1500 ms"},
		{fmtDur(25 * time.Second), "25.0 s"}, {fmtMiB(0), "—"}, {fmtMiB(3 << 20), "3.0 MiB"}, {fmtKB(20000), "20.0 KB"},
		{fmtKBOr(1, 0), "—"}, {thousands(10000), "10,000"}, {thousands(999), "999"}, {orDash(""), "—"},
		{gcCell(Memory{}), "no GC"}, {gcCell(Memory{LiveGC: 4}), "GC 4, stale"}, {gcCell(Memory{LiveGC: 4, LiveFresh: true}), "GC 4"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
