// Package consulagent holds what starting a local Consul dev agent needs,
// shared by the test helper (internal/consultest) and the control plane
// scale bench (bench/cpscale): the binary from scripts/install-consul.sh,
// the repository root that holds it, and seven free loopback ports turned
// into the agent's flags.
package consulagent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/outrigger-mesh/outrigger/internal/freeport"
)

// RepoRoot walks up from dir to the directory holding go.mod and
// scripts/install-consul.sh.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		_, err1 := os.Stat(filepath.Join(d, "go.mod"))
		_, err2 := os.Stat(filepath.Join(d, "scripts", "install-consul.sh"))
		if err1 == nil && err2 == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no repository root (go.mod with scripts/install-consul.sh) above %s", dir)
		}
	}
}

// Binary runs scripts/install-consul.sh under root (it builds Consul v1.16.3
// once and caches it) and returns the path it prints last.
func Binary(ctx context.Context, root string) (string, error) {
	return InstallScript(ctx, filepath.Join(root, "scripts", "install-consul.sh"))
}

// InstallScript runs script and returns the last non-empty line of its
// standard output, which must name an existing file.
func InstallScript(ctx context.Context, script string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, script)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", script, err, strings.TrimSpace(stderr.String()))
	}
	var last string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	if last == "" {
		return "", fmt.Errorf("%s printed no binary path\n%s", script, strings.TrimSpace(stderr.String()))
	}
	if _, err := os.Stat(last); err != nil {
		return "", fmt.Errorf("%s printed %q: %w", script, last, err)
	}
	return last, nil
}

// Ports are a dev agent's listening ports.
type Ports struct {
	HTTP, GRPC, GRPCTLS, Server, SerfLAN, SerfWAN, DNS int
}

// Flags are the agent flags that put it on p, HTTPS off.
func (p Ports) Flags() []string {
	return []string{
		"-http-port", strconv.Itoa(p.HTTP),
		"-https-port", "-1",
		"-grpc-port", strconv.Itoa(p.GRPC),
		"-grpc-tls-port", strconv.Itoa(p.GRPCTLS),
		"-server-port", strconv.Itoa(p.Server),
		"-serf-lan-port", strconv.Itoa(p.SerfLAN),
		"-serf-wan-port", strconv.Itoa(p.SerfWAN),
		"-dns-port", strconv.Itoa(p.DNS),
	}
}

// FreePorts picks seven distinct loopback ports that are free now; serf and
// DNS also need the UDP port of the same number. All probes stay open until
// every port is picked so no two coincide. Ports come from below the
// kernel's ephemeral range when it leaves room: there, neither outgoing
// connections nor other ":0" listeners take a port while an agent is
// stopped for a restart.
func FreePorts() (Ports, error) {
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	lo, hi := freeport.Range()
	probe := func(port int, udp bool) (int, bool) {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return 0, false
		}
		closers = append(closers, func() { l.Close() })
		port = l.Addr().(*net.TCPAddr).Port
		if udp {
			pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				return 0, false // the UDP twin is taken
			}
			closers = append(closers, func() { pc.Close() })
		}
		return port, true
	}
	pick := func(udp bool) (int, error) {
		for range 100 {
			port := 0 // the kernel's choice, in the ephemeral range
			if hi > lo {
				port = lo + rand.IntN(hi-lo)
			}
			if p, ok := probe(port, udp); ok {
				return p, nil
			}
		}
		return 0, fmt.Errorf("found no free loopback port (TCP and UDP: %v) in 100 tries", udp)
	}
	var p Ports
	for _, f := range []struct {
		dst *int
		udp bool
	}{
		{&p.HTTP, false}, {&p.GRPC, false}, {&p.GRPCTLS, false}, {&p.Server, false},
		{&p.SerfLAN, true}, {&p.SerfWAN, true}, {&p.DNS, true},
	} {
		port, err := pick(f.udp)
		if err != nil {
			return Ports{}, err
		}
		*f.dst = port
	}
	return p, nil
}
