package cpscale

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/bench/targets"
)

const (
	// consulLeaderTimeout bounds the wait for a dev agent to elect itself.
	consulLeaderTimeout = 30 * time.Second
	// consulStopGrace is how long a stopping agent gets before SIGKILL.
	consulStopGrace = 10 * time.Second
	// startAttempts covers the race between probing free ports and a child
	// binding them.
	startAttempts = 3
)

// Consul is a Consul dev agent run as a child process, every port moved to
// a free loopback port (the same setup as internal/consultest, without
// testing.TB).
type Consul struct {
	// Addr is the HTTP API, "127.0.0.1:port".
	Addr   string
	Client *api.Client
	proc   *targets.Process
}

// ConsulBinary runs scripts/install-consul.sh under root (it builds Consul
// v1.16.3 once and caches it) and returns the path it prints last.
func ConsulBinary(ctx context.Context, root string) (string, error) {
	return runInstallScript(ctx, filepath.Join(root, "scripts", "install-consul.sh"))
}

// runInstallScript runs script and returns the last non-empty line of its
// standard output, which must name an existing file.
func runInstallScript(ctx context.Context, script string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, script)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("cpscale: %s: %w\n%s", script, err, strings.TrimSpace(stderr.String()))
	}
	var last string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	if last == "" {
		return "", fmt.Errorf("cpscale: %s printed no binary path\n%s", script, strings.TrimSpace(stderr.String()))
	}
	if _, err := os.Stat(last); err != nil {
		return "", fmt.Errorf("cpscale: %s printed %q: %w", script, last, err)
	}
	return last, nil
}

// RepoRoot walks up from dir to the directory holding go.mod and
// scripts/install-consul.sh.
func RepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("cpscale: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		_, err1 := os.Stat(filepath.Join(d, "go.mod"))
		_, err2 := os.Stat(filepath.Join(d, "scripts", "install-consul.sh"))
		if err1 == nil && err2 == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("cpscale: no repository root (go.mod with scripts/install-consul.sh) above %s", dir)
		}
	}
}

// StartConsul runs a dev agent from bin with its data and log in dir and
// waits until it has elected itself leader.
func StartConsul(ctx context.Context, bin, dir string) (*Consul, error) {
	var lastErr error
	for attempt := range startAttempts {
		c, err := startConsulOnce(ctx, bin, dir, attempt)
		if err == nil {
			return c, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func startConsulOnce(ctx context.Context, bin, dir string, attempt int) (*Consul, error) {
	p, err := consulPorts()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p[0]))
	args := []string{
		bin, "agent", "-dev", "-node", "cpbench",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-data-dir", filepath.Join(dir, fmt.Sprintf("consul-data-%d", attempt)),
		"-log-level", "warn",
		"-http-port", strconv.Itoa(p[0]),
		"-https-port", "-1",
		"-grpc-port", strconv.Itoa(p[1]),
		"-grpc-tls-port", strconv.Itoa(p[2]),
		"-server-port", strconv.Itoa(p[3]),
		"-serf-lan-port", strconv.Itoa(p[4]),
		"-serf-wan-port", strconv.Itoa(p[5]),
		"-dns-port", strconv.Itoa(p[6]),
	}
	proc, err := targets.StartProcess("consul", args, nil, filepath.Join(dir, fmt.Sprintf("consul-%d.log", attempt)))
	if err != nil {
		return nil, fmt.Errorf("cpscale: %w", err)
	}
	cfg := api.DefaultConfig()
	cfg.Address, cfg.Scheme, cfg.Token, cfg.TokenFile = addr, "http", "", ""
	cfg.Transport.MaxIdleConnsPerHost = 64
	client, err := api.NewClient(cfg)
	if err != nil {
		_ = proc.Stop(consulStopGrace)
		return nil, fmt.Errorf("cpscale: consul client for %s: %w", addr, err)
	}
	c := &Consul{Addr: addr, Client: client, proc: proc}
	if err := c.waitLeader(ctx); err != nil {
		_ = proc.Stop(consulStopGrace)
		return nil, err
	}
	return c, nil
}

// waitLeader polls until the agent reports a leader.
func (c *Consul) waitLeader(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, consulLeaderTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		leader, err := c.Client.Status().Leader()
		if err == nil && leader != "" {
			return nil
		}
		select {
		case <-c.proc.Done():
			return fmt.Errorf("cpscale: consul exited before electing a leader:\n%s", c.proc.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("cpscale: consul at %s elected no leader: %w (last error: %v)\n%s", c.Addr, ctx.Err(), err, c.proc.LogTail())
		case <-tick.C:
		}
	}
}

// PID is the agent's process id.
func (c *Consul) PID() int { return c.proc.PID() }

// Stop ends the agent (SIGTERM, then SIGKILL after a grace period).
func (c *Consul) Stop() error {
	if c == nil {
		return nil
	}
	return c.proc.Stop(consulStopGrace)
}

// consulPorts picks the agent's seven ports: http, grpc, grpc-tls, server,
// serf-lan, serf-wan, dns. Serf and DNS also bind the UDP port of the same
// number; every probe stays open until all are picked so none coincide.
func consulPorts() ([7]int, error) {
	var ports [7]int
	var closers []func() error
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	for i := range ports {
		udp := i >= 4
		found := false
		for range 50 {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return ports, fmt.Errorf("cpscale: probe a free port: %w", err)
			}
			closers = append(closers, l.Close)
			port := l.Addr().(*net.TCPAddr).Port
			if udp {
				pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
				if err != nil {
					continue
				}
				closers = append(closers, pc.Close)
			}
			ports[i], found = port, true
			break
		}
		if !found {
			return ports, errors.New("cpscale: found no port free for both TCP and UDP in 50 tries")
		}
	}
	return ports, nil
}
