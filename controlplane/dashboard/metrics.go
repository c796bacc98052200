package dashboard

import (
	"fmt"
	"io"
	"math"
	"slices"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
)

// Metric families read from a sidecar's /stats/prometheus.
const (
	requestsMetric = "outrigger_downstream_rq_total"
	durationMetric = "outrigger_downstream_rq_duration_seconds"
)

// bucket is one cumulative histogram bucket: Count observations <= UpperBound.
type bucket struct {
	UpperBound float64
	Count      float64
}

// sample is one scrape of one sidecar's inbound listener.
type sample struct {
	// byClass counts requests by code class ("2xx", "5xx").
	byClass map[string]float64
	// buckets are cumulative, sorted by bound, +Inf last.
	buckets []bucket
}

// total is the number of requests in the sample.
func (s sample) total() float64 {
	t := 0.0
	for _, n := range s.byClass {
		t += n
	}
	return t
}

// parseSample reads the Prometheus text format and keeps the request
// counters and duration histogram of listener.
func parseSample(r io.Reader, listener string) (sample, error) {
	p := expfmt.NewTextParser(prommodel.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(r)
	if err != nil {
		return sample{}, fmt.Errorf("parse metrics: %w", err)
	}
	s := sample{byClass: map[string]float64{}}
	if mf := mfs[requestsMetric]; mf != nil {
		for _, m := range mf.GetMetric() {
			if label(m, "listener") == listener {
				s.byClass[label(m, "code_class")] += m.GetCounter().GetValue()
			}
		}
	}
	if mf := mfs[durationMetric]; mf != nil {
		for _, m := range mf.GetMetric() {
			if label(m, "listener") != listener || m.GetHistogram() == nil {
				continue
			}
			h := m.GetHistogram()
			for _, b := range h.GetBucket() {
				if math.IsInf(b.GetUpperBound(), 1) {
					continue
				}
				s.buckets = append(s.buckets, bucket{UpperBound: b.GetUpperBound(), Count: float64(b.GetCumulativeCount())})
			}
			// The text format's +Inf bucket is folded into the sample count.
			s.buckets = append(s.buckets, bucket{UpperBound: math.Inf(1), Count: float64(h.GetSampleCount())})
		}
	}
	s.buckets = mergeBuckets(s.buckets)
	return s, nil
}

// label is the value of m's label name, "" when absent.
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// mergeBuckets sums buckets with the same bound and sorts them by bound.
func mergeBuckets(in []bucket) []bucket {
	by := map[float64]float64{}
	for _, b := range in {
		by[b.UpperBound] += b.Count
	}
	out := make([]bucket, 0, len(by))
	for ub, n := range by {
		out = append(out, bucket{UpperBound: ub, Count: n})
	}
	slices.SortFunc(out, func(a, b bucket) int { return compareFloat(a.UpperBound, b.UpperBound) })
	return out
}

func compareFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// delta is now minus before, or false when a counter went down (the
// sidecar restarted) and the difference means nothing.
func delta(before, now sample) (sample, bool) {
	d := sample{byClass: map[string]float64{}}
	for class, n := range now.byClass {
		v := n - before.byClass[class]
		if v < 0 {
			return sample{}, false
		}
		d.byClass[class] = v
	}
	for class := range before.byClass {
		if _, ok := now.byClass[class]; !ok {
			return sample{}, false
		}
	}
	prev := map[float64]float64{}
	for _, b := range before.buckets {
		prev[b.UpperBound] = b.Count
	}
	for _, b := range now.buckets {
		v := b.Count - prev[b.UpperBound]
		if v < 0 {
			return sample{}, false
		}
		d.buckets = append(d.buckets, bucket{UpperBound: b.UpperBound, Count: v})
	}
	return d, true
}

// quantile estimates the q-quantile (0 <= q <= 1) of cumulative buckets
// sorted by bound with +Inf last, the way Prometheus' histogram_quantile
// does: linear interpolation inside the bucket the rank falls in, 0 as the
// first bucket's lower bound, and the highest finite bound when the rank
// falls in +Inf. ok is false without observations or with a q out of range.
func quantile(q float64, buckets []bucket) (v float64, ok bool) {
	if q < 0 || q > 1 || math.IsNaN(q) || len(buckets) == 0 {
		return 0, false
	}
	total := buckets[len(buckets)-1].Count
	if total <= 0 || !math.IsInf(buckets[len(buckets)-1].UpperBound, 1) {
		return 0, false
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, b := range buckets {
		if b.Count >= rank && b.Count > below {
			if math.IsInf(b.UpperBound, 1) {
				if i == 0 {
					return 0, false
				}
				return buckets[i-1].UpperBound, true
			}
			return lower + (b.UpperBound-lower)*(rank-below)/(b.Count-below), true
		}
		lower, below = b.UpperBound, b.Count
	}
	return lower, true
}
