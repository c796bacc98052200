package loadgen

import (
	"context"
	"time"
)

// pace releases slot indexes into slots at their scheduled times, then
// closes it. One pacer thread does the waiting, not one timer per worker:
// Go's timers sleep in the netpoller with millisecond granularity when the
// process is idle, which at 1k req/s put ~0.5 ms of the generator's own
// lateness into every latency. sleepUntil (per OS) waits more precisely.
// An overdue slot is released at once: latency still counts from its
// scheduled time.
func pace(ctx context.Context, sched Schedule, slots chan<- int64) {
	defer close(slots)
	w := newWaiter()
	defer w.close()
	for i := int64(0); i < sched.Count; i++ {
		at := sched.At(i)
		if time.Until(at) > 0 && !w.sleepUntil(ctx, at) {
			return
		}
		select {
		case slots <- i:
		case <-ctx.Done():
			return
		}
	}
}
