package server

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	gcpstream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
)

// TestSubscriptionMatchesGoControlPlane drives our immutable subscriptions
// and go-control-plane's stream.Subscription through the same random
// request sequences: the cache must see the same state from both.
func TestSubscriptionMatchesGoControlPlane(t *testing.T) {
	names := []string{"a", "b", "c", explicitWildcard}
	pick := func(r *rand.Rand) []string {
		var out []string
		for _, n := range names {
			if r.IntN(3) == 0 {
				out = append(out, n)
			}
		}
		return out
	}
	served := func(r *rand.Rand) map[string]string {
		m := map[string]string{}
		for _, n := range names[:3] {
			if r.IntN(2) == 0 {
				m[n] = fmt.Sprint("v", r.IntN(3))
			}
		}
		return m
	}
	same := func(t *testing.T, step string, ours cache.Subscription, theirs gcpstream.Subscription) {
		t.Helper()
		if ours.IsWildcard() != theirs.IsWildcard() ||
			!maps.Equal(ours.SubscribedResources(), theirs.SubscribedResources()) ||
			!maps.Equal(ours.ReturnedResources(), theirs.ReturnedResources()) {
			t.Fatalf("after %s: ours wildcard=%v subscribed=%v returned=%v; go-control-plane wildcard=%v subscribed=%v returned=%v",
				step, ours.IsWildcard(), ours.SubscribedResources(), ours.ReturnedResources(),
				theirs.IsWildcard(), theirs.SubscribedResources(), theirs.ReturnedResources())
		}
	}
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 1))
		in := newInterner()
		t.Run(fmt.Sprint("sotw-", seed), func(t *testing.T) {
			first := pick(r)
			ours := in.sotwSubscription(first)
			theirs := gcpstream.NewSotwSubscription(first, true)
			same(t, fmt.Sprintf("first request %v", first), ours, theirs)
			for i := range 12 {
				if r.IntN(2) == 0 {
					m := served(r)
					ours = in.returned(ours, maps.Clone(m))
					theirs.SetReturnedResources(m)
					same(t, fmt.Sprintf("step %d: sent %v", i, m), ours, theirs)
					continue
				}
				req := pick(r)
				ours = in.resubscribe(ours, req)
				theirs.SetResourceSubscription(req)
				same(t, fmt.Sprintf("step %d: request %v", i, req), ours, theirs)
			}
		})
		t.Run(fmt.Sprint("delta-", seed), func(t *testing.T) {
			sub, unsub, initial := pick(r), pick(r), served(r)
			ours := in.deltaSubscription(sub, unsub, maps.Clone(initial))
			theirs := gcpstream.NewDeltaSubscription(sub, unsub, initial, true)
			same(t, fmt.Sprintf("first request +%v -%v initial %v", sub, unsub, initial), ours, theirs)
			for i := range 12 {
				if r.IntN(2) == 0 {
					m := served(r)
					ours = in.returned(ours, maps.Clone(m))
					theirs.SetReturnedResources(m)
					same(t, fmt.Sprintf("step %d: sent %v", i, m), ours, theirs)
					continue
				}
				sub, unsub := pick(r), pick(r)
				ours = in.update(ours, sub, unsub)
				theirs.UpdateResourceSubscriptions(sub, unsub)
				same(t, fmt.Sprintf("step %d: request +%v -%v", i, sub, unsub), ours, theirs)
			}
		})
	}
}

// TestSubscriptionsShared: streams in the same state hold one subscription,
// and a change never alters one another stream holds.
func TestSubscriptionsShared(t *testing.T) {
	in := newInterner()
	a := in.sotwSubscription([]string{"x", "y"})
	b := in.sotwSubscription([]string{"y", "x"})
	if a != b {
		t.Fatal("two streams subscribed to the same names hold different subscriptions")
	}
	a = in.returned(a, map[string]string{"x": "1", "y": "1"})
	b = in.returned(b, map[string]string{"y": "1", "x": "1"})
	if a != b {
		t.Fatal("two streams sent the same resources hold different subscriptions")
	}
	before := maps.Clone(b.ReturnedResources())
	a = in.resubscribe(a, []string{"x"})
	if !maps.Equal(b.ReturnedResources(), before) {
		t.Fatalf("resubscribing one stream changed the other's state: %v", b.ReturnedResources())
	}
	if _, ok := a.ReturnedResources()["y"]; ok {
		t.Fatalf("y was unsubscribed but is still recorded as sent: %v", a.ReturnedResources())
	}
	d := in.deltaSubscription(nil, nil, nil)
	d2 := in.update(d, []string{"x"}, nil)
	if !d.IsWildcard() || len(d.SubscribedResources()) != 0 {
		t.Fatalf("an update changed the subscription it started from: %+v", d)
	}
	if _, ok := d2.SubscribedResources()["x"]; !ok {
		t.Fatalf("update lost the new name: %+v", d2)
	}
}

// TestInternerForgetsUnused: the table holds its subscriptions weakly, so
// states no stream holds any more (one client's huge or odd ones included)
// leave it, while what a stream holds stays valid.
func TestInternerForgetsUnused(t *testing.T) {
	in := newInterner()
	kept := in.sotwSubscription([]string{"keep"})
	for i := range 1000 {
		in.deltaSubscription(nil, nil, map[string]string{fmt.Sprint("n", i): "v"})
	}
	deadline := time.Now().Add(10 * time.Second)
	for in.len() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions still interned after every holder let go, want 1", in.len())
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if again := in.sotwSubscription([]string{"keep"}); again != kept {
		t.Fatal("a subscription still held was not shared")
	}
	runtime.KeepAlive(kept)
}

// TestInternerUnambiguous: names and versions may hold any byte; states
// that a separator-joined key would confuse stay apart.
func TestInternerUnambiguous(t *testing.T) {
	in := newInterner()
	for _, tc := range []struct {
		name string
		a, b *subscription
	}{
		{"a NUL inside a name", in.sotwSubscription([]string{"a\x00b"}), in.sotwSubscription([]string{"a", "b"})},
		{"an empty name", in.sotwSubscription([]string{""}), in.sotwSubscription([]string{"*"})},
		{"name and version split differently", in.deltaSubscription([]string{"x"}, nil, map[string]string{"ab": "c"}),
			in.deltaSubscription([]string{"x"}, nil, map[string]string{"a": "bc"})},
		{"NUL between name and version", in.deltaSubscription([]string{"x"}, nil, map[string]string{"a\x00": "b"}),
			in.deltaSubscription([]string{"x"}, nil, map[string]string{"a": "\x00b"})},
	} {
		if tc.a == tc.b || tc.a.equal(tc.b) {
			t.Errorf("%s: two different states share one subscription: %+v", tc.name, tc.a)
		}
	}
}

// TestInternerHashAllocs: hashing a subscription's state (once per
// response sent) allocates nothing, however long its names.
func TestInternerHashAllocs(t *testing.T) {
	in := newInterner()
	s := &subscription{subscribed: map[string]struct{}{}, returned: map[string]string{}}
	for i := range 200 {
		s.subscribed[fmt.Sprint("name-", i)] = struct{}{}
		s.returned[fmt.Sprint("name-", i, strings.Repeat("x", i))] = "v1"
	}
	if n := testing.AllocsPerRun(20, func() { in.hash(s) }); n != 0 {
		t.Fatalf("%.0f allocations per hash, want 0", n)
	}
}
