//go:build !linux

package loadgen

import (
	"context"
	"time"
)

// waiter falls back to Go timers off Linux, with their coarser wake-ups.
type waiter struct{ t *time.Timer }

func newWaiter() *waiter { return &waiter{t: time.NewTimer(time.Hour)} }

func (w *waiter) close() { w.t.Stop() }

func (w *waiter) sleepUntil(ctx context.Context, at time.Time) bool {
	w.t.Reset(time.Until(at))
	select {
	case <-w.t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
