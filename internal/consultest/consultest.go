// Package consultest runs a real Consul agent (v1.16.3, dev mode) on free
// loopback ports for integration tests. The binary comes from
// scripts/install-consul.sh, which builds it once and caches it.
package consultest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
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
		p, err := freePorts()
		if err != nil {
			t.Fatalf("consultest: %v", err)
		}
		a.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(p.http))
		a.args = []string{
			"agent", "-dev", "-node", "consultest",
			"-bind", "127.0.0.1", "-client", "127.0.0.1",
			"-data-dir", dataDir,
			"-http-port", strconv.Itoa(p.http),
			"-https-port", "-1",
			"-grpc-port", strconv.Itoa(p.grpc),
			"-grpc-tls-port", strconv.Itoa(p.grpcTLS),
			"-server-port", strconv.Itoa(p.server),
			"-serf-lan-port", strconv.Itoa(p.serfLAN),
			"-serf-wan-port", strconv.Itoa(p.serfWAN),
			"-dns-port", strconv.Itoa(p.dns),
		}
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
	return runInstallScript(filepath.Join(root, "scripts", "install-consul.sh"))
}

// runInstallScript runs script and returns the last line of its standard
// output, which must name an existing file.
func runInstallScript(script string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(script)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: %w\n%s", script, err, stderr.String())
	}
	var last string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	if last == "" {
		return "", fmt.Errorf("%s printed no binary path\n%s", script, stderr.String())
	}
	if _, err := os.Stat(last); err != nil {
		return "", fmt.Errorf("%s printed %q: %w", script, last, err)
	}
	return last, nil
}

// repoRoot walks up from the working directory (a test runs in its package
// directory) to go.mod, falling back to this source file's location.
func repoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "scripts", "install-consul.sh")); err == nil {
				if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
					return d, nil
				}
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", errors.New("cannot find the repository root (go.mod with scripts/install-consul.sh) above the working directory")
}

// ports are the agent's listening ports.
type ports struct {
	http, grpc, grpcTLS, server, serfLAN, serfWAN, dns int
}

// freePorts picks seven distinct loopback ports that are free now; serf and
// DNS also need the UDP port of the same number. All probes stay open until
// every port is picked so no two coincide. Ports come from below the
// kernel's ephemeral range when it leaves room: there, neither outgoing
// connections nor other tests' ":0" listeners take a port while the agent
// is stopped for a Restart.
func freePorts() (ports, error) {
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	lo, hi := portRange()
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
	var p ports
	for _, f := range []struct {
		dst *int
		udp bool
	}{
		{&p.http, false}, {&p.grpc, false}, {&p.grpcTLS, false}, {&p.server, false},
		{&p.serfLAN, true}, {&p.serfWAN, true}, {&p.dns, true},
	} {
		port, err := pick(f.udp)
		if err != nil {
			return ports{}, err
		}
		*f.dst = port
	}
	return p, nil
}

// portRange is [lo, hi) below the ephemeral range of
// /proc/sys/net/ipv4/ip_local_port_range, or an empty range (use ":0")
// when that cannot be read or leaves too little room.
func portRange() (lo, hi int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	eph, err := strconv.Atoi(f[0])
	if err != nil || eph < lowPortFloor+1000 {
		return 0, 0
	}
	return lowPortFloor, eph
}

// lowPortFloor keeps clear of the well-known and commonly configured ports.
const lowPortFloor = 10000

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
