// Package consultest runs a real Consul agent (v1.16.3, dev mode) on free
// loopback ports for integration tests. The binary comes from
// scripts/install-consul.sh, which builds it once and caches it.
package consultest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/internal/consulagent"
)

const (
	// leaderTimeout bounds the wait for a started agent to elect itself.
	leaderTimeout = 30 * time.Second
	// stopTimeout is how long Stop waits after SIGINT before SIGKILL.
	stopTimeout = 10 * time.Second
	// startAttempts covers the race between probing a free port and the
	// agent binding it.
	startAttempts = 3
	// logTailLines are printed from the agent's log when a test fails (its
	// shutdown alone takes ~40 lines).
	logTailLines = 100
)

// Agent is one running Consul dev agent owned by a test.
type Agent struct {
	// Addr is the HTTP API address, "127.0.0.1:port".
	Addr string
	// Client talks to the agent's HTTP API.
	Client *api.Client
	// PID is the agent process's id (it changes on Restart).
	PID int

	t       testing.TB
	bin     string
	args    []string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has been waited for
}

// Start runs a dev agent on free loopback ports and waits until it has
// elected itself leader. The agent is stopped at the test's cleanup, and its
// log tail is printed when the test failed. In -short mode the test is
// skipped; if the binary cannot be built the test fails with the script's
// error.
func Start(t testing.TB) *Agent {
	t.Helper()
	if testing.Short() {
		t.Skip("consultest: needs a real Consul agent; skipped in -short mode")
	}
	bin := Binary(t)
	dir := t.TempDir() // created before our cleanup is registered, so removed after it
	a := &Agent{t: t, bin: bin, logPath: filepath.Join(dir, "consul.log")}
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			t.Logf("consultest: last lines of %s:\n%s", a.logPath, a.logTail(logTailLines))
		}
	})
	dataDir := filepath.Join(dir, "data")
	var lastErr error
	for range startAttempts {
		p, err := consulagent.FreePorts()
		if err != nil {
			t.Fatalf("consultest: %v", err)
		}
		a.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.HTTP))
		a.args = append([]string{
			"agent", "-dev", "-node", "consultest",
			"-bind", "127.0.0.1", "-client", "127.0.0.1",
			"-data-dir", dataDir,
		}, p.Flags()...)
		cfg := api.DefaultConfig()
		cfg.Address, cfg.Scheme, cfg.Token, cfg.TokenFile = a.Addr, "http", "", ""
		client, err := api.NewClient(cfg)
		if err != nil {
			t.Fatalf("consultest: client for %s: %v", a.Addr, err)
		}
		a.Client = client
		if lastErr = a.run(); lastErr == nil {
			return a
		}
		// A port probed free may have been taken before the agent bound it.
		t.Logf("consultest: start attempt failed, retrying on new ports: %v", lastErr)
	}
	t.Fatalf("consultest: agent did not start after %d attempts: %v\nlog tail:\n%s", startAttempts, lastErr, a.logTail(logTailLines))
	return nil
}

// run starts the process with a.args and waits for a leader. On failure the
// process is stopped and the error returned.
func (a *Agent) run() error {
	logFile, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open agent log: %w", err)
	}
	fmt.Fprintf(logFile, "==> consultest: %s %s\n", a.bin, strings.Join(a.args, " "))
	cmd := exec.Command(a.bin, a.args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", a.bin, err)
	}
	a.cmd, a.PID = cmd, cmd.Process.Pid
	exited := make(chan struct{})
	a.exited = exited
	go func() {
		_ = cmd.Wait() // dev mode exits 1 on SIGINT: not an error here
		logFile.Close()
		close(exited)
	}()

	deadline := time.Now().Add(leaderTimeout)
	for {
		leader, err := a.Client.Status().Leader()
		if err == nil && leader != "" {
			return nil
		}
		select {
		case <-exited:
			a.cmd = nil
			return fmt.Errorf("agent (pid %d) exited before electing a leader: %s", a.PID, cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			a.Stop()
			return fmt.Errorf("agent (pid %d) elected no leader within %v (last error: %v)", a.PID, leaderTimeout, err)
		}
	}
}

// Stop interrupts the agent, waits for it to exit and kills it if it has not
// after a deadline. It is a no-op when the agent is not running.
func (a *Agent) Stop() {
	if a.cmd == nil {
		return
	}
	resume(a.cmd.Process) // in case a test froze it
	_ = a.cmd.Process.Signal(os.Interrupt)
	select {
	case <-a.exited:
	case <-time.After(stopTimeout):
		a.t.Logf("consultest: agent (pid %d) ignored SIGINT for %v; killing it", a.PID, stopTimeout)
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
	a.cmd = nil
}

// Restart stops the agent and starts it again on the same ports and data
// directory. A dev agent keeps its Raft state in memory, so config entries,
// KV and sessions are lost, every Consul index starts again low and the
// Connect CA is set up anew (a new root, normally a new trust domain).
// Services and checks registered through the agent API are persisted in the
// data directory and come back by themselves (TTL checks start critical
// again). If another process took one of the ports meanwhile, the restart
// is retried briefly, then the test fails.
func (a *Agent) Restart() {
	a.t.Helper()
	a.Stop()
	var err error
	for attempt := range startAttempts {
		if err = a.run(); err == nil {
			return
		}
		// Another process may hold one of the ports for a moment (an
		// outgoing connection's local port, say); the agent must come back
		// on the same ports, so wait and try again.
		a.t.Logf("consultest: restart attempt %d on the same ports failed: %v", attempt+1, err)
		time.Sleep(time.Duration(attempt+1) * 500 * time.Millisecond)
	}
	a.t.Fatalf("consultest: restart on %s: %v\nlog tail:\n%s", a.Addr, err, a.logTail(logTailLines))
}

// Running reports whether the agent process is up.
func (a *Agent) Running() bool { return a.cmd != nil }

// logTail returns the last n lines of the agent's log.
func (a *Agent) logTail(n int) string {
	b, err := os.ReadFile(a.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// Binary returns the path of the Consul binary, running
// scripts/install-consul.sh once per test process (it builds Consul the first
// time on a machine, ~5 minutes, and is instant afterwards). It fails the
// test with the script's output when the binary cannot be had.
func Binary(t testing.TB) string {
	t.Helper()
	binaryOnce.Do(func() { binaryPath, binaryErr = installConsul() })
	if binaryErr != nil {
		t.Fatalf("consultest: %v", binaryErr)
	}
	return binaryPath
}

func installConsul() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return consulagent.Binary(context.Background(), root)
}

// repoRoot finds the repository from the working directory (a test runs in
// its package directory), falling back to this source file's location.
func repoRoot() (string, error) {
	root, err := consulagent.RepoRoot(".")
	if err == nil {
		return root, nil
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		if root, err2 := consulagent.RepoRoot(filepath.Dir(file)); err2 == nil {
			return root, nil
		}
	}
	return "", err
}

// ErrNotRunning is returned by Signal when the agent has been stopped.
var ErrNotRunning = errors.New("consultest: agent not running")

// Signal sends sig to the agent process, e.g. SIGSTOP to freeze it so that
// connections are accepted by the kernel but never answered. Stop resumes a
// frozen agent before interrupting it.
func (a *Agent) Signal(sig os.Signal) error {
	if a.cmd == nil {
		return ErrNotRunning
	}
	return a.cmd.Process.Signal(sig)
}
