package lb

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// The distributions every policy gives over equal and unequal weights,
// through New with one priority and one locality.
func TestPolicyDistribution(t *testing.T) {
	const n = 40000
	tests := []struct {
		policy  Policy
		weights []uint32
		want    []float64
		tol     float64
	}{
		{RoundRobinPolicy, []uint32{1, 1, 1, 1}, []float64{.25, .25, .25, .25}, 0},
		{RoundRobinPolicy, []uint32{1, 2, 3, 4}, []float64{.1, .2, .3, .4}, 0},
		{LeastRequestPolicy, []uint32{1, 1, 1, 1}, []float64{.25, .25, .25, .25}, .02},
		{LeastRequestPolicy, []uint32{1, 2, 3, 4}, []float64{.1, .2, .3, .4}, .001}, // EDF: exact
		{RandomPolicy, []uint32{1, 1, 1, 1}, []float64{.25, .25, .25, .25}, .02},
		{RandomPolicy, []uint32{1, 2, 3, 4}, []float64{.1, .2, .3, .4}, .02},
		{RingHashPolicy, []uint32{1, 1, 1, 1}, []float64{.25, .25, .25, .25}, .05},
		{RingHashPolicy, []uint32{1, 2, 3, 4}, []float64{.1, .2, .3, .4}, .05},
		{MaglevPolicy, []uint32{1, 1, 1, 1}, []float64{.25, .25, .25, .25}, .02},
		{MaglevPolicy, []uint32{1, 2, 3, 4}, []float64{.1, .2, .3, .4}, .02},
		{PeakEWMAPolicy, []uint32{1, 1, 1, 1}, []float64{.25, .25, .25, .25}, .02},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%v", tt.policy, tt.weights), func(t *testing.T) {
			hs := hosts(tt.weights...)
			p := mustNew(t, Config{Policy: tt.policy}, one(hs...))
			var req func(int) *Request
			if tt.policy.hashed() {
				req = randomHash(1)
			}
			got := pickCounts(t, p, n, req)
			checkShares(t, hs, got, n, tt.want, tt.tol)
		})
	}
}

// Hash policies without a hash pick at random, in proportion to weight.
func TestHashPolicyWithoutHash(t *testing.T) {
	for _, pol := range []Policy{RingHashPolicy, MaglevPolicy} {
		t.Run(pol.String(), func(t *testing.T) {
			hs := hosts(1, 3)
			p := mustNew(t, Config{Policy: pol}, one(hs...))
			const n = 20000
			got := pickCounts(t, p, n, nil)
			checkShares(t, hs, got, n, []float64{.25, .75}, .05)
		})
	}
}

func TestHashPolicyConsistency(t *testing.T) {
	for _, pol := range []Policy{RingHashPolicy, MaglevPolicy} {
		t.Run(pol.String(), func(t *testing.T) {
			hs := hosts(1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
			p := mustNew(t, Config{Policy: pol}, one(hs...))
			// The same key, the same host, every time and in a second
			// balancer built over the same hosts listed in another order.
			rev := make([]*Host, len(hs))
			for i, h := range hs {
				rev[len(hs)-1-i] = h
			}
			q := mustNew(t, Config{Policy: pol}, one(rev...))
			src := rand.New(rand.NewPCG(7, 7))
			for range 1000 {
				r := &Request{Hash: src.Uint64(), HasHash: true}
				h := p.Pick(r)
				for range 3 {
					if again := p.Pick(r); again != h {
						t.Fatalf("hash %x: %s then %s", r.Hash, h.Address, again.Address)
					}
				}
				if other := q.Pick(r); other != h {
					t.Fatalf("hash %x: %s, %s with hosts reversed", r.Hash, h.Address, other.Address)
				}
			}
		})
	}
}

// Removing one of ten hosts (here: it fails its health check, so the
// balancer rebuilds) moves about a tenth of the keys.
func TestHashPolicyDisruption(t *testing.T) {
	const hostsN, keys = 10, 10000
	for _, tt := range []struct {
		policy     Policy
		maxMoved   float64 // of all keys
		maxStrayed float64 // of keys whose host stayed
	}{
		// Envoy sizes the ring by the lightest host's share, so nine hosts
		// get more points each than ten did, and some keys move between
		// hosts that stayed. Measured: 8%.
		{RingHashPolicy, 2.0 / hostsN, .15},
		{MaglevPolicy, 2.5 / hostsN, .05},
	} {
		t.Run(tt.policy.String(), func(t *testing.T) {
			hs := make([]*Host, hostsN)
			for i := range hs {
				hs[i] = NewHost(fmt.Sprintf("10.0.0.%d:8080", i+1), 1)
			}
			p := mustNew(t, Config{Policy: tt.policy}, one(hs...))
			src := rand.New(rand.NewPCG(3, 3))
			hashes := make([]uint64, keys)
			before := make([]*Host, keys)
			for i := range hashes {
				hashes[i] = src.Uint64()
				before[i] = p.Pick(&Request{Hash: hashes[i], HasHash: true})
			}
			gone := hs[3]
			gone.SetFlag(FailedActiveHC, true)
			moved, stayedHost, strayed := 0, 0, 0
			for i, hash := range hashes {
				after := p.Pick(&Request{Hash: hash, HasHash: true})
				if after == gone {
					t.Fatalf("key %d still goes to the removed host", i)
				}
				if after != before[i] {
					moved++
				}
				if before[i] != gone {
					stayedHost++
					if after != before[i] {
						strayed++
					}
				}
			}
			movedFrac, strayedFrac := float64(moved)/keys, float64(strayed)/float64(stayedHost)
			t.Logf("%v: moved %.4f of keys (1/N = %.2f), %.4f of keys whose host stayed", tt.policy, movedFrac, 1.0/hostsN, strayedFrac)
			if movedFrac > tt.maxMoved || movedFrac < 0.5/hostsN {
				t.Errorf("moved %.4f of keys, want about 1/%d (< %.2f)", movedFrac, hostsN, tt.maxMoved)
			}
			if strayedFrac > tt.maxStrayed {
				t.Errorf("%.4f of keys whose host stayed moved, want <= %.2f", strayedFrac, tt.maxStrayed)
			}
		})
	}
}

func TestRingSize(t *testing.T) {
	tests := []struct {
		name             string
		weights          []uint32
		minSize, maxSize uint64
		wantMin, wantMax int
	}{
		// ceil(1024/3) = 342 points each.
		{name: "equal", weights: []uint32{1, 1, 1}, minSize: 1024, maxSize: 8 << 20, wantMin: 1026, wantMax: 1026},
		// The light host gets ceil(1024/1001) = 2 points, the heavy one 2000.
		{name: "skewed", weights: []uint32{1, 1000}, minSize: 1024, maxSize: 8 << 20, wantMin: 2002, wantMax: 2002},
		// Capped by the maximum.
		{name: "capped", weights: []uint32{1, 100000}, minSize: 1024, maxSize: 4096, wantMin: 4096, wantMax: 4096},
		{name: "min is max", weights: []uint32{1, 1, 1}, minSize: 64, maxSize: 64, wantMin: 64, wantMax: 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs := hosts(tt.weights...)
			r := newRingHash(hs, normalizedWeights(hs, 1, nil), tt.minSize, tt.maxSize)
			if s := r.size(); s < tt.wantMin || s > tt.wantMax {
				t.Fatalf("ring size %d, want %d..%d", s, tt.wantMin, tt.wantMax)
			}
			owned := make([]int, len(hs))
			for _, o := range r.owners {
				owned[o]++
			}
			for i, n := range owned {
				if n == 0 {
					t.Fatalf("host %d owns no point: %v", i, owned)
				}
			}
		})
	}
	// More hosts than the minimum: one point each.
	hs := make([]*Host, 2000)
	for i := range hs {
		hs[i] = NewHost(fmt.Sprintf("10.0.%d.%d:80", i/250, i%250), 1)
	}
	if s := newRingHash(hs, normalizedWeights(hs, 1, nil), 1024, 8<<20).size(); s != 2000 {
		t.Fatalf("2000 hosts: ring size %d, want 2000", s)
	}
	if s := newRingHash(nil, nil, 1024, 8<<20).size(); s != 0 {
		t.Fatalf("no hosts: ring size %d", s)
	}
}

func TestMaglevTableWeights(t *testing.T) {
	hs := hosts(1, 2, 3, 4)
	m := newMaglev(hs, normalizedWeights(hs, 1, nil), 65537)
	owned := make([]int, len(hs))
	for _, o := range m.table {
		owned[o]++
	}
	for i, n := range owned {
		want := float64(i+1) / 10
		if share := float64(n) / 65537; share < want-.005 || share > want+.005 {
			t.Errorf("host %d owns %.4f of the table, want %.2f", i, share, want)
		}
	}
	if newMaglev(nil, nil, 65537).choose(1, 0) != nil {
		t.Fatal("empty table chose a host")
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	const n = 20000
	for _, tt := range []struct {
		choices uint32
		want    float64 // 1 - (2/3)^choices: the idle host is sampled at least once
	}{{2, 5.0 / 9}, {3, 19.0 / 27}} {
		t.Run(fmt.Sprint("choices=", tt.choices), func(t *testing.T) {
			hs := hosts(1, 1, 1)
			hs[1].Stats.RqActive.Store(5)
			hs[2].Stats.RqActive.Store(5)
			p := mustNew(t, Config{Policy: LeastRequestPolicy, ChoiceCount: tt.choices}, one(hs...))
			got := pickCounts(t, p, n, nil)
			checkShares(t, hs[:1], got, n, []float64{tt.want}, .02)
		})
	}
}

func TestLeastRequestWeighted(t *testing.T) {
	const n = 22000
	for _, tt := range []struct {
		name string
		bias *float64
		want float64 // host 0's share: weight 2 with 9 active vs two weight-1 idle hosts
	}{
		{"bias 1", nil, 0.2 / 2.2},
		{"bias 0", new(0.0), 0.5},
		{"bias 0.5", new(0.5), 0.6325 / 2.6325},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hs := hosts(2, 1, 1)
			hs[0].Stats.RqActive.Store(9)
			p := mustNew(t, Config{Policy: LeastRequestPolicy, ActiveRequestBias: tt.bias}, one(hs...))
			got := pickCounts(t, p, n, nil)
			checkShares(t, hs[:1], got, n, []float64{tt.want}, .005)
		})
	}
}

func TestEDFOrder(t *testing.T) {
	w := []float64{5, 1, 1}
	e := newEDF(3, func(i int) float64 { return w[i] })
	got := make([]int, 14)
	for i := range got {
		got[i] = e.pick()
	}
	count := make([]int, 3)
	for _, i := range got {
		count[i]++
	}
	if count[0] != 10 || count[1] != 2 || count[2] != 2 {
		t.Fatalf("14 picks of weights 5,1,1 = %v (%v)", count, got)
	}
}

// The retry host predicate: rejected hosts are re-picked around.
func TestRetryPredicate(t *testing.T) {
	for _, pol := range allPolicies {
		t.Run(pol.String(), func(t *testing.T) {
			hs := hosts(1, 1, 1)
			p := mustNew(t, Config{Policy: pol}, one(hs...))
			src := rand.New(rand.NewPCG(5, 5))
			const trials = 1000
			hit := 0
			for range trials {
				hash := src.Uint64()
				r := &Request{Hash: hash, HasHash: pol.hashed(), MaxAttempts: 5}
				if pol.hashed() {
					// Reject the host the key maps to.
					r.Tried = []*Host{p.Pick(&Request{Hash: hash, HasHash: true})}
				} else {
					r.Tried = []*Host{hs[0]}
				}
				if p.Pick(r) == r.Tried[0] {
					hit++
				}
			}
			// Maglev's retry walk (Envoy's bit flip) lands near the first
			// slot and is less independent than fresh picks: 1.3% measured.
			if hit > trials*3/100 {
				t.Fatalf("%d of %d picks went to the rejected host", hit, trials)
			}
		})
	}
}

func TestRetryPredicateLimits(t *testing.T) {
	for _, pol := range allPolicies {
		t.Run(pol.String(), func(t *testing.T) {
			hs := hosts(1, 1, 1)
			p := mustNew(t, Config{Policy: pol}, one(hs...))
			// Every host rejected: the last pick is returned anyway.
			all := &Request{Hash: 42, HasHash: true, Tried: hs, MaxAttempts: 3}
			if p.Pick(all) == nil {
				t.Fatal("Pick() = nil with every host rejected")
			}
			// MaxAttempts 0: one pick, rejected or not. For a hash policy
			// that is the key's own host.
			if pol.hashed() {
				h := p.Pick(&Request{Hash: 42, HasHash: true})
				if got := p.Pick(&Request{Hash: 42, HasHash: true, Tried: []*Host{h}}); got != h {
					t.Fatalf("MaxAttempts 0 re-picked: %s, want %s", got.Address, h.Address)
				}
			}
		})
	}
	// Negative MaxAttempts is 0.
	if (&Request{MaxAttempts: -3}).retries() != 0 || (*Request)(nil).retries() != 0 {
		t.Fatal("retries() of a negative or nil request")
	}
}

func TestRoundRobinRetry(t *testing.T) {
	hs := hosts(1, 1, 1)
	rr := NewRoundRobin(hs)
	r := &Request{Tried: []*Host{hs[0]}, MaxAttempts: 1}
	for i := range 6 {
		if h := rr.Pick(r); h == hs[0] {
			t.Fatalf("pick %d went to the tried host", i)
		}
	}
	// Weighted path too.
	hs = hosts(3, 1)
	rr = NewRoundRobin(hs)
	r = &Request{Tried: []*Host{hs[0]}, MaxAttempts: 2} // a a b a: the third pick
	if h := rr.Pick(r); h != hs[1] {
		t.Fatalf("weighted: picked %s", h.Address)
	}
}

func TestEmptyPolicies(t *testing.T) {
	for _, pol := range allPolicies {
		for _, levels := range [][]Priority{nil, {{}}, one()} {
			p := mustNew(t, Config{Policy: pol}, levels)
			if h := p.Pick(&Request{Hash: 1, HasHash: true, MaxAttempts: 2}); h != nil {
				t.Fatalf("%v over %v: Pick() = %s", pol, levels, h.Address)
			}
		}
	}
}

func TestSortRing(t *testing.T) {
	for _, n := range []int{0, 1, 100, 1 << 14, 100003} {
		src := rand.New(rand.NewPCG(uint64(n), 1))
		points := make([]ringPoint, n)
		for i := range points {
			points[i] = ringPoint{src.Uint64(), uint32(i)}
		}
		if n > 10 {
			points[3].hash = points[7].hash // a duplicate
		}
		want := make(map[uint64][]uint32)
		for _, p := range points {
			want[p.hash] = append(want[p.hash], p.owner)
		}
		hashes, owners := sortRing(slices.Clone(points))
		if len(hashes) != n || len(owners) != n {
			t.Fatalf("n=%d: %d hashes, %d owners", n, len(hashes), len(owners))
		}
		for i := range hashes {
			if i > 0 && hashes[i-1] > hashes[i] {
				t.Fatalf("n=%d: not sorted at %d", n, i)
			}
			if !slices.Contains(want[hashes[i]], owners[i]) {
				t.Fatalf("n=%d: point %d owner %d lost its hash", n, i, owners[i])
			}
		}
	}
}
