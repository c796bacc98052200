package coalesce

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tcpConn is a real loopback connection as a Writer's Conn, counting the
// system-call writes.
type tcpConn struct {
	net.Conn
	writes atomic.Int64
	failed atomic.Int64
}

func (c *tcpConn) WriteRaw(p []byte) (int, error) { c.writes.Add(1); return c.Conn.Write(p) }
func (c *tcpConn) Fail()                          { c.failed.Add(1); _ = c.Conn.Close() }
func (c *tcpConn) SetSocketWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(t)
}

func pipe(t *testing.T) (*tcpConn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); peer.Close() })
	return &tcpConn{Conn: c}, peer
}

func TestWritesArriveInOrder(t *testing.T) {
	c, peer := pipe(t)
	w := NewWriter(c)
	rng := rand.New(rand.NewPCG(1, 2))
	var want bytes.Buffer
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	for i := range 2000 {
		// Mostly frame-sized writes, some past the direct-write size and
		// past the buffer bound.
		n := 1 + rng.IntN(300)
		switch i % 97 {
		case 0:
			n = direct + rng.IntN(direct)
		case 1:
			n = maxBuffered + rng.IntN(4096)
		}
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		want.Write(p)
		if m, err := w.Write(p); err != nil || m != n {
			t.Fatalf("write %d: %d, %v", i, m, err)
		}
		if i%10 == 0 {
			runtime.Gosched()
		}
	}
	w.Close()
	_ = c.Conn.(*net.TCPConn).CloseWrite()
	b := <-got
	if !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("peer got %d bytes, want %d (or different content)", len(b), want.Len())
	}
}

// The point of the package: writes made back to back leave in one
// system call once the writer blocks.
func TestBackToBackWritesAreOneSystemCall(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	c, peer := pipe(t)
	w := NewWriter(c)
	buf := make([]byte, 64)
	for round := range 20 {
		for _, frame := range []string{"headers", "data", "trailers"} {
			if _, err := w.Write([]byte(frame)); err != nil {
				t.Fatal(err)
			}
		}
		// Blocking on the peer's bytes lets the flusher run.
		if _, err := io.ReadFull(peer, buf[:len("headersdatatrailers")]); err != nil {
			t.Fatal(err)
		}
		if got := string(buf[:len("headersdatatrailers")]); got != "headersdatatrailers" {
			t.Fatalf("round %d: peer read %q", round, got)
		}
	}
	if n := c.writes.Load(); n != 20 {
		t.Fatalf("60 writes in 20 rounds took %d system calls, want 20", n)
	}
}

// failConn fails every write after the first `ok` ones.
type failConn struct {
	ok     int
	mu     sync.Mutex
	writes int
	fails  atomic.Int64
}

var errBroken = errors.New("broken pipe")

func (c *failConn) WriteRaw(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if c.writes > c.ok {
		return 0, errBroken
	}
	return len(p), nil
}
func (c *failConn) SetSocketWriteDeadline(time.Time) error { return nil }
func (c *failConn) Fail()                                  { c.fails.Add(1) }

func TestFailedWriteIsStickyAndClosesOnce(t *testing.T) {
	c := &failConn{ok: 0}
	w := NewWriter(c)
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatalf("first write: %v (queued: no error yet)", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.fails.Load() == 0 && time.Now().Before(deadline) {
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
	if n := c.fails.Load(); n != 1 {
		t.Fatalf("Fail called %d times, want 1", n)
	}
	for range 3 {
		if _, err := w.Write([]byte("y")); !errors.Is(err, errBroken) {
			t.Fatalf("write after the failure: %v, want %v", err, errBroken)
		}
	}
	// A direct (large) write reports its own failure too.
	w2 := NewWriter(&failConn{ok: 0})
	if _, err := w2.Write(make([]byte, direct)); !errors.Is(err, errBroken) {
		t.Fatalf("direct write: %v, want %v", err, errBroken)
	}
	w.Close()
	if n := c.fails.Load(); n != 1 {
		t.Fatalf("Fail called %d times after Close, want 1", n)
	}
}

// gateConn blocks every write until released: a peer that stopped
// reading.
type gateConn struct {
	gate    chan struct{}
	written atomic.Int64
}

func (c *gateConn) WriteRaw(p []byte) (int, error) {
	<-c.gate
	c.written.Add(int64(len(p)))
	return len(p), nil
}
func (c *gateConn) SetSocketWriteDeadline(time.Time) error { return nil }
func (c *gateConn) Fail()                                  {}

func TestFullBufferPushesBack(t *testing.T) {
	c := &gateConn{gate: make(chan struct{})}
	w := NewWriter(c)
	chunk := make([]byte, 4096)
	var queued atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 64 { // 256 KiB: far past what may wait
			if _, err := w.Write(chunk); err != nil {
				t.Error(err)
				return
			}
			queued.Add(int64(len(chunk)))
		}
	}()
	time.Sleep(100 * time.Millisecond)
	// One write is stuck in the "kernel"; at most maxBuffered more wait.
	if q := queued.Load(); q > 2*maxBuffered {
		t.Fatalf("%d bytes accepted while the connection took none", q)
	}
	select {
	case <-done:
		t.Fatal("the writer never waited")
	default:
	}
	close(c.gate)
	<-done
	w.Close()
}

func TestCloseSendsWhatIsBuffered(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	c, peer := pipe(t)
	w := NewWriter(c)
	_, _ = w.Write([]byte("GOAWAY"))
	w.Close() // before the flusher had a chance to run
	_ = c.Conn.Close()
	b, err := io.ReadAll(peer)
	if err != nil || string(b) != "GOAWAY" {
		t.Fatalf("peer read %q, %v; want GOAWAY", b, err)
	}
	if _, err := w.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v, want net.ErrClosed", err)
	}
}

func TestCloseDoesNotWaitForAPeerThatReadsNothing(t *testing.T) {
	c, _ := pipe(t) // the peer never reads
	w := NewWriter(c)
	chunk := make([]byte, 16<<10)
	go func() {
		for {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}()
	// Let the socket buffers fill and the flusher block in the kernel.
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	w.Close()
	_ = c.Conn.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v with a stuck peer", d)
	}
}

func BenchmarkWriteFlushRound(b *testing.B) {
	c := &gateConn{gate: make(chan struct{})}
	close(c.gate)
	w := NewWriter(c)
	p := make([]byte, 100)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = w.Write(p)
		_, _ = w.Write(p)
		runtime.Gosched()
	}
}

// Close while a flush is in the kernel waits for it and for what was
// queued behind it: a server's last frames (GOAWAY) must not be cut off.
func TestCloseWaitsForTheFlushInProgress(t *testing.T) {
	c := &gateConn{gate: make(chan struct{})}
	w := NewWriter(c)
	_, _ = w.Write(make([]byte, 100)) // taken by the flusher, stuck at the gate
	time.Sleep(20 * time.Millisecond)
	_, _ = w.Write(make([]byte, 50)) // queued behind it
	closed := make(chan struct{})
	go func() { w.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned with a flush in progress")
	case <-time.After(50 * time.Millisecond):
	}
	close(c.gate)
	<-closed
	if n := c.written.Load(); n != 150 {
		t.Fatalf("%d bytes written by Close's end, want 150", n)
	}
}

// closingConn closes its Writer when a write fails, as the proxy's
// connections do (Fail -> Close -> Writer.Close).
type closingConn struct {
	w *Writer
}

func (c *closingConn) WriteRaw([]byte) (int, error)           { return 0, errBroken }
func (c *closingConn) SetSocketWriteDeadline(time.Time) error { return nil }
func (c *closingConn) Fail()                                  { c.w.Close() }

func TestFailClosingTheWriterDoesNotDeadlock(t *testing.T) {
	for _, size := range []int{10, direct} { // queued and direct writes
		c := &closingConn{}
		c.w = NewWriter(c)
		done := make(chan struct{})
		go func() {
			_, _ = c.w.Write(make([]byte, size))
			c.w.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("size %d: Write/Close deadlocked after a failure", size)
		}
	}
}

func TestAbortDoesNotWait(t *testing.T) {
	c := &gateConn{gate: make(chan struct{})}
	defer close(c.gate)
	w := NewWriter(c)
	_, _ = w.Write(make([]byte, 100)) // stuck at the gate
	time.Sleep(20 * time.Millisecond)
	done := make(chan struct{})
	go func() { w.Abort(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Abort waited for a stuck flush")
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Abort: %v", err)
	}
}

// owned is a connection as the proxy's: a Socket whose owner's Close
// stops the writes (sending what is queued) and then closes the socket.
type owned struct {
	*Socket
	closes atomic.Int64
}

func newOwned(c net.Conn) *owned {
	o := &owned{}
	o.Socket = NewSocket(c, o)
	return o
}

func (o *owned) Close() error {
	o.closes.Add(1)
	o.StopWrites(false)
	return o.Conn.Close()
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), crand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"x"}}
	der, err := x509.CreateCertificate(crand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

// crypto/tls's Close queues close_notify, then sets the write deadline to
// "now" and closes: a flush that ran between the two used to fail at once
// and drop everything queued (found by review: 1-5 rounds in 2000 at
// GOMAXPROCS=2) while write deadlines went to the socket; Socket routes
// them to the Writer. Every round must deliver the whole tail.
func TestTLSCloseDeliversTheTail(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	cert := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tail := []byte("GOAWAY: the last frames of a response")
	want := 15*4096 + len(tail)
	for round := range 1500 {
		srvErr := make(chan error, 1)
		go func() {
			raw, err := ln.Accept()
			if err != nil {
				srvErr <- err
				return
			}
			wc := newOwned(raw)
			tc := tls.Server(wc, &tls.Config{Certificates: []tls.Certificate{cert}})
			if err := tc.Handshake(); err != nil {
				srvErr <- err
				return
			}
			wc.Coalesce() // after the handshake, as the proxy does
			for j := 0; j < 15 && err == nil; j++ {
				_, err = tc.Write(make([]byte, 4<<10))
			}
			if err == nil {
				_, err = tc.Write(tail)
			}
			_ = tc.Close()
			srvErr <- err
		}()
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, rerr := io.ReadAll(c)
		c.Close()
		if err := <-srvErr; err != nil {
			t.Fatal(err)
		}
		if len(got) != want || rerr != nil {
			t.Fatalf("round %d: client read %d of %d bytes (%v)", round, len(got), want, rerr)
		}
	}
}

// A deadline set after Writes were accepted does not cut their flush, but
// fails later Writes once past, and bounds a Write waiting for room.
func TestWriteDeadline(t *testing.T) {
	c := &gateConn{gate: make(chan struct{})}
	w := NewWriter(c)
	_, _ = w.Write(make([]byte, 100)) // accepted; its flush is stuck at the gate
	w.SetWriteDeadline(time.Now())
	if _, err := w.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past the deadline: %v", err)
	}
	close(c.gate)
	w.SetWriteDeadline(time.Time{})
	w.Close()
	if n := c.written.Load(); n != 100 {
		t.Fatalf("%d bytes flushed, want the 100 accepted before the deadline", n)
	}

	// A writer waiting for room gives up at its deadline.
	c2 := &gateConn{gate: make(chan struct{})}
	defer close(c2.gate)
	w2 := NewWriter(c2)
	_, _ = w2.Write(make([]byte, 100))
	time.Sleep(10 * time.Millisecond) // the flusher takes it and blocks
	_, _ = w2.Write(make([]byte, maxBuffered-10))
	w2.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	if _, err := w2.Write(make([]byte, 100)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write waiting for room: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the deadline took %v to end the wait", d)
	}
}

// A second Close (net/http's and the listener's racing) waits for the
// flush as the first does, so neither caller cuts it.
func TestSecondCloseWaitsToo(t *testing.T) {
	c := &gateConn{gate: make(chan struct{})}
	w := NewWriter(c)
	_, _ = w.Write([]byte("tail"))
	first := make(chan struct{})
	go func() { w.Close(); close(first) }()
	time.Sleep(10 * time.Millisecond) // the first Close is waiting
	second := make(chan struct{})
	go func() { w.Close(); close(second) }()
	select {
	case <-second:
		t.Fatal("the second Close returned with the flush in progress")
	case <-time.After(50 * time.Millisecond):
	}
	close(c.gate)
	<-first
	<-second
	if n := c.written.Load(); n != 4 {
		t.Fatalf("%d bytes flushed, want 4", n)
	}
}

// Socket over a real TCP connection: raw system calls, coalescing once
// asked, write deadlines to the Writer (not the socket) while coalescing,
// and a failed flush closing the owner once.
func TestSocket(t *testing.T) {
	c, peer := pipe(t)
	o := newOwned(c.Conn)
	if o.raw == nil {
		t.Fatal("a TCP socket was not given raw I/O")
	}
	if _, err := o.Write([]byte("plain")); err != nil || o.Coalescing() {
		t.Fatalf("write before Coalesce: %v, coalescing %v", err, o.Coalescing())
	}
	o.Coalesce()
	// A deadline in the past fails later writes but not the socket's reads.
	if err := o.SetDeadline(time.Now().Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Write([]byte("late")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past the deadline: %v", err)
	}
	_ = o.SetWriteDeadline(time.Time{})
	_ = o.SetReadDeadline(time.Time{})
	if _, err := o.Write([]byte("-queued")); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = peer.Write([]byte("x")) }()
	b := make([]byte, 1)
	if _, err := o.Read(b); err != nil || b[0] != 'x' {
		t.Fatalf("read %q, %v", b, err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(peer)
	if string(got) != "plain-queued" {
		t.Fatalf("peer read %q", got)
	}

	// A flush that fails closes the owner (once), and later writes fail.
	c2, peer2 := pipe(t)
	o2 := newOwned(c2.Conn)
	o2.Coalesce()
	_ = peer2.(*net.TCPConn).SetLinger(0)
	_ = peer2.Close() // a reset: the flush fails
	deadline := time.Now().Add(5 * time.Second)
	for o2.closes.Load() == 0 && time.Now().Before(deadline) {
		_, _ = o2.Write(make([]byte, 1024))
		time.Sleep(time.Millisecond)
	}
	if n := o2.closes.Load(); n != 1 {
		t.Fatalf("owner closed %d times after a failed flush, want 1", n)
	}
	if _, err := o2.Write([]byte("x")); err == nil {
		t.Fatal("write after a failed flush succeeded")
	}
}
