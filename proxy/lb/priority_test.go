package lb

import (
	"slices"
	"testing"
)

func TestPriorityLoads(t *testing.T) {
	tests := []struct {
		name      string
		counts    []levelCount
		threshold float64
		health    []uint32
		load      []uint32
		panic     []bool
	}{
		// Envoy's "priority levels" table: 2 levels, P1 fully healthy.
		{name: "100%", counts: []levelCount{{100, 100}, {100, 100}}, threshold: 50, health: []uint32{100, 100}, load: []uint32{100, 0}},
		{name: "72%", counts: []levelCount{{72, 100}, {100, 100}}, threshold: 50, health: []uint32{100, 100}, load: []uint32{100, 0}},
		{name: "71%", counts: []levelCount{{71, 100}, {100, 100}}, threshold: 50, health: []uint32{99, 100}, load: []uint32{99, 1}},
		{name: "50%", counts: []levelCount{{50, 100}, {100, 100}}, threshold: 50, health: []uint32{70, 100}, load: []uint32{70, 30}},
		{name: "25%", counts: []levelCount{{25, 100}, {100, 100}}, threshold: 50, health: []uint32{35, 100}, load: []uint32{35, 65}},
		{name: "0%", counts: []levelCount{{0, 100}, {100, 100}}, threshold: 50, health: []uint32{0, 100}, load: []uint32{0, 100}},
		// Three levels whose health adds up to less than 100: normalized,
		// the rounding remainder to the first healthy level.
		{name: "20/20/20", counts: []levelCount{{2, 10}, {2, 10}, {2, 10}}, threshold: 0, health: []uint32{28, 28, 28}, load: []uint32{34, 33, 33}},
		{name: "20/20/100", counts: []levelCount{{2, 10}, {2, 10}, {10, 10}}, threshold: 50, health: []uint32{28, 28, 100}, load: []uint32{28, 28, 44}},
		// Envoy's panic table (threshold 50).
		{name: "panic 50/60", counts: []levelCount{{50, 100}, {60, 100}}, threshold: 50, health: []uint32{70, 84}, load: []uint32{70, 30}},
		{name: "panic 25/25 total", counts: []levelCount{{25, 100}, {25, 100}}, threshold: 50, health: []uint32{35, 35}, load: []uint32{50, 50}, panic: []bool{true, true}},
		// 5%/65%: Envoy's doc rounds to 7/93; its code (and ours) gives
		// the remainder to P0.
		{name: "panic 5/65", counts: []levelCount{{5, 100}, {65, 100}}, threshold: 50, health: []uint32{7, 91}, load: []uint32{8, 92}, panic: []bool{true, false}},
		// Total panic shares by host count.
		{name: "all down", counts: []levelCount{{0, 4}, {0, 6}}, threshold: 50, health: []uint32{0, 0}, load: []uint32{40, 60}, panic: []bool{true, true}},
		{name: "all down uneven", counts: []levelCount{{0, 1}, {0, 1}, {0, 1}}, threshold: 50, health: []uint32{0, 0, 0}, load: []uint32{34, 33, 33}, panic: []bool{true, true, true}},
		{name: "empty level first", counts: []levelCount{{0, 0}, {0, 3}}, threshold: 50, health: []uint32{0, 0}, load: []uint32{0, 100}, panic: []bool{true, true}},
		{name: "no hosts at all", counts: []levelCount{{0, 0}}, threshold: 50, health: []uint32{0}, load: []uint32{100}, panic: []bool{true}},
		// Panic disabled: no level panics, P0 takes the load when
		// nothing is healthy.
		{name: "disabled, all down", counts: []levelCount{{0, 4}, {0, 6}}, threshold: 0, health: []uint32{0, 0}, load: []uint32{100, 0}},
		{name: "disabled, 10%", counts: []levelCount{{1, 10}}, threshold: 0, health: []uint32{14}, load: []uint32{100}},
		{name: "single level 30%", counts: []levelCount{{3, 10}}, threshold: 50, health: []uint32{42}, load: []uint32{100}, panic: []bool{true}},
		{name: "single level 60%", counts: []levelCount{{6, 10}}, threshold: 50, health: []uint32{84}, load: []uint32{100}},
		{name: "none", counts: nil, threshold: 50, health: []uint32{}, load: []uint32{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			health, load, panic := priorityLoads(tt.counts, 140, tt.threshold)
			wantPanic := tt.panic
			if wantPanic == nil {
				wantPanic = make([]bool, len(tt.counts))
			}
			if !slices.Equal(health, tt.health) || !slices.Equal(load, tt.load) || !slices.Equal(panic, wantPanic) {
				t.Fatalf("health %v load %v panic %v, want %v %v %v", health, load, panic, tt.health, tt.load, wantPanic)
			}
		})
	}
}

func TestPriorityLoadsOverprovisioning(t *testing.T) {
	// Factor 100: health is the plain healthy percentage.
	health, load, _ := priorityLoads([]levelCount{{80, 100}, {100, 100}}, 100, 50)
	if !slices.Equal(health, []uint32{80, 100}) || !slices.Equal(load, []uint32{80, 20}) {
		t.Fatalf("health %v load %v", health, load)
	}
}
