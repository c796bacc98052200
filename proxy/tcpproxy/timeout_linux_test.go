package tcpproxy

import (
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// stuckAddr is a loopback address whose accept queue is full: the kernel
// drops further SYNs, so a connect hangs until the caller's timeout.
func stuckAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr // the queue is full: connects hang now
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	t.Skip("could not fill a listen queue on this kernel")
	return ""
}

func TestConnectTimeout(t *testing.T) {
	checkNoGoroutineLeak(t)
	cfg := static("stuck", stuckAddr(t))
	cfg.ConnectTimeout = 150 * time.Millisecond
	m := clusters(t, cfg)
	p := newProxy(t, Config{Cluster: "stuck"}, Deps{Clusters: m})
	f := startFront(t, p, nil)
	c := f.dial(t)
	start := time.Now()
	if n, err := c.Read(make([]byte, 1)); n != 0 || (err != io.EOF && !isReset(err)) {
		t.Fatalf("read = %d, %v; want the downstream closed", n, err)
	}
	if took := time.Since(start); took < 100*time.Millisecond {
		t.Errorf("closed after %s: the connect did not wait for its timeout", took)
	}
	f.waitServed(t, 1)
	st := m.Get("stuck").Stats()
	if st.CxConnectFail.Load() != 1 || st.CxConnectTimeout.Load() != 1 {
		t.Errorf("cx_connect_fail = %d, cx_connect_timeout = %d; want 1, 1", st.CxConnectFail.Load(), st.CxConnectTimeout.Load())
	}
}
