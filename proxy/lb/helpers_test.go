package lb

import (
	"math"
	"math/rand/v2"
	"testing"
)

// one is a single priority with a single locality over hs.
func one(hs ...*Host) []Priority {
	return []Priority{{Localities: []Locality{{Name: "z", Hosts: hs}}}}
}

func mustNew(t testing.TB, cfg Config, levels []Priority) Balancer {
	t.Helper()
	p, err := New(cfg, levels)
	if err != nil {
		t.Fatalf("New(%v): %v", cfg.Policy, err)
	}
	return p
}

// pickCounts makes n picks, each with the request req returns (nil
// allowed), and counts them per host; nil picks count under nil.
func pickCounts(t testing.TB, p Picker, n int, req func(i int) *Request) map[*Host]int {
	t.Helper()
	got := make(map[*Host]int)
	for i := range n {
		var r *Request
		if req != nil {
			r = req(i)
		}
		got[p.Pick(r)]++
	}
	return got
}

// randomHash returns requests with hashes from a seeded source.
func randomHash(seed uint64) func(int) *Request {
	src := rand.New(rand.NewPCG(seed, seed))
	return func(int) *Request { return &Request{Hash: src.Uint64(), HasHash: true} }
}

// checkShares fails unless each host's share of n picks is within tol of
// want (shares that add up to 1).
func checkShares(t testing.TB, hs []*Host, got map[*Host]int, n int, want []float64, tol float64) {
	t.Helper()
	for i, h := range hs {
		share := float64(got[h]) / float64(n)
		if math.Abs(share-want[i]) > tol {
			t.Errorf("host %d: share %.4f, want %.4f ± %.4f (all: %v)", i, share, want[i], tol, shares(hs, got, n))
		}
	}
}

func shares(hs []*Host, got map[*Host]int, n int) []float64 {
	s := make([]float64, len(hs))
	for i, h := range hs {
		s[i] = math.Round(float64(got[h])/float64(n)*1e4) / 1e4
	}
	return s
}

var allPolicies = []Policy{RoundRobinPolicy, LeastRequestPolicy, RandomPolicy, RingHashPolicy, MaglevPolicy, PeakEWMAPolicy}
