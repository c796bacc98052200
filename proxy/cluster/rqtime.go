package cluster

import (
	"sync/atomic"
	"time"
)

// RqTimeBounds are the upper bounds of the upstream request-time
// histogram's buckets, the same as the downstream duration's
// (telemetry.LatencyBuckets): 100 µs up to 30 s.
var RqTimeBounds = [...]time.Duration{
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond,
	10 * time.Millisecond, 25 * time.Millisecond, 50 * time.Millisecond,
	100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
	time.Second, 2500 * time.Millisecond, 5 * time.Second,
	10 * time.Second, 30 * time.Second,
}

// RqTime is Envoy's upstream_rq_time: how long each upstream request took,
// from sending it to the end of its response (or its failure), in a
// lock-free histogram.
type RqTime struct {
	buckets [len(RqTimeBounds) + 1]atomic.Uint64 // the last is +Inf
	sumNs   atomic.Int64
}

// Observe records one request's time.
func (t *RqTime) Observe(d time.Duration) {
	i := 0
	for i < len(RqTimeBounds) && d > RqTimeBounds[i] {
		i++
	}
	t.buckets[i].Add(1)
	t.sumNs.Add(int64(d))
}

// Read returns the cumulative count per bound (the Prometheus form: the
// last entry, for +Inf, is the total) and the sum.
func (t *RqTime) Read() (cumulative [len(RqTimeBounds) + 1]uint64, sum time.Duration) {
	var n uint64
	for i := range t.buckets {
		n += t.buckets[i].Load()
		cumulative[i] = n
	}
	return cumulative, time.Duration(t.sumNs.Load())
}
