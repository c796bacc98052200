package loadgen

import (
	"context"
	"runtime"
	"syscall"
	"time"
)

// waiter sleeps with nanosleep on a locked OS thread whose timer slack is
// 1 ns (the default 50 µs slack would be added to every wake-up).
type waiter struct{}

const prSetTimerslack = 29 // PR_SET_TIMERSLACK from <linux/prctl.h>

func newWaiter() *waiter {
	runtime.LockOSThread()
	// Best effort: without it wake-ups are up to 50 µs later.
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 1, 0)
	return &waiter{}
}

// close restores the default slack (0 means "the default") and unlocks.
// The thread must go back to the pool rather than exit with its goroutine:
// a child started from a thread gets its Pdeathsig when that thread exits,
// and the harness starts the peers with Pdeathsig set.
func (w *waiter) close() {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 0, 0)
	runtime.UnlockOSThread()
}

// sleepUntil returns false if ctx ended first. It sleeps in slices of at
// most 5 ms so cancellation is noticed promptly.
func (w *waiter) sleepUntil(ctx context.Context, at time.Time) bool {
	for {
		if ctx.Err() != nil {
			return false
		}
		d := time.Until(at)
		if d <= 0 {
			return true
		}
		d = min(d, 5*time.Millisecond)
		ts := syscall.NsecToTimespec(int64(d))
		// EINTR only shortens the sleep; the loop re-checks the time.
		_ = syscall.Nanosleep(&ts, nil)
	}
}
