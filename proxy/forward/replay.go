package forward

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// DefaultRetryBufferLimit is how much of a request body is kept for
// replays when Params.RetryBufferLimit is 0.
const DefaultRetryBufferLimit = 1 << 20

// chunkSize is the size of the pooled buffers a replay buffer keeps the body
// in (bufPool's).
const chunkSize = 32 << 10

// errAttemptBodyClosed ends the request body of an attempt that is over
// (its response was discarded, it lost a hedge, or the exchange ended).
var errAttemptBodyClosed = errors.New("request body of a finished attempt")

// replayBuffer reads a request body from the client once and lets every
// attempt read it from the start. What has been read is kept, in pooled
// chunks grown as the body arrives, until more than limit bytes have come;
// then the body is no longer replayable (no more retries, as in Envoy) and
// the one attempt still sending it reads on while consumed chunks are
// recycled.
type replayBuffer struct {
	src io.Reader
	tm  *streamTimer // the exchange's timer: activity and request_timeout
	gen uint64

	limit int64
	n     atomic.Int64 // bytes read from the client

	// fillMu is held while reading the client: one read at a time, into
	// the free end of the last chunk, outside mu so readers of what is
	// already kept never wait on the client.
	fillMu sync.Mutex

	mu       sync.Mutex
	chunks   []*[]byte // all full but the last
	base     int64     // body offset of chunks[0][0]
	size     int64     // body bytes read so far
	err      error     // the client's final error (io.EOF: complete)
	keep     bool      // everything read is kept: replayable
	released bool
}

// newReplayBuffer wraps a request body. keep false streams it without
// keeping anything for replays (a request that will not be retried).
func newReplayBuffer(src io.Reader, limit int, keep bool, tm *streamTimer, gen uint64) *replayBuffer {
	if limit <= 0 {
		limit = DefaultRetryBufferLimit
	}
	return &replayBuffer{src: src, tm: tm, gen: gen, limit: int64(limit), keep: keep}
}

// replayable reports whether an attempt may send the body again.
func (rb *replayBuffer) replayable() bool {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.keep
}

// complete reports whether the whole body has been received.
func (rb *replayBuffer) complete() bool {
	rb.mu.Lock()
	defer rb.mu.Unlock()
	return rb.err == io.EOF
}

func (rb *replayBuffer) bytesRead() int64 { return rb.n.Load() }
func (rb *replayBuffer) sawEOF() bool     { return rb.complete() }

// reader returns a reader of the body from its start for attempt a (nil
// allowed).
func (rb *replayBuffer) reader(a *attempt) *replayReader {
	return &replayReader{rb: rb, a: a}
}

// fill reads once from the client unless another reader did since the
// caller saw size seen.
func (rb *replayBuffer) fill(seen int64) {
	rb.fillMu.Lock()
	defer rb.fillMu.Unlock()
	rb.mu.Lock()
	if rb.released || rb.err != nil || rb.size != seen {
		rb.mu.Unlock()
		return
	}
	used := rb.size - rb.base
	k := int(used / chunkSize)
	if k == len(rb.chunks) {
		rb.chunks = append(rb.chunks, bufPool.Get().(*[]byte))
	}
	buf := (*rb.chunks[k])[used%chunkSize : chunkSize]
	rb.mu.Unlock()

	n, err := rb.src.Read(buf)

	rb.mu.Lock()
	if n > 0 {
		rb.size += int64(n)
		rb.n.Store(rb.size)
	}
	if err != nil && rb.err == nil {
		rb.err = err
	}
	if rb.keep && rb.size > rb.limit {
		rb.keep = false
	}
	rb.mu.Unlock()
	if rb.tm != nil {
		if n > 0 {
			rb.tm.touch(rb.gen)
		}
		if err == io.EOF {
			rb.tm.requestDone(rb.gen)
		}
	}
}

// copyAt copies kept bytes from body offset off; rb.mu is held and
// rb.base <= off < rb.size.
func (rb *replayBuffer) copyAt(p []byte, off int64) int {
	rel := off - rb.base
	c := *rb.chunks[rel/chunkSize]
	from := int(rel % chunkSize)
	to := chunkSize
	if end := rb.size - rb.base - rel/chunkSize*chunkSize; end < int64(to) {
		to = int(end)
	}
	return copy(p, c[from:to])
}

// drop recycles the full chunks below off once the body is not kept; rb.mu
// is held. The last chunk stays: fill may be writing into it.
func (rb *replayBuffer) drop(off int64) {
	k := 0
	for k < len(rb.chunks)-1 && rb.base+chunkSize <= off {
		bufPool.Put(rb.chunks[k])
		rb.chunks[k] = nil
		rb.base += chunkSize
		k++
	}
	if k > 0 {
		n := copy(rb.chunks, rb.chunks[k:])
		clear(rb.chunks[n:])
		rb.chunks = rb.chunks[:n]
	}
}

// release ends every reader and recycles the chunks, unless a read from the
// client into one of them is still under way (then the collector has them).
func (rb *replayBuffer) release() {
	rb.mu.Lock()
	rb.released = true
	chunks := rb.chunks
	rb.chunks = nil
	rb.mu.Unlock()
	if rb.fillMu.TryLock() {
		for _, c := range chunks {
			bufPool.Put(c)
		}
		rb.fillMu.Unlock()
	}
}

// replayReader is one attempt's request body: the kept bytes from the
// start, then what the client sends next.
type replayReader struct {
	rb     *replayBuffer
	a      *attempt
	off    int64 // only the transport's body writer reads: no lock
	closed atomic.Bool
}

func (rr *replayReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	rb := rr.rb
	for {
		if rr.closed.Load() {
			return 0, errAttemptBodyClosed
		}
		rb.mu.Lock()
		if rb.released || rr.off < rb.base {
			rb.mu.Unlock()
			return 0, errAttemptBodyClosed
		}
		if rr.off < rb.size {
			n := rb.copyAt(p, rr.off)
			rr.off += int64(n)
			if !rb.keep {
				rb.drop(rr.off)
			}
			done := rr.off == rb.size && rb.err == io.EOF
			rb.mu.Unlock()
			if rr.a != nil {
				rr.a.touch()
				if done {
					// A transport that stops at Content-Length may
					// never ask for the EOF.
					rr.a.requestComplete()
				}
			}
			return n, nil
		}
		if err := rb.err; err != nil {
			rb.mu.Unlock()
			if err == io.EOF && rr.a != nil {
				rr.a.requestComplete()
			}
			return 0, err
		}
		seen := rb.size
		rb.mu.Unlock()
		rb.fill(seen)
	}
}

// Close ends this attempt's reading; the client's body stays open for the
// next attempt (the server closes it when the handler returns).
func (rr *replayReader) Close() error {
	rr.closed.Store(true)
	return nil
}
