package loadgen

import (
	"sync"
	"testing"
	"time"
)

func TestRecorderShardsMerge(t *testing.T) {
	r := NewRecorder(4)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 1; i <= 100; i++ {
				r.Record(w, time.Duration(i)*time.Microsecond)
			}
		})
	}
	wg.Wait()
	h, clamped := r.Snapshot()
	if h.TotalCount() != 800 || clamped != 0 {
		t.Fatalf("count %d clamped %d, want 800 and 0", h.TotalCount(), clamped)
	}
	// p50 of 1..100 µs recorded eight times is 50 µs, to 0.1%.
	if got := time.Duration(h.ValueAtQuantile(50)); got < 49900*time.Nanosecond || got > 50100*time.Nanosecond {
		t.Errorf("p50 = %v, want 50µs", got)
	}
	if got := time.Duration(h.Max()); got < 99900*time.Nanosecond || got > 100100*time.Nanosecond {
		t.Errorf("max = %v, want 100µs", got)
	}
}

func TestRecorderClamps(t *testing.T) {
	r := NewRecorder(1)
	r.Record(0, -10*time.Nanosecond)
	r.Record(0, 2*time.Minute)
	r.Record(0, time.Millisecond)
	h, clamped := r.Snapshot()
	if clamped != 2 || h.TotalCount() != 3 {
		t.Fatalf("clamped %d count %d, want 2 and 3", clamped, h.TotalCount())
	}
	if h.Min() != 1 {
		t.Errorf("min = %d, want clamped to 1ns", h.Min())
	}
	if h.Max() < int64(59*time.Second) {
		t.Errorf("max = %d, want clamped near 60s", h.Max())
	}
}

func TestMerge(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	for i := range 10 {
		_ = a.RecordValue(int64(time.Millisecond) + int64(i))
		_ = b.RecordValue(int64(3 * time.Millisecond))
	}
	got := Merge(nil, a)
	got = Merge(got, b)
	got = Merge(got, nil)
	if got.TotalCount() != 20 {
		t.Fatalf("count = %d, want 20", got.TotalCount())
	}
	if p90 := time.Duration(got.ValueAtQuantile(90)); p90 < 2990*time.Microsecond {
		t.Errorf("p90 = %v, want ~3ms from b", p90)
	}
	if a.TotalCount() != 10 {
		t.Errorf("merge changed its source: %d", a.TotalCount())
	}
}
