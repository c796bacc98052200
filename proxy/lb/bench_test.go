package lb

import (
	"flag"
	"fmt"
	"testing"
	"time"
)

var benchBigRings = flag.Bool("lb.bigrings", false, "BenchmarkRebuild: also rebuild 1M and 8M-entry rings and a 5000011-entry maglev table (seconds each)")

func benchHosts(n int, weighted bool) []*Host {
	hs := make([]*Host, n)
	for i := range hs {
		w := uint32(1)
		if weighted {
			w = uint32(i%4 + 1)
		}
		hs[i] = NewHost(fmt.Sprintf("10.1.%d.%d:8080", i/250, i%250+1), w)
	}
	return hs
}

// BenchmarkPick is one pick through New's balancer for every policy, over
// 3 and 100 hosts (equal and unequal weights), serial and parallel.
func BenchmarkPick(b *testing.B) {
	for _, pol := range allPolicies {
		for _, n := range []int{3, 100} {
			for _, weighted := range []bool{false, true} {
				if weighted && pol == PeakEWMAPolicy {
					continue // weights only scale its cost
				}
				hs := benchHosts(n, weighted)
				for i, h := range hs {
					h.ObserveLatency(durationFor(i))
				}
				p := mustNew(b, Config{Policy: pol}, one(hs...))
				name := fmt.Sprintf("%v/hosts=%d", pol, n)
				if weighted {
					name += "/weighted"
				}
				b.Run(name, func(b *testing.B) {
					b.ReportAllocs()
					r := Request{HasHash: true}
					for b.Loop() {
						r.Hash += 0x9e3779b97f4a7c15
						if p.Pick(&r) == nil {
							b.Fatal("nil")
						}
					}
				})
				b.Run(name+"/parallel", func(b *testing.B) {
					b.ReportAllocs()
					b.RunParallel(func(pb *testing.PB) {
						r := Request{HasHash: true}
						for pb.Next() {
							r.Hash += 0x9e3779b97f4a7c15
							if p.Pick(&r) == nil {
								b.Fatal("nil")
							}
						}
					})
				})
			}
		}
	}
}

func durationFor(i int) time.Duration { return time.Duration(i%7+1) * time.Millisecond }

// BenchmarkPickRetry is a pick whose first choice the retry predicate
// rejects half the time.
func BenchmarkPickRetry(b *testing.B) {
	hs := benchHosts(3, false)
	p := mustNew(b, Config{Policy: RoundRobinPolicy}, one(hs...))
	r := &Request{Tried: hs[:1], MaxAttempts: 2}
	b.ReportAllocs()
	for b.Loop() {
		if p.Pick(r) == hs[0] {
			b.Fatal("picked the tried host")
		}
	}
}

// BenchmarkRebuild is the cost of a health flip: the next pick recomputes
// the levels and rebuilds the policy's table over 100 hosts.
func BenchmarkRebuild(b *testing.B) {
	type tc struct {
		name string
		cfg  Config
	}
	cases := []tc{
		{"ROUND_ROBIN", Config{}},
		{"LEAST_REQUEST/weighted", Config{Policy: LeastRequestPolicy}},
		{"RING_HASH/ring=1024", Config{Policy: RingHashPolicy}},
		{"RING_HASH/ring=65536", Config{Policy: RingHashPolicy, MinRingSize: 1 << 16}},
		{"MAGLEV/table=65537", Config{Policy: MaglevPolicy}},
	}
	if *benchBigRings {
		cases = append(cases,
			tc{"RING_HASH/ring=1M", Config{Policy: RingHashPolicy, MinRingSize: 1 << 20}},
			tc{"RING_HASH/ring=8M", Config{Policy: RingHashPolicy, MinRingSize: 8 << 20}},
			tc{"MAGLEV/table=5000011", Config{Policy: MaglevPolicy, TableSize: MaxTableSize}},
		)
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			hs := benchHosts(100, c.cfg.Policy == LeastRequestPolicy)
			p := mustNew(b, c.cfg, one(hs...))
			in := p
			b.ReportAllocs()
			down := false
			for b.Loop() {
				down = !down
				hs[0].SetFlag(FailedActiveHC, down)
				if p.Pick(nil) == nil {
					b.Fatal("nil")
				}
			}
			if r := in.State().Rebuilds; r < uint64(b.N) {
				b.Fatalf("%d rebuilds for %d flips", r, b.N)
			}
		})
	}
}
