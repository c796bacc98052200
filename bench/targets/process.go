// Package targets starts the things the bench sends load at: the backend
// itself (direct), outrigger one and two hops, nginx, HAProxy and Caddy.
// Each runs as a child process with its config in a temporary directory and
// every socket on 127.0.0.1; never as a system service.
package targets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrExited means a child process ended before it was ready.
var ErrExited = errors.New("targets: process exited")

// Process is one child process in its own process group, so stopping it
// also stops the workers it forked (nginx's master and worker).
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	logFile *os.File
	done    chan struct{}
	waitErr error
	once    sync.Once
}

// StartProcess runs argv with env added to a minimal environment; stdout and
// stderr go to logPath.
func StartProcess(name string, argv, env []string, logPath string) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("targets: empty command")
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("targets: %s log: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(baseEnv(), env...)
	// Pdeathsig stops a peer if the bench dies. Linux sends it when the
	// *thread* that forked the child exits, so nothing in the bench may
	// let a locked OS thread die (see loadgen's pacer).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("targets: start %s (%s): %w", name, argv[0], err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, logFile: f, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// baseEnv keeps PATH and HOME only: peers must not pick up the caller's
// GOMAXPROCS, GODEBUG or proxy settings by accident.
func baseEnv() []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// PID is the process id of the group leader.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// LogTail is the end of the process's output, for error messages.
func (p *Process) LogTail() string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return ""
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 1500 {
		s = "..." + s[len(s)-1500:]
	}
	return s
}

// Stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *Process) Stop(grace time.Duration) error {
	var err error
	p.once.Do(func() {
		pgid := p.cmd.Process.Pid
		select {
		case <-p.done:
			return
		default:
		}
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-p.done:
		case <-t.C:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.done
			err = fmt.Errorf("targets: %s did not stop within %v; killed", p.Name, grace)
		}
		// Workers left behind by a master that died first.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	})
	return err
}

// WaitReady polls until every addr accepts a TCP connection, the process
// exits (an error with its log tail) or ctx ends.
func WaitReady(ctx context.Context, p *Process, addrs []string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	pending := append([]string(nil), addrs...)
	for {
		for len(pending) > 0 {
			c, err := net.DialTimeout("tcp", pending[0], 200*time.Millisecond)
			if err != nil {
				break
			}
			c.Close()
			pending = pending[1:]
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-p.Done():
			return fmt.Errorf("%w: %s before listening on %s: %v\n%s", ErrExited, p.Name, pending[0], p.waitErr, p.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("targets: %s not listening on %s after %v: %w\n%s", p.Name, pending[0], timeout, ctx.Err(), p.LogTail())
		case <-tick.C:
		}
	}
}

// FreePorts reserves n loopback ports by binding port 0, then releases
// them for a peer to bind. Peers take a port number in their config, so a
// small window remains in which another program could take one; the
// readiness check then fails loudly rather than measuring the wrong thing.
func FreePorts(n int) ([]int, error) {
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("targets: reserve port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// LookBinary finds a peer binary on PATH or in the bench's tool cache
// (where install-peers.sh puts go-installed tools).
func LookBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join(ToolCache(), name)
	if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
		return p, nil
	}
	return "", fmt.Errorf("targets: %s not found on PATH or in %s (run bench/install-peers.sh)", name, ToolCache())
}

// ToolCache is where install-peers.sh installs go-built tools.
func ToolCache() string {
	if d := os.Getenv("OUTRIGGER_BIN_CACHE"); d != "" {
		return d
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "outrigger", "bin")
}
