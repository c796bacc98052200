//go:build linux

package rawio

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pair returns a connected pair of TCP sockets on loopback: ours (with its
// raw I/O) and the peer.
func pair(t *testing.T) (*net.TCPConn, *IO, *net.TCPConn) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	done := make(chan net.Conn, 1)
	go func() {
		c, err := lis.Accept()
		if err != nil {
			done <- nil
			return
		}
		done <- c
	}()
	c, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer := <-done
	if peer == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	r := For(c)
	if r == nil {
		t.Fatal("no raw I/O for a *net.TCPConn")
	}
	return c.(*net.TCPConn), r, peer.(*net.TCPConn)
}

// TestForRefusesABlockingSocket: a raw system call on a blocking
// descriptor would hold the P while it sleeps, freezing the process.
func TestForRefusesABlockingSocket(t *testing.T) {
	c, _, _ := pair(t)
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	setBlocking := func(b bool) {
		if err := rc.Control(func(fd uintptr) {
			if err := syscall.SetNonblock(int(fd), !b); err != nil {
				t.Error(err)
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	setBlocking(true)
	defer setBlocking(false)
	if For(c) != nil {
		t.Fatal("raw I/O for a blocking socket")
	}
}

func TestForNonTCP(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if For(a) != nil {
		t.Fatal("raw I/O for a net.Pipe")
	}
}

func TestReadWriteBothWays(t *testing.T) {
	_, r, peer := pair(t)
	if n, err := r.Write([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	buf := make([]byte, 16)
	if n, err := io.ReadFull(peer, buf[:5]); n != 5 || err != nil || string(buf[:5]) != "hello" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
	if _, err := peer.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	if n, err := io.ReadFull(r, buf[:5]); n != 5 || err != nil || string(buf[:5]) != "world" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}
	if n, err := r.Write(nil); n != 0 || err != nil {
		t.Fatalf("empty write: %d, %v", n, err)
	}
}

// TestLargeWriteWaitsForTheReader: a write larger than the socket buffers
// waits (EAGAIN, then the poller) until the peer reads, and every byte
// arrives in order.
func TestLargeWriteWaitsForTheReader(t *testing.T) {
	_, r, peer := pair(t)
	want := make([]byte, 8<<20) // more than maxIO and than the socket buffers
	for i := range want {
		want[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // the writer fills the buffers first
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(want))))
		got <- b
	}()
	if n, err := r.Write(want); n != len(want) || err != nil {
		t.Fatalf("write: %d of %d, %v", n, len(want), err)
	}
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("the peer read %d bytes, not what was written", len(b))
	}
}

func TestEOF(t *testing.T) {
	_, r, peer := pair(t)
	peer.Write([]byte("x"))
	peer.CloseWrite()
	buf := make([]byte, 4)
	if n, err := r.Read(buf); n != 1 || err != nil {
		t.Fatalf("read: %d, %v", n, err)
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("after the peer's FIN: %d, %v, want io.EOF", n, err)
	}
}

// TestDeadline: deadlines work as with net.Conn, and the error says so the
// same ways.
func TestDeadline(t *testing.T) {
	c, r, _ := pair(t)
	c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	_, err := r.Read(make([]byte, 4))
	var ne net.Error
	var oe *net.OpError
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() || !errors.As(err, &oe) || oe.Op != "read" ||
		oe.Err != os.ErrDeadlineExceeded || strings.Contains(err.Error(), "raw-") {
		t.Fatalf("read past the deadline: %v (%T), want net's own error", err, err)
	}
	c.SetReadDeadline(time.Time{})
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := r.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past the deadline: %v", err)
	}
}

func TestClosed(t *testing.T) {
	c, r, _ := pair(t)
	c.Close()
	if _, err := r.Read(make([]byte, 4)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	if _, err := r.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}

// TestCloseWakesAReader: Close from another goroutine ends a read that is
// waiting, as with net.Conn.
func TestCloseWakesAReader(t *testing.T) {
	c, r, _ := pair(t)
	errc := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 4))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("waiting read after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a waiting read")
	}
}

// TestReset: a reset by the peer is the same *os.SyscallError as net's.
func TestReset(t *testing.T) {
	_, r, peer := pair(t)
	peer.SetLinger(0)
	peer.Close() // RST
	buf := make([]byte, 4)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = r.Write(bytes.Repeat([]byte("x"), 1024))
		if err == nil {
			_, err = r.Read(buf)
		}
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("after a reset: %v, want ECONNRESET or EPIPE", err)
	}
	var se *os.SyscallError
	if !errors.As(err, &se) {
		t.Fatalf("error %T is not an *os.SyscallError", err)
	}
}

// TestNoAllocations: a read and a write allocate nothing (the proxy makes
// several per request).
func TestNoAllocations(t *testing.T) {
	_, r, peer := pair(t)
	msg := []byte("ping")
	buf := make([]byte, 16)
	pbuf := make([]byte, 16)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := r.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(peer, pbuf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
		if _, err := peer.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(r, buf[:len(msg)]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per write and read, want 0", allocs)
	}
}
