// Package loadgen is the bench's load generator: an open-loop constant-rate
// mode that measures latency from each request's scheduled send time (so a
// slow target cannot hide its latency by slowing the generator down, the
// "coordinated omission" problem), and a closed-loop maximum-throughput mode.
// Latencies go into HDR histograms (github.com/HdrHistogram/hdrhistogram-go).
package loadgen

import (
	"fmt"
	"math"
	"time"
)

// Schedule places request i of an open-loop run at Start + i*Interval.
// Fixed intervals (not Poisson arrivals) keep runs reproducible and make a
// stall show up as a run of late requests rather than as noise.
type Schedule struct {
	Start    time.Time
	Interval time.Duration
	// Count is how many requests the run schedules in total.
	Count int64
}

// NewSchedule plans rate requests per second for duration, capped at
// maxRequests when that is positive.
func NewSchedule(start time.Time, rate float64, duration time.Duration, maxRequests int64) (Schedule, error) {
	if rate <= 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return Schedule{}, fmt.Errorf("loadgen: rate must be a positive number, got %v", rate)
	}
	if duration <= 0 {
		return Schedule{}, fmt.Errorf("loadgen: duration must be positive, got %v", duration)
	}
	interval := time.Duration(float64(time.Second) / rate)
	if interval <= 0 {
		return Schedule{}, fmt.Errorf("loadgen: rate %v/s is above the 1/ns the schedule can express", rate)
	}
	// Round half up so 1000/s for 1.5ms gives 2 slots (t=0 and t=1ms), not 1.
	count := int64(math.Floor(rate*duration.Seconds() + 0.5))
	if count < 1 {
		count = 1
	}
	if maxRequests > 0 && count > maxRequests {
		count = maxRequests
	}
	return Schedule{Start: start, Interval: interval, Count: count}, nil
}

// At is the scheduled send time of request i.
func (s Schedule) At(i int64) time.Time {
	return s.Start.Add(time.Duration(i) * s.Interval)
}

// End is when the last request is due.
func (s Schedule) End() time.Time {
	if s.Count == 0 {
		return s.Start
	}
	return s.At(s.Count - 1)
}

// Rate is the offered load in requests per second.
func (s Schedule) Rate() float64 {
	return float64(time.Second) / float64(s.Interval)
}
