// Package netnstest drives Linux network namespaces for tests: commands
// and sockets inside a namespace the test made with `ip netns add`. Tests
// that use it need root; they say so and skip otherwise.
package netnstest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// NS is a named network namespace (/var/run/netns/<name>).
type NS string

// IP runs `ip args...` and fails the test on an error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Exec runs a command inside n and fails the test on an error.
func (n NS) Exec(t testing.TB, args ...string) {
	t.Helper()
	IP(t, append([]string{"netns", "exec", string(n)}, args...)...)
}

// Run runs a command inside n with stdin and returns its combined output
// (the shape of redirect.Runner).
func (n NS) Run(ctx context.Context, stdin, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", string(n), name}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd.CombinedOutput()
}

// Do runs f on a thread inside n, so the sockets f makes belong to it. The
// thread is never unlocked, so the runtime discards it afterwards.
func (n NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+string(n), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// ServeLine listens on addr inside n and answers each connection with
// line; it stops at the test's end.
func (n NS) ServeLine(t testing.TB, addr, line string) {
	t.Helper()
	var lis net.Listener
	if err := n.Do(func() (err error) {
		lis, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lis.Close() })
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, line)
			c.Close()
		}
	}()
}

// Fetch dials addr from inside n and reads everything it sends.
func (n NS) Fetch(addr string) (string, error) {
	var out string
	err := n.Do(func() error {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		out = string(b)
		return err
	})
	return out, err
}

// Get sends one HTTP/1.1 GET for path to addr (Host: host) from inside n,
// dialled on the namespace's thread (an http.Client would dial on
// another), and returns the status and body.
func (n NS) Get(addr, host, path string) (int, string, error) {
	var status int
	var body string
	err := n.Do(func() error {
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		status, body = resp.StatusCode, string(b)
		return err
	})
	return status, body, err
}
