//go:build linux

package redirect

import (
	"github.com/outrigger-mesh/outrigger/internal/netnstest"

	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/origdst"
)

// The proxy helper: this test binary re-executed in the pod's namespace
// (see startProxy). It drops to the proxy's UID, so the rules' UID
// exclusion is what keeps its own upstream connections from being captured
// again, and proxies each connection to its original destination
// (origdst), announcing it with a line of its own.
const (
	envHelper = "OUTRIGGER_REDIRECT_TEST_PROXY"
	testUID   = 5995
)

func TestMain(m *testing.M) {
	if os.Getenv(envHelper) == "1" {
		os.Exit(proxyHelper())
	}
	os.Exit(m.Run())
}

func proxyHelper() int {
	return netnstest.Child(testUID, func() (func() error, error) {
		serve := func(port int, inbound bool) error {
			// Dual-stack: IPv4 connections arrive v4-mapped, as on a proxy
			// listening on [::].
			lis, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
			if err != nil {
				return err
			}
			go func() {
				for {
					c, err := lis.Accept()
					if err != nil {
						return
					}
					go proxyConn(c, inbound)
				}
			}()
			return nil
		}
		if err := serve(15001, false); err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		if err := serve(20000, true); err != nil {
			return nil, fmt.Errorf("listen: %w", err)
		}
		return nil, nil
	})
}

func proxyConn(c net.Conn, inbound bool) {
	defer c.Close()
	restored, redirected, err := origdst.Restore(c)
	if err != nil || !redirected {
		fmt.Fprintf(c, "proxy: no original destination: %v %v\n", redirected, err)
		return
	}
	oc := restored.(*origdst.Conn)
	dst := oc.Original
	if oc.LocalAddr().String() != dst.String() || oc.Accepted.Port() != uint16(c.LocalAddr().(*net.TCPAddr).Port) {
		fmt.Fprintf(c, "proxy: restored addresses %v (accepted on %v)\n", oc.LocalAddr(), oc.Accepted)
		return
	}
	target, kind := dst.String(), "out"
	if inbound {
		// As a sidecar's public listener does: to the local app.
		target, kind = fmt.Sprintf("127.0.0.1:%d", dst.Port()), "in"
	}
	up, err := net.DialTimeout("tcp", target, 3*time.Second)
	if err != nil {
		fmt.Fprintf(c, "proxy: dial %s: %v\n", target, err)
		return
	}
	defer up.Close()
	fmt.Fprintf(c, "proxied-%s %s\n", kind, dst)
	io.Copy(c, up)
}

// netns is a network namespace made for the test.
// netns is a network namespace the test made.
type netns = netnstest.NS

var nsSeq atomic.Int32

// pair makes a pod namespace and a peer namespace joined by a veth:
// pod 10.201.0.1/24 and fd00:201::1/64, peer 10.201.0.2/24,
// fd00:201::2/64 and also 10.202.0.2/32 (routed from the pod through the
// peer).
func pair(t *testing.T) (pod, peer netns) {
	t.Helper()
	base := fmt.Sprintf("ortest%d-%d", os.Getpid(), nsSeq.Add(1))
	pod, peer = netns(base+"-pod"), netns(base+"-peer")
	for _, n := range []netns{pod, peer} {
		netnstest.IP(t, "netns", "add", string(n))
		t.Cleanup(func() { exec.Command("ip", "netns", "del", string(n)).Run() })
		n.Exec(t, "ip", "link", "set", "lo", "up")
	}
	pod.Exec(t, "ip", "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", string(peer))
	pod.Exec(t, "ip", "addr", "add", "10.201.0.1/24", "dev", "veth0")
	pod.Exec(t, "ip", "addr", "add", "fd00:201::1/64", "dev", "veth0", "nodad")
	pod.Exec(t, "ip", "link", "set", "veth0", "up")
	peer.Exec(t, "ip", "addr", "add", "10.201.0.2/24", "dev", "veth1")
	peer.Exec(t, "ip", "addr", "add", "10.202.0.2/32", "dev", "veth1")
	peer.Exec(t, "ip", "addr", "add", "fd00:201::2/64", "dev", "veth1", "nodad")
	peer.Exec(t, "ip", "link", "set", "veth1", "up")
	pod.Exec(t, "ip", "route", "add", "10.202.0.0/24", "via", "10.201.0.2")
	return pod, peer
}

// startProxy runs the proxy helper in pod and waits for it to listen.
func startProxy(t *testing.T, pod netns) {
	t.Helper()
	pod.StartChild(t, envHelper+"=1", nil, 20*time.Second)
}

// TestCaptureInNetworkNamespaces installs the rules in a pod namespace the
// test makes and checks, with a real netfilter and a proxy that reads
// SO_ORIGINAL_DST: the app dialling the real destination is served through
// the proxy; an excluded port and an excluded CIDR bypass it; inbound
// connections from the peer reach the app through the proxy, except an
// excluded port; the proxy's own connections (its UID) are not captured;
// applying twice leaves one set of rules.
func TestCaptureInNetworkNamespaces(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIP: transparent capture needs root (network namespaces and netfilter); run the tests as root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("SKIP: no ip command (iproute2)")
	}
	for _, tc := range []struct {
		backend Backend
		bin     string
	}{{NFTables, "nft"}, {IPTables, "iptables-restore"}} {
		t.Run(string(tc.backend), func(t *testing.T) {
			if _, err := exec.LookPath(tc.bin); err != nil {
				t.Skipf("SKIP: no %s (apt-get install nftables iptables)", tc.bin)
			}
			pod, peer := pair(t)
			cfg := Config{
				ProxyUID: testUID, OutboundPort: 15001, InboundPort: 20000,
				ExcludeOutboundPorts: []int{5432},
				ExcludeInboundPorts:  []int{9090},
				ExcludeOutboundCIDRs: []netip.Prefix{netip.MustParsePrefix("10.202.0.0/24")},
				IPv6:                 true,
			}
			ctx := context.Background()
			for range 2 { // the second run must replace, not add
				if err := Apply(ctx, cfg, tc.backend, pod.Run); err != nil {
					t.Fatal(err)
				}
			}
			startProxy(t, pod)
			peer.ServeLine(t, "10.201.0.2:8080", "backend-8080")
			peer.ServeLine(t, "10.201.0.2:5432", "backend-5432")
			peer.ServeLine(t, "10.202.0.2:8080", "backend-cidr")
			peer.ServeLine(t, "[fd00:201::2]:8080", "backend6-8080")
			pod.ServeLine(t, "127.0.0.1:8080", "app-8080")
			pod.ServeLine(t, "0.0.0.0:9090", "app-9090")

			for _, c := range []struct {
				name string
				from netns
				addr string
				want string
			}{
				{"outbound through the proxy", pod, "10.201.0.2:8080", "proxied-out 10.201.0.2:8080\nbackend-8080\n"},
				{"excluded outbound port", pod, "10.201.0.2:5432", "backend-5432\n"},
				{"excluded CIDR", pod, "10.202.0.2:8080", "backend-cidr\n"},
				{"loopback is never captured", pod, "127.0.0.1:8080", "app-8080\n"},
				{"inbound through the proxy", peer, "10.201.0.1:8080", "proxied-in 10.201.0.1:8080\napp-8080\n"},
				{"IPv6 outbound through the proxy", pod, "[fd00:201::2]:8080", "proxied-out [fd00:201::2]:8080\nbackend6-8080\n"},
				{"IPv6 inbound through the proxy", peer, "[fd00:201::1]:8080", "proxied-in [fd00:201::1]:8080\napp-8080\n"},
				{"excluded inbound port", peer, "10.201.0.1:9090", "app-9090\n"},
			} {
				got, err := c.from.Fetch(c.addr)
				if err != nil || got != c.want {
					t.Errorf("%s: %s -> %s = %q, %v; want %q", c.name, c.from, c.addr, got, err, c.want)
				}
			}

			var list []byte
			var err error
			if tc.backend == NFTables {
				list, err = pod.Run(ctx, "", "nft", "list", "table", "inet", Table)
				if n := strings.Count(string(list), "redirect to :"); err != nil || n != 2 {
					t.Errorf("after two runs, %d redirects (%v):\n%s", n, err, list)
				}
			} else {
				list, err = pod.Run(ctx, "", "iptables", "-t", "nat", "-S")
				if n := strings.Count(string(list), "-j "+ChainOutput); err != nil || n != 1 {
					t.Errorf("after two runs, %d jumps to %s (%v):\n%s", n, ChainOutput, err, list)
				}
				if n := strings.Count(string(list), "REDIRECT --to-ports 15001"); n != 1 {
					t.Errorf("after two runs, %d outbound redirects:\n%s", n, list)
				}
			}
		})
	}
}
