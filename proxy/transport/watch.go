package transport

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"
)

// watchAfter is how long a request runs on an HTTP/1.1 connection before
// a goroutine starts watching its context. Handing every request to a
// watcher costs two goroutine wake-ups, which measured ~8µs per request on
// loopback (a third of a round trip); context.AfterFunc costs ~4
// allocations. A deadline on the socket costs neither: most requests end
// before it fires, and those that do not are handed to the watcher then,
// so a context that ends is noticed within watchAfter at worst.
const watchAfter = 5 * time.Millisecond

// watch honours a request's context on an HTTP/1.1 connection without a
// goroutine per request. start arms a socket deadline at min(watchAfter,
// the context's deadline); if a read or write hits it, the connection
// (conn.Read/Write) calls fired, which clears the deadline, hands the
// context to the connection's watcher goroutine (started on first need) and
// has the I/O retried. The watcher closes the connection when the context
// ends, aborting whatever blocks on it. stop ends the watch. No deadline
// is ever set on an HTTP/1.1 connection otherwise, so every deadline error
// is the watch's own.
type watch struct {
	pc *pconn

	mu       sync.Mutex
	ctx      context.Context
	armed    bool // the socket deadline is set
	watching bool // the watcher has ctx
	started  bool // the watcher goroutine runs

	hand    chan context.Context // to the watcher: watch this
	release chan struct{}        // to the watcher: stop watching
}

// start watches ctx for the request beginning now.
func (w *watch) start(ctx context.Context) {
	at := time.Now().Add(watchAfter)
	if d, ok := ctx.Deadline(); ok && d.Before(at) {
		at = d
	}
	w.mu.Lock()
	w.ctx, w.armed = ctx, true
	w.mu.Unlock()
	w.pc.raw.Conn.SetDeadline(at)
}

// fired handles a deadline error from the connection's I/O and reports
// whether the I/O should be retried (it was the watch's deadline).
func (w *watch) fired(err error) bool {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.armed {
		w.armed = false
		w.pc.raw.Conn.SetDeadline(time.Time{})
		if !w.started {
			w.started = true
			w.hand = make(chan context.Context)
			w.release = make(chan struct{})
			go w.watcher(w.pc.done)
		}
		w.hand <- w.ctx
		w.watching = true
	}
	return true
}

// stop ends the watch of the current request. Once it returns, the
// watcher will not close the connection for that request.
func (w *watch) stop() {
	w.mu.Lock()
	if w.armed {
		w.armed = false
		w.pc.raw.Conn.SetDeadline(time.Time{})
	}
	watching := w.watching
	w.watching, w.ctx = false, nil
	w.mu.Unlock()
	if watching {
		w.release <- struct{}{}
	}
}

// watcher closes the connection when the context it was handed ends. It
// exits when the connection closes.
func (w *watch) watcher(done <-chan struct{}) {
	for {
		var ctx context.Context
		select {
		case ctx = <-w.hand:
		case <-done:
			return
		}
		select {
		case <-ctx.Done():
			w.pc.abort()
			<-w.release
		case <-w.release:
		}
	}
}
