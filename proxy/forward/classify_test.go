package forward

import (
	"context"
	"errors"
	"testing"
	"time"
)

// An upstream reset that lands after the route deadline is a timeout even
// when our own timer has not run yet (the upstream enforced a forwarded
// grpc-timeout a moment earlier); before the deadline it stays a reset.
func TestClassifyTimedResetAfterDeadline(t *testing.T) {
	reset := errors.New("stream reset by upstream")
	_, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	// The exchange's ctx is not canceled here: that is the race.
	ctx := context.Background()

	tm := startStreamTimer(time.Hour, 0, 0, cancel, nil)
	defer tm.stop()
	if got := classifyTimed(ctx, ctx, reset, nil, tm); got != ReasonUpstreamReset {
		t.Errorf("before the deadline: %v, want upstream reset", got)
	}
	if got := classifyTimed(ctx, ctx, reset, nil, nil); got != ReasonUpstreamReset {
		t.Errorf("without a timer: %v, want upstream reset", got)
	}

	short := startStreamTimer(time.Millisecond, 0, 0, func(error) {}, nil)
	defer short.stop()
	for !short.routeExpired() {
		time.Sleep(time.Millisecond)
	}
	if got := classifyTimed(ctx, ctx, reset, nil, short); got != ReasonUpstreamTimeout {
		t.Errorf("after the deadline: %v, want upstream timeout", got)
	}
}
