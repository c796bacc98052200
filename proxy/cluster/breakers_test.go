package cluster

import (
	"testing"
	"time"
)

// TestRetryBudgetRatio: the ratio rule admits retries up to Percent % of
// the first attempts in the window plus the reserve, forgets what is older
// than the window, and starts again from the reserve after a quiet spell.
func TestRetryBudgetRatio(t *testing.T) {
	var w retryWindow
	b := RetryBudget{Percent: 20, MinConcurrency: 3}
	now := time.Unix(1000, 0)
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
	// Retries ≤ 20 % of first attempts + 3 (the first snapshot saw one).
	if admitted > 23 || admitted < 18 {
		t.Fatalf("admitted %d retries for 100 first attempts, want about 20 + 3", admitted)
	}
	// After the window passes with no retries asked, the budget restarts
	// from the reserve alone.
	now = now.Add(budgetWindow + time.Second)
	total += 1000 // traffic that needed no retry
	got := 0
	for i := 0; i < 10; i++ {
		if w.allow(b, total, retries, now) {
			got++
			retries++
			total++
		}
	}
	if got != 3 {
		t.Fatalf("after a quiet spell: %d retries admitted at once, want the reserve (3)", got)
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
