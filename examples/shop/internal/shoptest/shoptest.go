// Package shoptest starts the real components the shop's tests need on
// loopback: a Redis server and an embedded NATS server with JetStream.
package shoptest

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/outrigger-mesh/outrigger/internal/freeport"
)

// FreeAddr returns a loopback address with a port that was free a moment
// ago, from below the ephemeral range (internal/freeport).
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatalf("probe a free port: %v", err)
	}
	return addr
}

// Redis is a redis-server process run for one test.
type Redis struct {
	Addr   string
	cmd    *exec.Cmd
	exited chan struct{}
	out    *bytes.Buffer
}

// StartRedis runs redis-server on a free loopback port, without
// persistence, until the test ends (or Stop). The test is skipped when
// redis-server is not installed (`make test-deps` installs it).
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (Debian: apt-get install redis-server); skipping")
	}
	addr := FreeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	r := &Redis{Addr: addr, exited: make(chan struct{}), out: &bytes.Buffer{}}
	r.cmd = exec.Command(bin, "--save", "", "--appendonly", "no", "--bind", "127.0.0.1", "--port", port, "--dir", t.TempDir())
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	go func() { _ = r.cmd.Wait(); close(r.exited) }()
	t.Cleanup(r.Stop)
	deadline := time.Now().Add(10 * time.Second)
	for !r.ping() {
		select {
		case <-r.exited:
			t.Fatalf("redis-server exited:\n%s", r.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server not answering on %s:\n%s", addr, r.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
}

func (r *Redis) ping() bool {
	c, err := net.DialTimeout("tcp", r.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.WriteString(c, "PING\r\n")
	b := make([]byte, 7)
	_, err = io.ReadFull(c, b)
	return err == nil && string(b) == "+PONG\r\n"
}

// Stop ends the server and waits for it; calling it again does nothing.
func (r *Redis) Stop() {
	select {
	case <-r.exited:
		return
	default:
	}
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.exited:
	case <-time.After(5 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
}

// StartNATS runs an embedded NATS server with JetStream on a random
// loopback port, storing in a temporary directory, until the test ends.
func StartNATS(t testing.TB) *server.Server {
	t.Helper()
	return StartNATSOn(t, server.RANDOM_PORT)
}

// StartNATSOn is StartNATS on a given loopback port.
func StartNATSOn(t testing.TB, port int) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      port,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoSigs:    true,
		NoLog:     true,
	})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	s.Start()
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatalf("nats server not ready on %s", s.ClientURL())
	}
	return s
}

// Eventually polls cond every 20 ms until it is true or d has passed.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
