package cpscale

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/bench/targets"
	"github.com/outrigger-mesh/outrigger/internal/consulagent"
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
	bin, err := consulagent.Binary(ctx, root)
	if err != nil {
		return "", fmt.Errorf("cpscale: %w", err)
	}
	return bin, nil
}

// RepoRoot walks up from dir to the directory holding go.mod and
// scripts/install-consul.sh.
func RepoRoot(dir string) (string, error) {
	root, err := consulagent.RepoRoot(dir)
	if err != nil {
		return "", fmt.Errorf("cpscale: %w", err)
	}
	return root, nil
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
	p, err := consulagent.FreePorts()
	if err != nil {
		return nil, fmt.Errorf("cpscale: %w", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.HTTP))
	args := append([]string{
		bin, "agent", "-dev", "-node", "cpbench",
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-data-dir", filepath.Join(dir, fmt.Sprintf("consul-data-%d", attempt)),
		"-log-level", "warn",
	}, p.Flags()...)
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
