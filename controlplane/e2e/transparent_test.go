//go:build linux

package e2e

import (
	"github.com/outrigger-mesh/outrigger/controlplane/sidecarboot"

	"github.com/outrigger-mesh/outrigger/internal/netnstest"

	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/internal/consultest"
	"github.com/outrigger-mesh/outrigger/proxy/redirect"
)

// Transparent mode through the whole mesh: a "pod" network namespace the
// test makes, joined to the test's own namespace by a veth (pod
// 10.212.0.1, host 10.212.0.2). In the host namespace: a real Consul, the
// control plane on 10.212.0.2, the payments app and its sidecar. In the
// pod: `outrigger redirect-traffic`'s rules and the frontend's sidecar
// (this test binary re-executed there as its own UID), registered in
// Consul with Proxy.Mode "transparent" and payments as an upstream. The
// app in the pod dials payments' own address (not the upstream's bind
// port) and
// is served through both sidecars (mTLS between them); a server outside
// the mesh is reached through the passthrough; an excluded port bypasses
// the sidecar.
const (
	envTransparentSidecar = "OUTRIGGER_E2E_TRANSPARENT_SIDECAR" // the bootstrap YAML
	transparentUID        = 5997
	podIP, hostIP         = "10.212.0.1", "10.212.0.2"
	podAdmin              = "127.0.0.1:19000"
)

func TestMain(m *testing.M) {
	if y := os.Getenv(envTransparentSidecar); y != "" {
		os.Exit(runTransparentSidecar(y))
	}
	os.Exit(m.Run())
}

// runTransparentSidecar is the pod's sidecar: it drops to transparentUID
// (the rules leave that user's connections alone), serves the bootstrap,
// prints "ready" once its first configuration is in force and stops when
// its stdin closes.
func runTransparentSidecar(yaml string) int {
	return netnstest.ServeOutrigger(transparentUID, yaml, 30*time.Second,
		hclog.New(&hclog.LoggerOptions{Name: "pod-sidecar", Level: proxyLogLevel(), Output: os.Stderr}))
}

// podNS is the pod's network namespace.
type podNS = netnstest.NS

// podGet sends one GET to addr from inside the pod: "status body".
func podGet(n podNS, addr, path string) (string, error) {
	status, body, err := n.Get(addr, addr, path)
	return fmt.Sprintf("%d %s", status, body), err
}

// serveRemote answers every HTTP request on addr (in the test's own
// namespace) with name and the client's IP, so the test tells a request
// that came through the mesh (from a sidecar here) from a direct one.
func serveRemote(t *testing.T, addr, name string) int {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		fmt.Fprintf(w, "%s from %s", name, host)
	})}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close() })
	return lis.Addr().(*net.TCPAddr).Port
}

func startPodSidecar(t *testing.T, pod podNS, yaml string) {
	t.Helper()
	pod.StartChild(t, envTransparentSidecar+"="+yaml, testWriter{t}, 40*time.Second)
}

func TestTransparentMesh(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("SKIP: transparent mode needs root (network namespaces, netfilter, setuid); run the tests as root")
	}
	for _, bin := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("SKIP: no %s (apt-get install iproute2 nftables)", bin)
		}
	}
	pod := podNS(fmt.Sprintf("ore2e%d", os.Getpid()))
	hostIf := fmt.Sprintf("ore2e%d", os.Getpid()%100000)
	netnstest.IP(t, "netns", "add", string(pod))
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", string(pod)).Run() })
	netnstest.IP(t, "netns", "exec", string(pod), "ip", "link", "set", "lo", "up")
	netnstest.IP(t, "link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", string(pod))
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostIf).Run() })
	netnstest.IP(t, "addr", "add", hostIP+"/24", "dev", hostIf)
	netnstest.IP(t, "link", "set", hostIf, "up")
	netnstest.IP(t, "netns", "exec", string(pod), "ip", "addr", "add", podIP+"/24", "dev", "eth0")
	netnstest.IP(t, "netns", "exec", string(pod), "ip", "link", "set", "eth0", "up")

	agent := consultest.Start(t)
	c := agent.Client
	writeEntry(t, c, &api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal, Config: map[string]any{"protocol": "http"}})
	cp := &controlPlane{t: t, client: c, addr: hostIP + ":0"}
	cp.start()
	t.Cleanup(cp.stop)

	// payments: its app and sidecar in the host namespace, on hostIP.
	appPort := serveRemote(t, hostIP+":0", "payments")
	sidecarPort := freePort(t)
	ttl := func(id string) api.AgentServiceChecks {
		return api.AgentServiceChecks{{CheckID: "ttl:" + id, Name: "ttl", TTL: "10m", Status: api.HealthPassing}}
	}
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		Name: "payments", ID: "payments-1", Address: hostIP, Port: appPort,
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Address: hostIP, Port: sidecarPort, Checks: ttl("payments-1"),
			Proxy: &api.AgentServiceConnectProxyConfig{LocalServiceAddress: hostIP, LocalServicePort: appPort},
		}},
	}); err != nil {
		t.Fatal(err)
	}
	sidecar(t, cp, "payments-1-sidecar-proxy", "payments", false)

	// frontend: transparent, in the pod.
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		Name: "frontend", ID: "frontend-1", Address: podIP, Port: 8080,
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Address: podIP, Port: 21000, Checks: ttl("frontend-1"),
			Proxy: &api.AgentServiceConnectProxyConfig{
				Mode:      api.ProxyModeTransparent,
				Upstreams: []api.Upstream{{DestinationName: "payments", LocalBindPort: 9191}}, // Consul 1.16 requires a bind port
			},
		}},
	}); err != nil {
		t.Fatal(err)
	}
	_, cpPort, _ := net.SplitHostPort(cp.addr)
	// The pod reaches the control plane on the host side of its veth.
	bs, err := sidecarboot.Config(sidecarboot.Options{ID: "frontend-1-sidecar-proxy", Service: "frontend",
		XDSAddr: net.JoinHostPort(hostIP, cpPort), AdminAddr: podAdmin})
	if err != nil {
		t.Fatal(err)
	}
	yamlBytes, err := sidecarboot.YAML(bs)
	if err != nil {
		t.Fatal(err)
	}
	yaml := string(yamlBytes)

	// Outside the mesh: a server the passthrough reaches, and one on an
	// excluded port.
	outside := serveRemote(t, hostIP+":0", "outside")
	excluded := serveRemote(t, hostIP+":0", "excluded")
	if err := redirect.Apply(context.Background(), redirect.Config{ProxyUID: transparentUID, OutboundPort: 15001,
		ExcludeOutboundPorts: []int{excluded}}, redirect.NFTables, pod.Run); err != nil {
		t.Fatal(err)
	}
	startPodSidecar(t, pod, yaml)

	// The app dials payments' own address: through both sidecars, so the
	// payments app sees its sidecar (hostIP) as the client.
	want := "200 payments from " + hostIP
	var got string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got, err = podGet(pod, net.JoinHostPort(hostIP, strconv.Itoa(appPort)), "/")
		if err == nil && got == want {
			break
		}
		if time.Now().After(deadline) {
			page, _ := podGet(pod, podAdmin, "/config_dump")
			t.Fatalf("payments through the mesh: %q, %v; want %q\nconfig:\n%.4000s", got, err, want, page)
		}
	}
	if got, err := podGet(pod, net.JoinHostPort(hostIP, strconv.Itoa(outside)), "/"); err != nil || got != "200 outside from "+podIP {
		t.Errorf("outside the mesh (passthrough): %q, %v", got, err)
	}
	if got, err := podGet(pod, net.JoinHostPort(hostIP, strconv.Itoa(excluded)), "/"); err != nil || got != "200 excluded from "+podIP {
		t.Errorf("excluded port: %q, %v", got, err)
	}
	stats, err := podGet(pod, podAdmin, "/stats")
	if err != nil {
		t.Fatal(err)
	}
	listener := `listener="outbound_listener:127.0.0.1:15001"`
	if n := netnstest.Stat(stats, "outrigger_downstream_cx_total", listener); n < 2 {
		t.Errorf("outbound listener took %d connections, want the mesh ones and the passthrough one", n)
	}
	if n := netnstest.Stat(stats, "outrigger_tcp_downstream_cx_total", `stat_prefix="upstream.original-destination"`); n != 1 {
		t.Errorf("passthrough connections %d, want 1 (the excluded port bypasses the sidecar)", n)
	}
	if n := netnstest.Stat(stats, "outrigger_upstream_cx_total", `cluster="original-destination"`); n != 1 {
		t.Errorf("original-destination upstream connections %d, want 1", n)
	}
	if t.Failed() {
		t.Logf("pod sidecar /stats:\n%s", stats)
	}
}
