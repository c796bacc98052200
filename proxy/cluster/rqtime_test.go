package cluster

import (
	"testing"
	"time"
)

func TestRqTime(t *testing.T) {
	var h RqTime
	for _, d := range []time.Duration{50 * time.Microsecond, 100 * time.Microsecond, 3 * time.Millisecond, time.Minute} {
		h.Observe(d)
	}
	cum, sum := h.Read()
	// Bounds are inclusive (le): 100 µs lands in the first bucket.
	want := map[int]uint64{0: 2, 4: 2, 5: 3, len(RqTimeBounds) - 1: 3, len(RqTimeBounds): 4}
	for i, n := range want {
		if cum[i] != n {
			t.Errorf("cumulative[%d] = %d, want %d (all %v)", i, cum[i], n, cum)
		}
	}
	if sum != 50*time.Microsecond+100*time.Microsecond+3*time.Millisecond+time.Minute {
		t.Errorf("sum %v", sum)
	}
}
