package lb

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
)

// levels builds priorities of one locality each, with n[i] hosts at
// priority i, and returns the hosts per level.
func levels(n ...int) ([]Priority, [][]*Host) {
	ps := make([]Priority, len(n))
	hs := make([][]*Host, len(n))
	for p, count := range n {
		for i := range count {
			hs[p] = append(hs[p], NewHost(fmt.Sprintf("10.%d.0.%d:80", p, i+1), 1))
		}
		ps[p] = Priority{Localities: []Locality{{Name: fmt.Sprint("p", p), Hosts: hs[p]}}}
	}
	return ps, hs
}

// levelShares is the share of picks each level's hosts got.
func levelShares(got map[*Host]int, hs [][]*Host, n int) []float64 {
	out := make([]float64, len(hs))
	for p, level := range hs {
		sum := 0
		for _, h := range level {
			sum += got[h]
		}
		out[p] = float64(sum) / float64(n)
	}
	return out
}

// hostsAt is hosts with addresses of their own: 10.9.<net>.<i>.
func hostsAt(net int, weights ...uint32) []*Host {
	hs := make([]*Host, len(weights))
	for i, w := range weights {
		hs[i] = NewHost(fmt.Sprintf("10.9.%d.%d:80", net, i+1), w)
	}
	return hs
}

func TestPriorityHealthy(t *testing.T) {
	for _, pol := range allPolicies {
		t.Run(pol.String(), func(t *testing.T) {
			ps, hs := levels(4, 4)
			p := mustNew(t, Config{Policy: pol}, ps)
			const n = 4000
			got := pickCounts(t, p, n, randomHash(9))
			if s := levelShares(got, hs, n); s[0] != 1 {
				t.Fatalf("all healthy: level shares %v, want all to P0", s)
			}
		})
	}
}

// P0 half healthy: 50% × 1.4 = 70% of the load stays there, 30% spills.
func TestPrioritySpill(t *testing.T) {
	for _, pol := range allPolicies {
		t.Run(pol.String(), func(t *testing.T) {
			ps, hs := levels(10, 10)
			p := mustNew(t, Config{Policy: pol}, ps)
			for _, h := range hs[0][:5] {
				h.SetFlag(FailedActiveHC, true)
			}
			const n = 20000
			got := pickCounts(t, p, n, randomHash(11))
			s := levelShares(got, hs, n)
			if s[0] < .67 || s[0] > .73 {
				t.Fatalf("P0 half healthy: level shares %v, want 0.7/0.3", s)
			}
			for _, h := range hs[0][:5] {
				if got[h] != 0 {
					t.Fatalf("unhealthy %s got %d picks", h.Address, got[h])
				}
			}
			in := p
			st := in.State()
			if st.Levels[0].Load != 70 || st.Levels[1].Load != 30 || st.Levels[0].Health != 70 || st.Levels[0].Healthy != 5 || st.Levels[0].Hosts != 10 {
				t.Fatalf("State() = %+v", st)
			}
			if in.Panic(0) || in.Panic(1) || in.Panic(2) || in.Panic(-1) {
				t.Fatal("a level is in panic")
			}
			// Healthy again: everything back to P0.
			for _, h := range hs[0][:5] {
				h.SetFlag(FailedActiveHC, false)
			}
			if s := levelShares(pickCounts(t, p, 1000, randomHash(12)), hs, 1000); s[0] != 1 {
				t.Fatalf("after recovery: level shares %v", s)
			}
		})
	}
}

// A hash key keeps its priority: the hash chooses the level too.
func TestHashPriorityIsSticky(t *testing.T) {
	ps, hs := levels(10, 10)
	p := mustNew(t, Config{Policy: MaglevPolicy}, ps)
	for _, h := range hs[0][:5] {
		h.SetFlag(FailedActiveHC, true)
	}
	for i := range uint64(200) {
		r := &Request{Hash: i * 0x9e3779b97f4a7c15, HasHash: true}
		h := p.Pick(r)
		for range 3 {
			if p.Pick(r) != h {
				t.Fatalf("hash %x moved between picks", r.Hash)
			}
		}
	}
}

func TestPanic(t *testing.T) {
	for _, pol := range allPolicies {
		t.Run(pol.String(), func(t *testing.T) {
			ps, hs := levels(10)
			p := mustNew(t, Config{Policy: pol}, ps)
			// 30% healthy < 50%: panic, every host gets traffic.
			for _, h := range hs[0][3:] {
				h.SetFlag(FailedOutlierCheck, true)
			}
			const n = 10000
			got := pickCounts(t, p, n, randomHash(13))
			for i, h := range hs[0] {
				if share := float64(got[h]) / n; share < .05 || share > .15 {
					t.Fatalf("host %d: share %.3f in panic, want about 0.1 (%v)", i, share, shares(hs[0], got, n))
				}
			}
			in := p
			if !in.Panic(0) {
				t.Fatal("Panic(0) = false")
			}
			if st := in.State(); st.HealthyPanic != n || !st.Levels[0].Panic {
				t.Fatalf("State() = %+v, want %d panic picks", st, n)
			}
			// 60% healthy: out of panic, only healthy hosts.
			for _, h := range hs[0][3:6] {
				h.SetFlag(FailedOutlierCheck, false)
			}
			got = pickCounts(t, p, 2000, randomHash(14))
			for _, h := range hs[0][6:] {
				if got[h] != 0 {
					t.Fatalf("unhealthy %s picked out of panic", h.Address)
				}
			}
			if in.Panic(0) {
				t.Fatal("Panic(0) = true at 60% healthy")
			}
		})
	}
}

func TestPanicDisabled(t *testing.T) {
	for _, pol := range allPolicies {
		t.Run(pol.String(), func(t *testing.T) {
			ps, hs := levels(10)
			p := mustNew(t, Config{Policy: pol, PanicThreshold: new(0.0)}, ps)
			for _, h := range hs[0][3:] {
				h.SetFlag(FailedActiveHC, true)
			}
			got := pickCounts(t, p, 3000, randomHash(15))
			for _, h := range hs[0][3:] {
				if got[h] != 0 {
					t.Fatalf("unhealthy %s picked with panic disabled", h.Address)
				}
			}
			for _, h := range hs[0][:3] {
				h.SetFlag(FailedActiveHC, true)
			}
			if h := p.Pick(&Request{Hash: 1, HasHash: true}); h != nil {
				t.Fatalf("no healthy host, panic disabled: Pick() = %s, want nil", h.Address)
			}
			if p.Panic(0) {
				t.Fatal("Panic(0) with panic disabled")
			}
		})
	}
}

// Every level in panic: load by host count, over all hosts.
func TestTotalPanic(t *testing.T) {
	ps, hs := levels(4, 6)
	p := mustNew(t, Config{Policy: RandomPolicy}, ps)
	for _, level := range hs {
		for _, h := range level {
			h.SetFlag(FailedEDSHealth, true)
		}
	}
	const n = 20000
	s := levelShares(pickCounts(t, p, n, nil), hs, n)
	if s[0] < .37 || s[0] > .43 {
		t.Fatalf("total panic: level shares %v, want 0.4/0.6", s)
	}
	in := p
	if !in.Panic(0) || !in.Panic(1) {
		t.Fatal("total panic: a level is not in panic")
	}
}

func TestLocalityWeighted(t *testing.T) {
	a, b := hostsAt(1, 1, 1, 1, 1), hostsAt(2, 1, 1, 1, 1)
	ps := []Priority{{Localities: []Locality{{Name: "a", Weight: 1, Hosts: a}, {Name: "b", Weight: 3, Hosts: b}}}}
	share := func(got map[*Host]int, n int) float64 {
		sa := 0
		for _, h := range a {
			sa += got[h]
		}
		return float64(sa) / float64(n)
	}
	const n = 20000
	for _, pol := range allPolicies {
		t.Run(pol.String(), func(t *testing.T) {
			cfg := Config{Policy: pol, LocalityWeighted: true, MinRingSize: 1 << 16}
			p := mustNew(t, cfg, ps)
			if s := share(pickCounts(t, p, n, randomHash(17)), n); s < .22 || s > .28 {
				t.Fatalf("locality a share %.3f, want 0.25", s)
			}
			// Without locality weighting, hosts count alike.
			cfg.LocalityWeighted = false
			if s := share(pickCounts(t, mustNew(t, cfg, ps), n, randomHash(18)), n); s < .46 || s > .54 {
				t.Fatalf("unweighted: locality a share %.3f, want 0.5", s)
			}
		})
	}
	// Half of b down: b's effective weight is 3 × min(1, 1.4 × 0.5) = 2.1.
	b[0].SetFlag(FailedActiveHC, true)
	b[1].SetFlag(FailedActiveHC, true)
	defer func() {
		b[0].SetFlag(FailedActiveHC, false)
		b[1].SetFlag(FailedActiveHC, false)
	}()
	p := mustNew(t, Config{Policy: RoundRobinPolicy, LocalityWeighted: true}, ps)
	if s := share(pickCounts(t, p, n, nil), n); s < 1/3.1-.02 || s > 1/3.1+.02 {
		t.Fatalf("b half down: locality a share %.3f, want %.3f", s, 1/3.1)
	}
}

func TestLocalityWeightedFallback(t *testing.T) {
	// No locality has a weight: the whole level is balanced.
	a, b := hostsAt(1, 1, 1), hostsAt(2, 1, 1)
	ps := []Priority{{Localities: []Locality{{Name: "a", Hosts: a}, {Name: "b", Hosts: b}}}}
	for _, pol := range allPolicies {
		p := mustNew(t, Config{Policy: pol, LocalityWeighted: true}, ps)
		if got := pickCounts(t, p, 400, randomHash(19)); got[nil] != 0 || len(got) != 4 {
			t.Fatalf("%v: picks %v, want all four hosts", pol, got)
		}
	}
	// A zero-weight locality gets nothing.
	ps[0].Localities[0].Weight = 1
	p := mustNew(t, Config{Policy: RandomPolicy, LocalityWeighted: true}, ps)
	if got := pickCounts(t, p, 400, nil); got[b[0]]+got[b[1]] != 0 {
		t.Fatalf("zero-weight locality picked: %v", got)
	}
}

// Panic ignores locality weights for the picking policies.
func TestLocalityWeightedPanic(t *testing.T) {
	a, b := hostsAt(1, 1, 1), hostsAt(2, 1, 1)
	ps := []Priority{{Localities: []Locality{{Name: "a", Weight: 1, Hosts: a}, {Name: "b", Weight: 9, Hosts: b}}}}
	for _, h := range append(a[:1:1], b...) {
		h.SetFlag(FailedActiveHC, true)
	}
	p := mustNew(t, Config{Policy: RandomPolicy, LocalityWeighted: true}, ps)
	const n = 8000
	got := pickCounts(t, p, n, nil)
	checkShares(t, append(a, b...), got, n, []float64{.25, .25, .25, .25}, .03)
}

// Flags flipped at run time reach the balancer without a rebuild by the
// caller; no-op flips and other balancers' hosts cost nothing.
func TestRebuildOnChange(t *testing.T) {
	hs := hosts(1, 1, 1)
	p := mustNew(t, Config{}, one(hs...))
	other := mustNew(t, Config{}, one(hosts(1, 1)...))
	in, otherIn := p, other

	hs[0].SetFlag(FailedActiveHC, true)
	for range 6 {
		if p.Pick(nil) == hs[0] {
			t.Fatal("picked a host whose health check failed")
		}
	}
	if got := in.State().Rebuilds; got != 1 {
		t.Fatalf("Rebuilds = %d after one flip, want 1", got)
	}
	other.Pick(nil)
	if got := otherIn.State().Rebuilds; got != 0 {
		t.Fatalf("another balancer rebuilt %d times for a host it does not have", got)
	}
	// Setting a flag already set is no change.
	hs[0].SetFlag(FailedActiveHC, true)
	hs[1].SetFlag(FailedOutlierCheck, false)
	p.Pick(nil)
	if got := in.State().Rebuilds; got != 1 {
		t.Fatalf("Rebuilds = %d after no-op flips, want 1", got)
	}
	// A weight change is a change too.
	hs[0].SetFlag(FailedActiveHC, false)
	hs[1].SetWeight(4)
	hs[1].SetWeight(4)
	got := pickCounts(t, p, 600, nil)
	if got[hs[1]] != 400 {
		t.Fatalf("after SetWeight(4): picks %v, want 400 of 600 on host 1", shares(hs, got, 600))
	}
	if r := in.State().Rebuilds; r != 2 {
		t.Fatalf("Rebuilds = %d, want 2", r)
	}
}

// Concurrent picks while flags flip: no nil (panic keeps a host), no race.
func TestConcurrentPicksWhileFlipping(t *testing.T) {
	for _, pol := range allPolicies {
		t.Run(pol.String(), func(t *testing.T) {
			ps, hs := levels(5, 5)
			p := mustNew(t, Config{Policy: pol, LocalityWeighted: pol == RandomPolicy}, ps)
			all := append(append([]*Host(nil), hs[0]...), hs[1]...)
			var wg sync.WaitGroup
			stop := make(chan struct{})
			wg.Go(func() {
				src := rand.New(rand.NewPCG(1, 2))
				for i := 0; i < 300; i++ {
					select {
					case <-stop:
						return
					default:
					}
					h := all[src.IntN(len(all))]
					h.SetFlag(FailedOutlierCheck, h.Available()) // toggle
					h.ObserveLatency(1)
					_ = p.State()
				}
			})
			errs := make(chan error, 4)
			for w := range 4 {
				wg.Go(func() {
					for i := range 1500 {
						r := &Request{Hash: uint64(w*100000 + i), HasHash: true, Tried: all[:1], MaxAttempts: 1}
						h := p.Pick(r)
						if h == nil {
							errs <- fmt.Errorf("worker %d pick %d: nil", w, i)
							return
						}
						h.Stats.RqActive.Add(1)
						h.Stats.RqActive.Add(-1)
					}
				})
			}
			wg.Wait()
			close(stop)
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	hs := hosts(1, 1)
	p := mustNew(t, Config{Policy: RingHashPolicy}, one(hs...))
	b := p.(*balancer)
	hs[0].SetFlag(FailedActiveHC, true)
	p.Refresh()
	if got := b.rebuilds.Load(); got != 1 {
		t.Fatalf("rebuilds after Refresh = %d, want 1", got)
	}
	p.Refresh()
	if got := b.rebuilds.Load(); got != 1 {
		t.Fatalf("rebuilds after a second Refresh = %d, want 1", got)
	}
}
