package lb

import (
	"fmt"
	"sync"
	"testing"
)

func hosts(weights ...uint32) []*Host {
	hs := make([]*Host, len(weights))
	for i, w := range weights {
		hs[i] = NewHost(fmt.Sprintf("127.0.0.1:%d", 8000+i), w)
	}
	return hs
}

func TestRoundRobinDistribution(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
		down    []int // indexes made unavailable
		want    []int // picks per host over `cycles` full cycles
	}{
		{name: "equal", weights: []uint32{1, 1, 1}, want: []int{1, 1, 1}},
		{name: "weighted", weights: []uint32{5, 1, 1}, want: []int{5, 1, 1}},
		{name: "zero means one", weights: []uint32{0, 3}, want: []int{1, 3}},
		{name: "skips unavailable", weights: []uint32{2, 3, 4}, down: []int{1}, want: []int{2, 0, 4}},
		{name: "single", weights: []uint32{7}, want: []int{1}},
		{name: "single down", weights: []uint32{7}, down: []int{0}, want: []int{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := hosts(tt.weights...)
			for _, i := range tt.down {
				hs[i].SetFlag(FailedActiveHC, true)
			}
			rr := NewRoundRobin(hs)
			cycle := 0
			for _, n := range tt.want {
				cycle += n
			}
			if cycle == 0 {
				if h := rr.Pick(nil); h != nil {
					t.Fatalf("Pick() = %s, want nil", h.Address)
				}
				return
			}
			const cycles = 10
			for c := 0; c < cycles; c++ {
				got := make([]int, len(hs))
				for i := 0; i < cycle; i++ {
					h := rr.Pick(nil)
					if h == nil {
						t.Fatal("Pick() = nil")
					}
					for j := range hs {
						if hs[j] == h {
							got[j]++
						}
					}
				}
				for j := range got {
					if got[j] != tt.want[j] {
						t.Fatalf("cycle %d: picks %v, want %v", c, got, tt.want)
					}
				}
			}
		})
	}
}

func TestRoundRobinSmooth(t *testing.T) {
	// nginx's documented sequence for weights 5,1,1: a a b a c a a.
	hs := hosts(5, 1, 1)
	rr := NewRoundRobin(hs)
	want := []int{0, 0, 1, 0, 2, 0, 0}
	for i, w := range want {
		if h := rr.Pick(nil); h != hs[w] {
			t.Fatalf("pick %d = %s, want %s", i, h.Address, hs[w].Address)
		}
	}
}

func TestRoundRobinEmpty(t *testing.T) {
	if h := NewRoundRobin(nil).Pick(nil); h != nil {
		t.Fatalf("Pick() = %v, want nil", h)
	}
}

func TestRoundRobinRecovers(t *testing.T) {
	hs := hosts(1, 1)
	rr := NewRoundRobin(hs)
	hs[0].SetFlag(FailedOutlierCheck, true)
	for i := 0; i < 4; i++ {
		if h := rr.Pick(nil); h != hs[1] {
			t.Fatalf("pick %d with host 0 ejected = %s", i, h.Address)
		}
	}
	hs[0].SetFlag(FailedOutlierCheck, false)
	seen := map[*Host]int{}
	for i := 0; i < 4; i++ {
		seen[rr.Pick(nil)]++
	}
	if seen[hs[0]] != 2 || seen[hs[1]] != 2 {
		t.Fatalf("after recovery picks = %d/%d, want 2/2", seen[hs[0]], seen[hs[1]])
	}
}

func TestRoundRobinConcurrent(t *testing.T) {
	hs := hosts(3, 2, 1)
	rr := NewRoundRobin(hs)
	const workers, perWorker = 8, 600 // 4800 picks = 800 full cycles
	counts := make([][]int, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		counts[w] = make([]int, len(hs))
		wg.Add(1)
		go func(c []int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				h := rr.Pick(nil)
				for j := range hs {
					if hs[j] == h {
						c[j]++
					}
				}
			}
		}(counts[w])
	}
	wg.Wait()
	total := make([]int, len(hs))
	for _, c := range counts {
		for j := range c {
			total[j] += c[j]
		}
	}
	want := []int{2400, 1600, 800}
	for j := range want {
		if total[j] != want[j] {
			t.Fatalf("picks %v, want %v", total, want)
		}
	}
}

func TestHealthString(t *testing.T) {
	h := NewHost("127.0.0.1:1", 1)
	if got := h.HealthString(); got != "healthy" {
		t.Fatalf("HealthString() = %q", got)
	}
	h.SetFlag(FailedActiveHC, true)
	h.SetFlag(FailedOutlierCheck, true)
	if got, want := h.HealthString(), "/failed_active_hc/failed_outlier_check"; got != want {
		t.Fatalf("HealthString() = %q, want %q", got, want)
	}
	if h.Healthy() {
		t.Fatal("Healthy() = true with flags set")
	}
}

func BenchmarkRoundRobinPick(b *testing.B) {
	for _, n := range []int{1, 3, 16} {
		ws := make([]uint32, n)
		for i := range ws {
			ws[i] = uint32(i + 1)
		}
		rr := NewRoundRobin(hosts(ws...))
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if rr.Pick(nil) == nil {
					b.Fatal("nil")
				}
			}
		})
		b.Run(fmt.Sprintf("hosts=%d/parallel", n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if rr.Pick(nil) == nil {
						b.Fatal("nil")
					}
				}
			})
		})
	}
}

func TestSetFlagCountsChanges(t *testing.T) {
	h := NewHost("127.0.0.1:1", 1)
	steps := []struct {
		f    HealthFlag
		on   bool
		bump bool
	}{
		{FailedActiveHC, true, true},
		{FailedActiveHC, true, false},
		{FailedOutlierCheck, false, false},
		{FailedActiveHC | FailedOutlierCheck, true, true}, // one of two new
		{FailedActiveHC | FailedOutlierCheck, false, true},
		{FailedActiveHC, false, false},
	}
	for i, s := range steps {
		before := h.version.Load()
		h.SetFlag(s.f, s.on)
		if bumped := h.version.Load() != before; bumped != s.bump {
			t.Fatalf("step %d: SetFlag(%v, %v) bumped = %v, want %v", i, s.f, s.on, bumped, s.bump)
		}
	}
	before := h.version.Load()
	h.SetWeight(1)
	h.SetWeight(0) // 0 means 1
	if h.version.Load() != before {
		t.Fatal("SetWeight to the same weight counted as a change")
	}
	h.SetWeight(2)
	if h.version.Load() == before {
		t.Fatal("SetWeight(2) not counted")
	}
}
