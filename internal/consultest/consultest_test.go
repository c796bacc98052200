package consultest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

func TestAgentRegisterReadStopRestart(t *testing.T) {
	a := Start(t)
	if a.PID <= 0 {
		t.Fatalf("PID = %d", a.PID)
	}
	if host, _, err := net.SplitHostPort(a.Addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr = %q (%v), want 127.0.0.1:port", a.Addr, err)
	}

	reg := &api.AgentServiceRegistration{Name: "web", ID: "web-1", Port: 8080, Meta: map[string]string{"version": "v1"}}
	if err := a.Client.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register: %v", err)
	}
	entries, _, err := a.Client.Catalog().Service("web", "", nil)
	if err != nil {
		t.Fatalf("catalog: %v", err)
	}
	if len(entries) != 1 || entries[0].ServiceID != "web-1" || entries[0].ServicePort != 8080 || entries[0].ServiceMeta["version"] != "v1" {
		t.Fatalf("catalog web = %+v, want one web-1:8080 with meta version=v1", entries)
	}

	// Restart keeps ports and the agent's persisted services but not Raft
	// state (config entries).
	if _, _, err := a.Client.ConfigEntries().Set(&api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "web", Protocol: "http"}, nil); err != nil {
		t.Fatalf("set service-defaults: %v", err)
	}
	oldPID, oldAddr := a.PID, a.Addr
	a.Restart()
	if a.PID == oldPID || a.Addr != oldAddr {
		t.Fatalf("after Restart PID %d->%d, Addr %s->%s: want a new process on the same address", oldPID, a.PID, oldAddr, a.Addr)
	}
	if leader, err := a.Client.Status().Leader(); err != nil || leader == "" {
		t.Fatalf("leader after restart = %q, %v", leader, err)
	}
	entry, _, err := a.Client.ConfigEntries().Get(api.ServiceDefaults, "web", nil)
	var se api.StatusError
	if !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("service-defaults after restart = %v, %v: want 404 (dev mode loses Raft state)", entry, err)
	}
	// The agent re-syncs its persisted registration into the new catalog.
	deadline := time.Now().Add(10 * time.Second)
	for {
		entries, _, err = a.Client.Catalog().Service("web", "", nil)
		if err == nil && len(entries) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("web not back in the catalog after restart: %v, %v", entries, err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	pid := a.PID
	a.Stop()
	if a.Running() {
		t.Fatal("Running after Stop")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("process %d still exists after Stop: kill(0) = %v", pid, err)
	}
	if _, err := a.Client.Status().Leader(); err == nil {
		t.Fatal("HTTP API still answers after Stop")
	}
	if err := a.Signal(os.Interrupt); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("Signal after Stop = %v, want ErrNotRunning", err)
	}
	a.Stop() // idempotent
}

func TestStopResumesFrozenAgent(t *testing.T) {
	a := Start(t)
	if err := a.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	start := time.Now()
	a.Stop()
	if d := time.Since(start); d >= stopTimeout {
		t.Fatalf("Stop of a frozen agent took %v: it waited for SIGKILL instead of resuming it", d)
	}
}

func TestRepoRoot(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + "/scripts/install-consul.sh"); err != nil {
		t.Fatalf("repoRoot = %s: %v", root, err)
	}
	if _, file, _, _ := runtime.Caller(0); !filepath.IsAbs(file) {
		t.Skip("built with -trimpath: no source location to fall back on")
	}
	wd, _ := os.Getwd()
	t.Chdir(os.TempDir()) // no go.mod above: the source file's location still finds it
	if got, err := repoRoot(); err != nil || got != root {
		t.Fatalf("repoRoot from %s = %q, %v; want %q (from %s)", os.TempDir(), got, err, root, wd)
	}
}

func TestRunReportsEarlyExit(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Consul binary")
	}
	bin := Binary(t)
	cfg := api.DefaultConfig()
	cfg.Address = "127.0.0.1:1"
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := &Agent{t: t, bin: bin, args: []string{"agent", "-no-such-flag"}, logPath: t.TempDir() + "/consul.log", Client: client}
	err = a.run()
	if err == nil || !strings.Contains(err.Error(), "exited before electing a leader") {
		t.Fatalf("run with a bad flag = %v, want an early-exit error", err)
	}
	if a.Running() {
		t.Fatal("Running after an early exit")
	}
	if tail := a.logTail(5); !strings.Contains(tail, "no-such-flag") {
		t.Fatalf("log tail does not show the agent's complaint:\n%s", tail)
	}
}

// failedTB is a test that has failed: it records logs and cleanups.
type failedTB struct {
	*testing.T
	logs     []string
	cleanups []func()
}

func (f *failedTB) Failed() bool      { return true }
func (f *failedTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *failedTB) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *failedTB) Helper()                           {}
func (f *failedTB) Fatalf(format string, args ...any) { f.T.Fatalf(format, args...) }

func TestCleanupStopsAndPrintsLogTailOnFailure(t *testing.T) {
	f := &failedTB{T: t}
	a := Start(f)
	pid := a.PID
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("agent %d survives cleanup: kill(0) = %v", pid, err)
	}
	got := strings.Join(f.logs, "\n")
	if !strings.Contains(got, "last lines of") || !strings.Contains(got, "agent: Caught: signal=interrupt") {
		t.Fatalf("cleanup of a failed test logged:\n%s\nwant the agent log tail", got)
	}
}
