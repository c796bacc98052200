package netnstest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
	"github.com/outrigger-mesh/outrigger/proxy/server"
)

// A child is this test binary run again inside a namespace (a process
// belongs to one network namespace, and the capture rules tell the proxy
// by its user): the test's TestMain sees the environment variable the
// parent set and runs the child instead of the tests. The child prints
// "ready" once serving and stops when its stdin closes.

// StartChild runs the child inside n with env ("NAME=value") added, waits
// up to wait for its "ready" and stops it at the test's end.
func (n NS) StartChild(t testing.TB, env string, stderr io.Writer, wait time.Duration) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", string(n), self, "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if strings.TrimSpace(s) != "ready" {
			t.Fatalf("child in %s: %q", n, s)
		}
	case <-time.After(wait):
		t.Fatalf("child in %s not ready within %v", n, wait)
	}
}

// Child is the child's side: it drops to uid (capture rules exempt that
// user), calls start, prints "ready", waits for its stdin to close, then
// calls the stop start returned (nil: nothing to stop). It returns the
// exit code.
func Child(uid int, start func() (stop func() error, err error)) int {
	if err := syscall.Setgid(uid); err != nil {
		fmt.Println("setgid:", err)
		return 1
	}
	if err := syscall.Setuid(uid); err != nil {
		fmt.Println("setuid:", err)
		return 1
	}
	stop, err := start()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	if stop != nil {
		if err := stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop:", err)
			return 1
		}
	}
	return 0
}

// ServeOutrigger is a Child that runs a real outrigger from a bootstrap
// (YAML) and is ready once the proxy is (its first configuration in
// force, within readyIn).
func ServeOutrigger(uid int, yaml string, readyIn time.Duration, log hclog.Logger) int {
	return Child(uid, func() (func() error, error) {
		b, err := bootstrap.Load("", yaml)
		if err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
		srv, err := server.New(server.Options{Bootstrap: b, DrainTimeout: time.Second, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		for deadline := time.Now().Add(readyIn); !srv.Ready(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				cancel()
				return nil, fmt.Errorf("not ready in %v", readyIn)
			}
		}
		return func() error { cancel(); return <-done }, nil
	})
}

// Stat reads one sample of the proxy's /stats text page ("name{labels}:
// value") whose labels contain labels; -1 when there is none.
func Stat(page, name, labels string) int {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\{[^}]*` + regexp.QuoteMeta(labels) + `[^}]*\}: (\d+)$`)
	m := re.FindStringSubmatch(page)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
