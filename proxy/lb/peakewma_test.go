package lb

import (
	"math"
	"testing"
	"testing/synctest"
	"time"
)

func near(got, want time.Duration, tol float64) bool {
	return math.Abs(float64(got-want)) <= tol*float64(want)
}

func TestLatencyEstimate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := NewHost("127.0.0.1:1", 1)
		def := float64(DefaultRTT)
		if got := h.latency.read(nanotime(), def); got != def {
			t.Fatalf("no sample: read %v, want the default %v", time.Duration(got), DefaultRTT)
		}
		h.ObserveLatency(300 * time.Millisecond)
		if got := h.LatencyEstimate(); got != 300*time.Millisecond {
			t.Fatalf("first sample: estimate %v", got)
		}
		// A lower sample 1s later moves the estimate by 1-e^(-1/10).
		time.Sleep(time.Second)
		h.ObserveLatency(30 * time.Millisecond)
		w := math.Exp(-0.1)
		want := time.Duration(300e6*w + 30e6*(1-w)) // ≈ 274ms
		if got := h.LatencyEstimate(); !near(got, want, 1e-6) {
			t.Fatalf("after a lower sample: estimate %v, want %v", got, want)
		}
		// A lower sample at the same instant does not move it.
		h.ObserveLatency(time.Millisecond)
		if got := h.LatencyEstimate(); !near(got, want, 1e-6) {
			t.Fatalf("same instant: estimate %v, want %v", got, want)
		}
		// A higher one replaces it at once: the peak.
		h.ObserveLatency(500 * time.Millisecond)
		if got := h.LatencyEstimate(); got != 500*time.Millisecond {
			t.Fatalf("peak: estimate %v", got)
		}
		// Idle for one time constant: read decays toward the default.
		time.Sleep(DefaultDecay)
		got := time.Duration(h.latency.read(nanotime(), def))
		want = time.Duration(def + (500e6-def)*math.Exp(-1))
		if !near(got, want, 1e-6) {
			t.Fatalf("after 10s idle: read %v, want %v", got, want)
		}
		// An estimate below the default reads as is.
		fast := NewHost("127.0.0.1:2", 1)
		fast.ObserveLatency(time.Millisecond)
		time.Sleep(time.Minute)
		if got := fast.latency.read(nanotime(), def); got != 1e6 {
			t.Fatalf("fast host after a minute: read %v", time.Duration(got))
		}
	})
}

func TestLatencyDecayFromConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := NewHost("127.0.0.1:1", 1)
		mustNew(t, Config{Policy: PeakEWMAPolicy, Decay: time.Second}, one(h))
		h.ObserveLatency(100 * time.Millisecond)
		time.Sleep(time.Second)
		h.ObserveLatency(0) // counts as 1ns
		want := time.Duration(100e6*math.Exp(-1) + (1 - math.Exp(-1)))
		if got := h.LatencyEstimate(); !near(got, want, 1e-6) {
			t.Fatalf("decay 1s: estimate %v, want %v", got, want)
		}
	})
}

// A host ten times slower than the others gets well under its fair share.
func TestPeakEWMAAvoidsSlowHost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hs := hosts(1, 1, 1, 1, 1)
		lat := func(h *Host) time.Duration {
			if h == hs[0] {
				return 300 * time.Millisecond
			}
			return 30 * time.Millisecond
		}
		p := mustNew(t, Config{Policy: PeakEWMAPolicy}, one(hs...))
		const n = 5000
		got := make(map[*Host]int)
		for range n {
			h := p.Pick(nil)
			got[h]++
			h.ObserveLatency(lat(h))
			time.Sleep(5 * time.Millisecond)
		}
		fair := 1.0 / float64(len(hs))
		if share := float64(got[hs[0]]) / n; share > fair/2 {
			t.Fatalf("slow host share %.4f, want < %.2f (all: %v)", share, fair/2, shares(hs, got, n))
		}
		t.Logf("slow host share %.4f (fair %.2f)", float64(got[hs[0]])/n, fair)
	})
}

// Load counts too: with equal latency, a host with requests in flight
// loses comparisons.
func TestPeakEWMABusyHost(t *testing.T) {
	hs := hosts(1, 1, 1)
	for _, h := range hs {
		h.ObserveLatency(10 * time.Millisecond)
	}
	hs[0].Stats.RqActive.Store(3)
	p := mustNew(t, Config{Policy: PeakEWMAPolicy}, one(hs...))
	got := pickCounts(t, p, 3000, nil)
	if got[hs[0]] != 0 {
		// Two distinct choices out of three: the busy host always loses.
		t.Fatalf("busy host picked %d times", got[hs[0]])
	}
}
