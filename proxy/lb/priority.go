package lb

// This file is Envoy's priority-level arithmetic (LoadBalancerBase:
// recalculatePerPriorityState, recalculatePerPriorityPanic,
// recalculateLoadInTotalPanic), over plain host counts. Degraded hosts do
// not exist here, so Envoy's second (degraded) pass is left out.

// levelCount is one priority level's host counts.
type levelCount struct {
	healthy, total int
}

// priorityLoads returns, per level, its health (percent of healthy hosts ×
// the overprovisioning factor, capped at 100), its load (the percent of
// requests it receives; the loads add up to 100 when there is any level)
// and whether it is in panic mode (balancing over all its hosts).
//
// Loads go to levels in priority order, each taking its health scaled by
// the normalized total health (the sum of healths capped at 100), so load
// spills down as higher levels lose hosts. Panic is decided per level from
// its healthy percentage, but only while the normalized total health is
// below 100: as long as lower levels can absorb the load no level panics.
// When every level is in panic, load is shared by host count instead.
func priorityLoads(counts []levelCount, overprovisioning uint32, panicThreshold float64) (health, load []uint32, inPanic []bool) {
	n := len(counts)
	health, load, inPanic = make([]uint32, n), make([]uint32, n), make([]bool, n)
	if n == 0 {
		return health, load, inPanic
	}
	var sum uint32
	for i, c := range counts {
		if c.total > 0 {
			health[i] = uint32(min(100, uint64(overprovisioning)*uint64(c.healthy)/uint64(c.total)))
		}
		sum += health[i]
	}
	normTotal := min(sum, 100)
	if normTotal > 0 {
		remaining := uint32(100)
		first := -1
		for i := range counts {
			if first < 0 && health[i] > 0 {
				first = i
			}
			load[i] = min(remaining, health[i]*100/normTotal)
			remaining -= load[i]
		}
		// Integer rounding leaves a few percent: the first level with
		// any health takes them.
		load[first] += remaining
	}

	if panicThreshold == 0 && normTotal == 0 {
		// Panic disabled and nothing healthy: the loads must still add
		// up to 100, and P0 will find no host.
		load[0] = 100
		return health, load, inPanic
	}
	all := true
	for i, c := range counts {
		if normTotal < 100 {
			pct := 0.0
			if c.total > 0 {
				pct = 100 * float64(c.healthy) / float64(c.total)
			}
			inPanic[i] = pct < panicThreshold
		}
		all = all && inPanic[i]
	}
	if all {
		totalPanicLoads(counts, load)
	}
	return health, load, inPanic
}

// totalPanicLoads shares the load by each level's number of hosts,
// healthy or not, for when every level is in panic.
func totalPanicLoads(counts []levelCount, load []uint32) {
	hosts := 0
	for _, c := range counts {
		hosts += c.total
	}
	clear(load)
	if hosts == 0 {
		load[0] = 100
		return
	}
	remaining := uint32(100)
	first := -1
	for i, c := range counts {
		if first < 0 && c.total > 0 {
			first = i
		}
		load[i] = uint32(100 * c.total / hosts)
		remaining -= load[i]
	}
	load[first] += remaining
}
