package forward

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

func TestReplayBufferReplays(t *testing.T) {
	body := randomBody(100 << 10)
	rb := newReplayBuffer(iotest.HalfReader(bytes.NewReader(body)), 0, true, nil, 0)
	defer rb.release()

	first := rb.reader(nil)
	part := make([]byte, 40<<10)
	if _, err := io.ReadFull(first, part); err != nil {
		t.Fatal(err)
	}
	first.Close()
	if _, err := first.Read(part); !errors.Is(err, errAttemptBodyClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	if rb.complete() || !rb.replayable() {
		t.Fatal("complete too early, or not replayable")
	}
	for i := 0; i < 2; i++ {
		got, err := io.ReadAll(iotest.OneByteReader(io.LimitReader(rb.reader(nil), 10)))
		if err != nil || !bytes.Equal(got, body[:10]) {
			t.Fatalf("replay %d starts with %q (%v)", i, got, err)
		}
		got, err = io.ReadAll(rb.reader(nil))
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("replay %d: %d bytes (%v), want the body", i, len(got), err)
		}
	}
	if !rb.complete() || rb.bytesRead() != int64(len(body)) || !rb.replayable() {
		t.Fatalf("complete %v, read %d, replayable %v", rb.complete(), rb.bytesRead(), rb.replayable())
	}
}

// Past the limit the body streams on to its one reader, keeping only what
// that reader has not consumed, and can no longer be replayed.
func TestReplayBufferOverLimit(t *testing.T) {
	body := randomBody(300 << 10)
	rb := newReplayBuffer(bytes.NewReader(body), 40<<10, true, nil, 0)
	defer rb.release()
	got, err := io.ReadAll(rb.reader(nil))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read %d bytes (%v), want the body", len(got), err)
	}
	if rb.replayable() {
		t.Error("replayable after the limit")
	}
	rb.mu.Lock()
	kept := len(rb.chunks)
	rb.mu.Unlock()
	if kept > 1 {
		t.Errorf("%d chunks kept once consumed", kept)
	}
	if _, err := rb.reader(nil).Read(make([]byte, 1)); !errors.Is(err, errAttemptBodyClosed) {
		t.Errorf("a replay past the limit read: %v", err)
	}
}

// A body that will not be retried is streamed without being kept.
func TestReplayBufferNotKept(t *testing.T) {
	body := randomBody(200 << 10)
	rb := newReplayBuffer(bytes.NewReader(body), 0, false, nil, 0)
	defer rb.release()
	got, err := io.ReadAll(rb.reader(nil))
	if err != nil || !bytes.Equal(got, body) || rb.replayable() {
		t.Fatalf("read %d bytes (%v), replayable %v", len(got), err, rb.replayable())
	}
}

// A finished attempt's reader blocked on the client does not steal bytes
// from the next attempt: what it reads is kept for the next one.
func TestReplayBufferStaleReader(t *testing.T) {
	pr, pw := io.Pipe()
	rb := newReplayBuffer(pr, 0, true, nil, 0)
	defer rb.release()
	stale := rb.reader(nil)
	staleErr := make(chan error, 1)
	go func() {
		_, err := stale.Read(make([]byte, 10))
		staleErr <- err
	}()
	waitFor(t, func() bool { return !rb.fillMu.TryLock() || unlockTrue(rb) }, "the stale reader to wait on the client")
	stale.Close()
	next := rb.reader(nil)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(next)
		got <- b
	}()
	pw.Write([]byte("hello"))
	pw.Write([]byte(" world"))
	pw.Close()
	if err := <-staleErr; !errors.Is(err, errAttemptBodyClosed) {
		t.Errorf("stale reader: %v", err)
	}
	if b := <-got; string(b) != "hello world" {
		t.Fatalf("next attempt read %q", b)
	}
}

// unlockTrue undoes a successful TryLock in a waitFor condition: the lock
// was free, so the reader is not waiting yet.
func unlockTrue(rb *replayBuffer) bool {
	rb.fillMu.Unlock()
	return false
}

// release with a read from the client under way leaves its chunk alone and
// ends every reader.
func TestReplayBufferReleaseDuringFill(t *testing.T) {
	pr, pw := io.Pipe()
	rb := newReplayBuffer(pr, 0, true, nil, 0)
	r := rb.reader(nil)
	readErr := make(chan error, 1)
	go func() {
		_, err := r.Read(make([]byte, 10))
		readErr <- err
	}()
	waitFor(t, func() bool { return !rb.fillMu.TryLock() || unlockTrue(rb) }, "the reader to wait on the client")
	rb.release()
	pw.Write([]byte("late"))
	if err := <-readErr; !errors.Is(err, errAttemptBodyClosed) {
		t.Errorf("read after release: %v", err)
	}
	pw.Close()
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
