//go:build linux

package origdst_test

import (
	"github.com/outrigger-mesh/outrigger/internal/netnstest"

	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/redirect"
)

// Transparent capture end to end: `outrigger redirect-traffic`'s rules
// (proxy/redirect) in a network namespace the test makes, and the real
// proxy (proxy/server from an Envoy bootstrap) running there as its own
// user: an outbound listener with the original_dst listener filter, filter
// chains matched by destination port and prefix, TCP proxies to an
// ORIGINAL_DST cluster and to a STATIC one.
const (
	envProxy     = "OUTRIGGER_TRANSPARENT_TEST_PROXY" // the bootstrap YAML
	proxyUID     = 5996
	outboundPort = 15001
	adminAddr    = "127.0.0.1:15000"
)

func TestMain(m *testing.M) {
	if y := os.Getenv(envProxy); y != "" {
		os.Exit(runProxy(y))
	}
	os.Exit(m.Run())
}

// runProxy is the proxy: this test binary re-executed in the pod's
// namespace. It drops to proxyUID (the rules leave that user's
// connections alone, so the proxy's upstream connections are not captured
// again), prints "ready" once serving, and stops when its stdin closes.
func runProxy(yaml string) int {
	return netnstest.ServeOutrigger(proxyUID, yaml, 10*time.Second, hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: os.Stderr}))
}

// The peer's address, where the "real" destinations listen.
const peerIP = "10.211.0.2"

// bootstrapYAML: the outbound listener on 15001 with original_dst. Port
// 9000 at the peer is a "service" the chain sends to the STATIC cluster
// svc (port 9001, where it really listens); port 8080 has its own chain;
// everything else takes the passthrough chain. Both of the latter go to
// the ORIGINAL_DST cluster.
func bootstrapYAML() string {
	chain := func(match, prefix, cluster string) string {
		return match + fmt.Sprintf(`      filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: %s
          cluster: %s
`, prefix, cluster)
	}
	return fmt.Sprintf(`admin:
  address:
    socket_address: {address: 127.0.0.1, port_value: 15000}
static_resources:
  listeners:
  - name: outbound
    address:
      socket_address: {address: 0.0.0.0, port_value: %d}
    listener_filters:
    - name: envoy.filters.listener.original_dst
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst
    filter_chains:
    - filter_chain_match:
        destination_port: 9000
        prefix_ranges: [{address_prefix: %s, prefix_len: 32}]
%s    - filter_chain_match:
        destination_port: 8080
%s    - %s
  clusters:
  - name: svc
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: svc
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: %s, port_value: 9001}}}
  - name: passthrough
    type: ORIGINAL_DST
    lb_policy: CLUSTER_PROVIDED
    connect_timeout: 2s
    cleanup_interval: 60s
`, outboundPort, peerIP,
		chain("", "svc", "svc"),
		chain("", "dst8080", "passthrough"),
		strings.TrimPrefix(chain("", "passthrough", "passthrough"), "      "),
		peerIP)
}

// netns is a network namespace the test made.
type netns = netnstest.NS

// adminGet fetches an admin page from inside n; anything but 200 is an
// error.
func adminGet(n netns, addr, path string) (string, error) {
	status, body, err := n.Get(addr, "admin", path)
	if err == nil && status != 200 {
		err = fmt.Errorf("GET %s: %d", path, status)
	}
	return body, err
}

var nsSeq atomic.Int32

func pair(t *testing.T) (pod, peer netns) {
	t.Helper()
	base := fmt.Sprintf("ortr%d-%d", os.Getpid(), nsSeq.Add(1))
	pod, peer = netns(base+"-pod"), netns(base+"-peer")
	for _, n := range []netns{pod, peer} {
		netnstest.IP(t, "netns", "add", string(n))
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", string(n)).Run() })
		n.Exec(t, "ip", "link", "set", "lo", "up")
	}
	pod.Exec(t, "ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", string(peer))
	pod.Exec(t, "ip", "addr", "add", "10.211.0.1/24", "dev", "veth0")
	pod.Exec(t, "ip", "link", "set", "veth0", "up")
	peer.Exec(t, "ip", "addr", "add", peerIP+"/24", "dev", "veth1")
	peer.Exec(t, "ip", "link", "set", "veth1", "up")
	return pod, peer
}

// startProxy runs the proxy in pod as proxyUID and waits for "ready".
func startProxy(t *testing.T, pod netns) {
	t.Helper()
	pod.StartChild(t, envProxy+"="+bootstrapYAML(), os.Stderr, 30*time.Second)
}

func TestTransparentProxyInNetworkNamespace(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIP: transparent capture needs root (network namespaces, netfilter, setuid); run the tests as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIP: no ip command (iproute2)")
	}
	for _, tc := range []struct {
		backend redirect.Backend
		bin     string
	}{{redirect.NFTables, "nft"}, {redirect.IPTables, "iptables-restore"}} {
		t.Run(string(tc.backend), func(t *testing.T) {
			if _, err := exec.LookPath(tc.bin); err != nil {
				t.Skipf("SKIP: no %s (apt-get install nftables iptables)", tc.bin)
			}
			transparentCase(t, tc.backend)
		})
	}
}

// transparentCase is one backend's run.
func transparentCase(t *testing.T, backend redirect.Backend) {
	pod, peer := pair(t)
	ctx := context.Background()
	cfg := redirect.Config{ProxyUID: proxyUID, OutboundPort: outboundPort, ExcludeOutboundPorts: []int{5432}}
	if err := redirect.Apply(ctx, cfg, backend, pod.Run); err != nil {
		t.Fatal(err)
	}
	startProxy(t, pod)
	peer.ServeLine(t, peerIP+":8080", "backend-8080")
	peer.ServeLine(t, peerIP+":7070", "backend-7070")
	peer.ServeLine(t, peerIP+":9001", "svc-9001")
	peer.ServeLine(t, peerIP+":5432", "backend-5432")

	for _, c := range []struct {
		name, addr, want string
	}{
		{"port 8080's chain, to the original destination", peerIP + ":8080", "backend-8080\n"},
		{"the passthrough chain, to the original destination", peerIP + ":7070", "backend-7070\n"},
		{"destination port and prefix pick the service's chain", peerIP + ":9000", "svc-9001\n"},
		{"an excluded port bypasses the proxy", peerIP + ":5432", "backend-5432\n"},
		{"port 8080 again (the host is reused)", peerIP + ":8080", "backend-8080\n"},
	} {
		got, err := pod.Fetch(c.addr)
		if err != nil || got != c.want {
			t.Errorf("%s: %s = %q, %v; want %q", c.name, c.addr, got, err, c.want)
		}
	}

	// The proxy saw exactly the four captured connections, each on the
	// chain its destination picks; the ORIGINAL_DST cluster made one host
	// per destination.
	var page string
	deadline := time.Now().Add(5 * time.Second)
	for {
		var err error
		page, err = adminGet(pod, adminAddr, "/stats")
		if err == nil && netnstest.Stat(page, "outrigger_tcp_downstream_cx_active", `stat_prefix="dst8080"`) == 0 &&
			netnstest.Stat(page, "outrigger_tcp_downstream_cx_active", `stat_prefix="passthrough"`) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats not settled (%v):\n%s", err, page)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range []struct {
		name, labels string
		want         int
	}{
		{"outrigger_tcp_downstream_cx_total", `stat_prefix="dst8080"`, 2},
		{"outrigger_tcp_downstream_cx_total", `stat_prefix="passthrough"`, 1},
		{"outrigger_tcp_downstream_cx_total", `stat_prefix="svc"`, 1},
		{"outrigger_upstream_cx_total", `cluster="passthrough"`, 3},
		{"outrigger_upstream_cx_total", `cluster="svc"`, 1},
		{"outrigger_downstream_cx_total", `listener="outbound"`, 4},
	} {
		if got := netnstest.Stat(page, c.name, c.labels); got != c.want {
			t.Errorf("%s{%s} = %d, want %d", c.name, c.labels, got, c.want)
		}
	}
	clusters, err := adminGet(pod, adminAddr, "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{peerIP + ":8080", peerIP + ":7070"} {
		if !strings.Contains(clusters, "passthrough::"+h) {
			t.Errorf("/clusters has no ORIGINAL_DST host %s:\n%s", h, clusters)
		}
	}
	if t.Failed() {
		t.Logf("/stats:\n%s", page)
	}
}
