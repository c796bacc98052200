package report

import (
	"slices"
	"time"
)

// Spread is a median with the range it came from.
type Spread struct {
	Median, Min, Max float64
	N                int
}

// SpreadOf summarises repetitions. The median of an even count is the mean
// of the middle two.
func SpreadOf(vs []float64) Spread {
	if len(vs) == 0 {
		return Spread{}
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return Spread{Median: med, Min: s[0], Max: s[n-1], N: n}
}

// Key picks the runs that repeat each other.
type Key struct {
	Scenario, Target, Mode string
	Rate                   float64
}

// Summary is the repetitions of one Key.
type Summary struct {
	Key
	Throughput, P50, P90, P99, P999 Spread
	CPUPer10k, PeakRSS              Spread
	SendLagP99                      Spread
	Failed                          int64
	Requests                        int64
	Errors                          []string
}

// Summarise groups measurements by Key, in first-seen order.
func Summarise(ms []Measurement) []Summary {
	var order []Key
	groups := map[Key][]Measurement{}
	for _, m := range ms {
		k := Key{m.Scenario, m.Target, m.Mode, m.Rate}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], m)
	}
	out := make([]Summary, 0, len(order))
	for _, k := range order {
		g := groups[k]
		s := Summary{Key: k}
		pick := func(f func(Measurement) float64) Spread {
			vs := make([]float64, len(g))
			for i, m := range g {
				vs[i] = f(m)
			}
			return SpreadOf(vs)
		}
		dur := func(d func(Measurement) time.Duration) func(Measurement) float64 {
			return func(m Measurement) float64 { return float64(d(m)) }
		}
		s.Throughput = pick(func(m Measurement) float64 { return m.Throughput })
		s.P50 = pick(dur(func(m Measurement) time.Duration { return m.P50 }))
		s.P90 = pick(dur(func(m Measurement) time.Duration { return m.P90 }))
		s.P99 = pick(dur(func(m Measurement) time.Duration { return m.P99 }))
		s.P999 = pick(dur(func(m Measurement) time.Duration { return m.P999 }))
		s.SendLagP99 = pick(dur(func(m Measurement) time.Duration { return m.SendLagP99 }))
		s.CPUPer10k = pick(Measurement.CPUPer10k)
		s.PeakRSS = pick(func(m Measurement) float64 { return float64(m.PeakRSS) })
		for _, m := range g {
			s.Failed += m.Failed
			s.Requests += m.OK + m.Failed
			if m.Errors != "" && !slices.Contains(s.Errors, m.Errors) {
				s.Errors = append(s.Errors, m.Errors)
			}
		}
		out = append(out, s)
	}
	return out
}

// Find returns the summary for k.
func Find(ss []Summary, k Key) (Summary, bool) {
	for _, s := range ss {
		if s.Key == k {
			return s, true
		}
	}
	return Summary{}, false
}
