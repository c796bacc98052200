// Package coalesce turns the writes a connection receives in one
// scheduling round into one system call.
//
// net/http's HTTP/2 server and client flush after almost every frame
// group: a proxied gRPC call writes its response HEADERS, its DATA and its
// trailers, and upstream its HEADERS and its DATA, each as a separate
// write, with the WINDOW_UPDATE and PING acknowledgements on top: about
// seven writes per call and sidecar. On loopback every write runs the
// receiver's TCP path and wakes it, so each costs several microseconds
// and often a context switch on both sides (measured: ~270 µs of CPU per
// call and sidecar at 1k calls/s).
//
// A Writer copies what is written into a buffer and starts one flusher
// goroutine; Write returns at once. The flusher runs when the writing
// goroutines block or yield — with GOMAXPROCS=1, after the goroutines the
// writes readied — and writes everything buffered by then with one system
// call. The frames of one event (a response's headers, data and trailers)
// so leave together, in order, as the single write Envoy makes per
// dispatch.
//
// Semantics kept from net.Conn: bytes leave in the order written; a
// writer waits while the buffer is full (so a peer that stops reading
// still pushes back); a failed write is returned to every later Write and
// closes the connection, so its reader sees the failure too; Close waits
// until everything written before it has been sent (bounded: a peer that
// reads nothing cannot hold Close). What changes: a Write returns before its bytes reach the kernel
// (HTTP/2 learns of a dead connection from its reader, as it does for a
// peer that vanished after a successful write).
package coalesce

import (
	"net"
	"os"
	"sync"
	"time"
)

const (
	// maxBuffered bounds what waits for the flusher; a writer beyond it
	// waits for the flush in progress.
	maxBuffered = 64 << 10
	// direct is the size from which an idle Writer writes in the caller's
	// goroutine instead of copying (a large DATA frame is one write
	// anyway).
	direct = 32 << 10
	// closeFlush bounds how long Close spends sending what is buffered.
	closeFlush = 100 * time.Millisecond
)

// Conn is what a Writer writes to: the connection's own write, and what
// it needs to close it after a failure and to bound Close's last flush.
// The connection must route its callers' write deadlines to the Writer
// (Writer.SetWriteDeadline), not to the socket.
type Conn interface {
	// WriteRaw writes all of p or fails, as net.Conn's Write.
	WriteRaw(p []byte) (int, error)
	// SetSocketWriteDeadline sets the socket's own write deadline.
	SetSocketWriteDeadline(t time.Time) error
	// Fail closes the connection after a failed write.
	Fail()
}

// Writer coalesces the writes to one connection.
type Writer struct {
	c Conn

	mu      sync.Mutex
	room    sync.Cond // signalled when a flush ends
	buf     []byte    // waiting for the flusher
	box     *[]byte   // buf's pool entry
	err     error     // sticky: the first failure
	closed  bool      // Close was called: no more writes accepted
	running bool      // a flusher is scheduled or writing
	// deadline is the caller's write deadline (SetWriteDeadline): it bounds
	// how long a Write waits for room and fails Writes once past, but never
	// cuts a flush of bytes an earlier Write already accepted (crypto/tls
	// sets a deadline of "now" right after queueing its close_notify).
	deadline time.Time
	writing  bool // the flusher (or a direct write) is in the kernel
}

// NewWriter returns a Writer for c.
func NewWriter(c Conn) *Writer {
	w := &Writer{c: c}
	w.room.L = &w.mu
	return w
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 4<<10); return &b }}

// take hands the buffer over (to a flush), leaving none.
func (w *Writer) take() ([]byte, *[]byte) {
	b, box := w.buf, w.box
	w.buf, w.box = nil, nil
	return b, box
}

func putBuf(b []byte, box *[]byte) {
	if cap(b) > maxBuffered+direct {
		return // a one-off large batch: let it go
	}
	*box = b[:0]
	bufs.Put(box)
}

// Write queues p and returns len(p), or the error an earlier write met.
func (w *Writer) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	w.mu.Lock()
	var timer *time.Timer
	for w.err == nil && !w.closed && w.running && len(w.buf) > 0 && len(w.buf)+len(p) > maxBuffered {
		if w.pastDeadline() {
			break
		}
		if !w.deadline.IsZero() && timer == nil {
			timer = time.AfterFunc(time.Until(w.deadline), w.wake)
		}
		w.room.Wait()
	}
	if timer != nil {
		timer.Stop()
	}
	if err := w.refusal(); err != nil {
		w.mu.Unlock()
		return 0, err
	}
	if !w.running && len(p) >= direct {
		// Nothing pending: write in place, holding off other writers'
		// flushes until it ends so the order stays.
		w.running, w.writing = true, true
		w.mu.Unlock()
		n, err := w.c.WriteRaw(p)
		w.mu.Lock()
		w.writing = false
		w.fail(err)
		if len(w.buf) > 0 && w.err == nil {
			go w.flush() // what others wrote meanwhile; running stays true
		} else {
			w.running = false
			w.release()
		}
		w.room.Broadcast()
		w.mu.Unlock()
		return n, err
	}
	if w.box == nil {
		w.box = bufs.Get().(*[]byte)
		w.buf = (*w.box)[:0]
	}
	w.buf = append(w.buf, p...)
	if !w.running {
		w.running = true
		go w.flush()
	}
	w.mu.Unlock()
	return len(p), nil
}

// refusal is why a Write may not queue now: a failure, Close, or a
// deadline that has passed.
func (w *Writer) refusal() error {
	switch {
	case w.err != nil:
		return w.err
	case w.closed:
		return net.ErrClosed
	case w.pastDeadline():
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (w *Writer) pastDeadline() bool {
	return !w.deadline.IsZero() && !time.Now().Before(w.deadline)
}

func (w *Writer) wake() {
	w.mu.Lock()
	w.room.Broadcast()
	w.mu.Unlock()
}

// SetWriteDeadline sets the deadline of later Writes (see deadline).
func (w *Writer) SetWriteDeadline(t time.Time) {
	w.mu.Lock()
	w.deadline = t
	w.room.Broadcast() // a waiting Write rechecks it
	w.mu.Unlock()
}

// flush writes what is buffered until nothing is.
func (w *Writer) flush() {
	w.mu.Lock()
	for len(w.buf) > 0 && w.err == nil {
		b, box := w.take()
		w.writing = true
		w.mu.Unlock()
		_, err := w.c.WriteRaw(b)
		putBuf(b, box)
		w.mu.Lock()
		w.writing = false
		w.fail(err)
		w.room.Broadcast()
	}
	w.running = false
	w.release()
	w.room.Broadcast()
	w.mu.Unlock()
}

// fail records a write's failure and closes the connection (outside the
// lock: the connection's Close calls Close below).
func (w *Writer) fail(err error) {
	if err == nil || w.err != nil {
		return
	}
	w.err = err
	w.mu.Unlock()
	w.c.Fail()
	w.mu.Lock()
}

// release drops the buffer after a failure or when it is empty.
func (w *Writer) release() {
	if w.box != nil && (len(w.buf) == 0 || w.err != nil) {
		putBuf(w.take())
	}
}

// Close makes later writes fail with net.ErrClosed and waits until what
// was written before has been sent, bounded by closeFlush (a write
// deadline: a peer that reads nothing cannot hold Close). The caller
// closes the connection afterwards. From the flusher's own failure (Fail
// calls the connection's Close) it returns at once.
func (w *Writer) Close() {
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		return
	}
	first := !w.closed
	w.closed = true
	w.room.Broadcast() // writers waiting for room give up
	if !w.running {
		w.release()
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	if first {
		_ = w.c.SetSocketWriteDeadline(time.Now().Add(closeFlush))
	}
	// A second Close (net/http's and the listener's racing) waits too:
	// returning early would let its caller cut the flush.
	w.mu.Lock()
	for w.running && w.err == nil {
		w.room.Wait()
	}
	w.release()
	w.mu.Unlock()
}

// Abort makes later writes fail with net.ErrClosed and drops what is
// buffered, without waiting: for closing everything at once (a listener's
// Close), where the connection is cut anyway.
func (w *Writer) Abort() {
	w.mu.Lock()
	if w.err == nil {
		w.err = net.ErrClosed
	}
	w.closed = true
	w.release()
	w.room.Broadcast()
	w.mu.Unlock()
}
