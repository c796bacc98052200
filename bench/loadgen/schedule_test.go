package loadgen

import (
	"math"
	"testing"
	"time"
)

func TestNewSchedule(t *testing.T) {
	start := time.Unix(1000, 0)
	tests := []struct {
		name         string
		rate         float64
		duration     time.Duration
		max          int64
		wantCount    int64
		wantInterval time.Duration
		wantErr      bool
	}{
		{name: "1k per second for 2s", rate: 1000, duration: 2 * time.Second, wantCount: 2000, wantInterval: time.Millisecond},
		{name: "capped by max", rate: 1000, duration: 2 * time.Second, max: 10, wantCount: 10, wantInterval: time.Millisecond},
		{name: "rounds half up", rate: 1000, duration: 1500 * time.Microsecond, wantCount: 2, wantInterval: time.Millisecond},
		{name: "at least one", rate: 1, duration: time.Millisecond, wantCount: 1, wantInterval: time.Second},
		{name: "fractional rate", rate: 3, duration: time.Second, wantCount: 3, wantInterval: 333333333},
		{name: "zero rate", rate: 0, duration: time.Second, wantErr: true},
		{name: "negative rate", rate: -5, duration: time.Second, wantErr: true},
		{name: "NaN rate", rate: math.NaN(), duration: time.Second, wantErr: true},
		{name: "infinite rate", rate: math.Inf(1), duration: time.Second, wantErr: true},
		{name: "rate beyond nanoseconds", rate: 2e9, duration: time.Second, wantErr: true},
		{name: "zero duration", rate: 10, duration: 0, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSchedule(start, tt.rate, tt.duration, tt.max)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if s.Count != tt.wantCount || s.Interval != tt.wantInterval {
				t.Errorf("count, interval = %d, %v; want %d, %v", s.Count, s.Interval, tt.wantCount, tt.wantInterval)
			}
		})
	}
}

func TestScheduleTimes(t *testing.T) {
	start := time.Unix(1000, 0)
	s, err := NewSchedule(start, 4000, time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.At(0); !got.Equal(start) {
		t.Errorf("At(0) = %v, want the start", got)
	}
	if got, want := s.At(4), start.Add(time.Millisecond); !got.Equal(want) {
		t.Errorf("At(4) = %v, want %v", got, want)
	}
	if got, want := s.End(), start.Add(3999*250*time.Microsecond); !got.Equal(want) {
		t.Errorf("End() = %v, want %v", got, want)
	}
	if got := s.Rate(); math.Abs(got-4000) > 1e-9 {
		t.Errorf("Rate() = %v, want 4000", got)
	}
	// Slots are evenly spaced: no drift accumulates over a long run.
	long, _ := NewSchedule(start, 3, time.Hour, 0)
	if got, want := long.At(long.Count-1).Sub(start), time.Duration(long.Count-1)*333333333; got != want {
		t.Errorf("last slot offset = %v, want %v", got, want)
	}
}
