package tcpproxy

import (
	"sync"
	"time"
)

// minIdleStep bounds how often a short idle timeout is checked.
const minIdleStep = 5 * time.Millisecond

// idleWatch closes a session once no byte has moved either way for the
// idle timeout. Splice moves bytes in the kernel, invisible to the copy
// loop until a chunk ends, so the watch does not reset a timer per read:
// every step (an eighth of the timeout) it compares a progress count — the
// bytes copied plus, where the sockets are known, the kernel's own counts of
// bytes received and acknowledged (TCP_INFO on Linux) — with the last one.
// The connection closes between idle and idle plus one step after its last
// byte, never earlier.
type idleWatch struct {
	s    *session
	idle time.Duration
	step time.Duration

	mu      sync.Mutex // one check at a time; stop waits for a running one
	stopped bool
	t       *time.Timer
	last    uint64
	since   time.Time
}

func (s *session) watchIdle(idle time.Duration) *idleWatch {
	w := &idleWatch{s: s, idle: idle, step: max(idle/8, minIdleStep), last: s.progress(), since: time.Now()}
	w.mu.Lock()
	w.t = time.AfterFunc(w.step, w.check)
	w.mu.Unlock()
	return w
}

func (w *idleWatch) check() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	now := time.Now()
	if p := w.s.progress(); p != w.last {
		w.last, w.since = p, now
	} else if now.Sub(w.since) >= w.idle {
		w.s.idleFired.Store(true)
		w.s.p.log.Debug("idle timeout; closing the connection", "idle", w.idle.String())
		w.s.abort()
		return
	}
	w.t.Reset(w.step)
}

// stop ends the watch; after it returns no check acts.
func (w *idleWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	w.t.Stop()
	w.mu.Unlock()
}

// progress counts every byte that moved so far, in any unit that only
// grows: what the copies counted plus what the kernel counted on the
// sockets.
func (s *session) progress() uint64 {
	return uint64(s.rx.Load()) + uint64(s.tx.Load()) + socketBytes(s.downSock) + socketBytes(s.upSock)
}
