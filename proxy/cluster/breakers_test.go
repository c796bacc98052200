package cluster

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRetryBudgetRatio: the ratio rule admits retries up to Percent % of
// the first attempts since the window's base plus the reserve, credits the
// traffic of the last window (a burst after steady traffic is let
// through), and forgets what is older.
func TestRetryBudgetRatio(t *testing.T) {
	var w retryWindow
	b := RetryBudget{Percent: 20, MinConcurrency: 3}
	now := time.Unix(1000, 0)
	w.record(0, 0, now) // the cluster is created
	var total, retries uint64
	admitted := 0
	// 100 first attempts, each failing and asking for a retry at once.
	for i := 0; i < 100; i++ {
		total++ // the first attempt
		if w.allow(b, total, retries, now) {
			admitted++
			retries++
			total++ // the retry's own attempt
		}
		now = now.Add(10 * time.Millisecond)
	}
	if admitted != 23 {
		t.Fatalf("admitted %d retries for 100 first attempts, want 20 %% + 3 = 23", admitted)
	}
	// Steady traffic without failures for a while (ticks every second):
	// a burst of failures then finds credit.
	for i := 0; i < 5; i++ {
		now = now.Add(time.Second)
		total += 1000
		w.record(total, retries, now)
	}
	burst := 0
	for i := 0; i < 100; i++ {
		if w.allow(b, total, retries, now) {
			burst++
			retries++
			total++
		}
	}
	if burst != 100 {
		t.Fatalf("after 5,000 good requests, %d of a burst of 100 retries admitted, want all", burst)
	}
	// Long after, with no traffic, only the reserve is left.
	for i := 0; i < 12; i++ {
		now = now.Add(time.Second)
		w.record(total, retries, now)
	}
	got := 0
	for i := 0; i < 10; i++ {
		if w.allow(b, total, retries, now) {
			got++
			retries++
			total++
		}
	}
	if got != 3 {
		t.Fatalf("after an idle window: %d retries admitted, want the reserve (3)", got)
	}
}

// Retries asking at the same moment cannot all take the budget's last
// place: admitting checks and counts in one step. With 100 first attempts
// (and the 23 retry attempts the budget allows) exactly 20 % + 3 = 23 of
// 200 simultaneous retries are admitted, however they interleave.
func TestRetryBudgetAdmitsAtomically(t *testing.T) {
	for range 20 {
		var w retryWindow
		b := RetryBudget{Percent: 20, MinConcurrency: 3}
		now := time.Unix(1000, 0)
		w.record(0, 0, now)
		var total, retries atomic.Uint64
		total.Store(100 + 23)
		var admitted atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if w.admit(b, &total, &retries, now) {
					admitted.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if admitted.Load() != 23 || retries.Load() != 23 {
			t.Fatalf("admitted %d retries (counted %d), want exactly 23", admitted.Load(), retries.Load())
		}
	}
}

// TestAdmitRetryConcurrency: Envoy's rule, retries in flight at most the
// budget's share of requests in flight (at least the reserve), and
// max_retries when set.
func TestAdmitRetryConcurrency(t *testing.T) {
	m := newManager(t)
	update(t, m, Config{Name: "c", Endpoints: []Endpoint{{Address: "127.0.0.1:1"}},
		Thresholds: Thresholds{MaxRetries: 2, MaxRetriesSet: true}})
	c := m.Get("c")
	c.stats.RqTotal.Store(1000) // plenty of first attempts for the ratio rule
	if !c.AdmitRetry() || !c.AdmitRetry() {
		t.Fatal("the first two retries were refused")
	}
	if c.AdmitRetry() {
		t.Fatal("a third concurrent retry was admitted over max_retries 2")
	}
	c.ReleaseRetry(true)
	if !c.AdmitRetry() {
		t.Fatal("a retry was refused after one finished")
	}
	if got := c.stats.RqRetryOverflow.Load(); got != 1 {
		t.Fatalf("retry overflows = %d, want 1", got)
	}
	if got := c.stats.RqRetrySuccess.Load(); got != 1 {
		t.Fatalf("retry successes = %d, want 1", got)
	}
}
