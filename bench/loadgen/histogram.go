package loadgen

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: values are nanoseconds, from 1 ns to 60 s at three
// significant digits (0.1% precision), which covers a loopback hop and the
// worst stall a bounded run can see. The lowest discernible value is 1 ns,
// not 1 µs: HDR scales its bucket width with it, and 1 µs would give 512 ns
// steps (2.5% of a 20 µs hop). It costs ~220 KB per histogram.
const (
	histLowest  = int64(1)
	histHighest = int64(60 * time.Second)
	histDigits  = 3
)

// NewHistogram returns an empty latency histogram in nanoseconds.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histDigits)
}

// Recorder is a latency histogram that many workers write concurrently. It
// is split into shards so workers rarely contend on a lock, and one shard per
// worker would cost too much memory at 1,000 connections.
type Recorder struct {
	shards []recorderShard
}

type recorderShard struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
	// clamped counts values outside the histogram's range, recorded at the edge.
	clamped int64
	_       [40]byte // keep shards on separate cache lines
}

// NewRecorder returns a recorder with n shards (at least one).
func NewRecorder(n int) *Recorder {
	if n < 1 {
		n = 1
	}
	r := &Recorder{shards: make([]recorderShard, n)}
	for i := range r.shards {
		r.shards[i].h = NewHistogram()
	}
	return r
}

// Record adds one latency; worker picks the shard.
func (r *Recorder) Record(worker int, d time.Duration) {
	s := &r.shards[worker%len(r.shards)]
	v := int64(d)
	clamped := false
	if v < histLowest {
		v, clamped = histLowest, true
	} else if v > histHighest {
		v, clamped = histHighest, true
	}
	s.mu.Lock()
	// In range by construction, so RecordValue cannot fail.
	_ = s.h.RecordValue(v)
	if clamped {
		s.clamped++
	}
	s.mu.Unlock()
}

// Snapshot merges the shards into one new histogram and reports how many
// values were clamped to the range.
func (r *Recorder) Snapshot() (h *hdrhistogram.Histogram, clamped int64) {
	h = NewHistogram()
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		h.Merge(s.h)
		clamped += s.clamped
		s.mu.Unlock()
	}
	return h, clamped
}

// Merge adds src into dst and returns dst; a nil dst starts a new histogram.
// Repetitions of a run are merged this way for the report's distribution.
func Merge(dst, src *hdrhistogram.Histogram) *hdrhistogram.Histogram {
	if dst == nil {
		dst = NewHistogram()
	}
	if src != nil {
		dst.Merge(src)
	}
	return dst
}
