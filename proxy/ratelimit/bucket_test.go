package ratelimit

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestBucketFillsOnPausedTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBucket(3, 2, time.Second)
		for i := range 3 {
			ok, left := b.Take()
			if !ok || left != uint32(2-i) {
				t.Fatalf("take %d: ok=%v left=%d, want true %d", i, ok, left, 2-i)
			}
		}
		if ok, _ := b.Take(); ok {
			t.Fatal("empty bucket gave a token")
		}
		if got := b.ResetIn(); got != time.Second {
			t.Fatalf("ResetIn = %s, want 1s", got)
		}
		time.Sleep(999 * time.Millisecond)
		if ok, _ := b.Take(); ok {
			t.Fatal("token before the fill interval ended")
		}
		if got := b.ResetIn(); got != time.Millisecond {
			t.Fatalf("ResetIn = %s, want 1ms", got)
		}
		time.Sleep(time.Millisecond)
		if got := b.Remaining(); got != 2 {
			t.Fatalf("after one fill: %d tokens, want 2", got)
		}
		// Many idle intervals never overfill.
		time.Sleep(time.Hour)
		if got := b.Remaining(); got != 3 {
			t.Fatalf("after an hour: %d tokens, want max 3", got)
		}
		if b.MaxTokens() != 3 || b.String() == "" {
			t.Fatal("accessors")
		}
	})
}

func TestBucketConcurrentTakesNeverOverspend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBucket(100, 1, time.Minute)
		var mu sync.Mutex
		got := 0
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				n := 0
				for range 50 {
					if ok, _ := b.Take(); ok {
						n++
					}
				}
				mu.Lock()
				got += n
				mu.Unlock()
			})
		}
		wg.Wait()
		if got != 100 {
			t.Fatalf("granted %d tokens from a bucket of 100", got)
		}
	})
}

func TestBucketDefaults(t *testing.T) {
	b := NewBucket(1, 0, 0)
	if b.perFill != 1 || b.interval != MinFillInterval {
		t.Fatalf("defaults: perFill %d interval %s", b.perFill, b.interval)
	}
}

func TestFractionSample(t *testing.T) {
	cases := []struct {
		f    Fraction
		want bool
	}{
		{Fraction{0, 100}, false},
		{Fraction{1, 0}, false},
		{Fraction{100, 100}, true},
		{Fraction{200, 100}, true},
	}
	for _, tc := range cases {
		if got := tc.f.sample(); got != tc.want {
			t.Errorf("%+v.sample() = %v", tc.f, got)
		}
	}
	// 50 %: both outcomes show up within a bounded number of draws.
	half := Fraction{50, 100}
	seen := map[bool]bool{}
	for i := 0; i < 1000 && len(seen) < 2; i++ {
		seen[half.sample()] = true
	}
	if len(seen) != 2 {
		t.Fatal("50% sampling gave one outcome only")
	}
}
