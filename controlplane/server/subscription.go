package server

import (
	"encoding/binary"
	"hash/maphash"
	"maps"
	"runtime"
	"slices"
	"sync"
	"weak"
)

// explicitWildcard subscribes to every resource of a type.
const explicitWildcard = "*"

// subscription is a stream's view of one type, what go-control-plane's
// cache reads through cache.Subscription: the names the client subscribed
// to, whether it is a wildcard watch, and the names and versions it was
// sent. It follows go-control-plane's stream.Subscription (the protocol's
// legacy wildcard included) but is immutable: a change makes another, so
// streams in the same state share one (see interner) and a watch's view
// never changes under the cache.
type subscription struct {
	wildcard bool
	// legacy: the client has not named a resource yet, so an empty
	// request is still a wildcard one.
	legacy     bool
	subscribed map[string]struct{} // read-only
	returned   map[string]string   // read-only
}

// ReturnedResources implements cache.Subscription.
func (s *subscription) ReturnedResources() map[string]string { return s.returned }

// SubscribedResources implements cache.Subscription.
func (s *subscription) SubscribedResources() map[string]struct{} { return s.subscribed }

// IsWildcard implements cache.Subscription.
func (s *subscription) IsWildcard() bool { return s.wildcard }

// interner hands out shared subscriptions: thousands of proxies in one
// group are in the same state for every type, and a map per stream and type
// was most of an idle stream's memory. It holds its subscriptions weakly:
// an entry goes when the last stream holding it lets go, so the table is as
// large as the distinct states in use, whatever clients send. Entries are
// found by a hash of their content (names may hold any byte, so no
// separator-joined key) and confirmed equal before they are shared.
type interner struct {
	seed maphash.Seed
	mu   sync.Mutex
	subs map[uint64][]weak.Pointer[subscription]
}

func newInterner() *interner {
	return &interner{seed: maphash.MakeSeed(), subs: map[uint64][]weak.Pointer[subscription]{}}
}

// get returns the shared subscription equal to s.
func (in *interner) get(s subscription) *subscription {
	h := in.hash(&s)
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, w := range in.subs[h] {
		if p := w.Value(); p != nil && p.equal(&s) {
			return p
		}
	}
	p := &s
	in.subs[h] = append(in.subs[h], weak.Make(p))
	runtime.AddCleanup(p, in.forget, h)
	return p
}

// forget drops the entries under h whose subscription is gone.
func (in *interner) forget(h uint64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	live := slices.DeleteFunc(in.subs[h], func(w weak.Pointer[subscription]) bool { return w.Value() == nil })
	if len(live) == 0 {
		delete(in.subs, h)
	} else {
		in.subs[h] = live
	}
}

// len is how many subscriptions the table holds (tests).
func (in *interner) len() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, ws := range in.subs {
		n += len(ws)
	}
	return n
}

// hash digests s's content, independent of map order: the entries' hashes
// are summed (collisions are resolved by equal).
func (in *interner) hash(s *subscription) uint64 {
	var h uint64
	if s.wildcard {
		h |= 1
	}
	if s.legacy {
		h |= 2
	}
	for n := range s.subscribed {
		h += maphash.String(in.seed, n)
	}
	var mh maphash.Hash
	mh.SetSeed(in.seed)
	for n, v := range s.returned {
		mh.Reset()
		// Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
		var l [8]byte
		binary.LittleEndian.PutUint64(l[:], uint64(len(n)))
		mh.Write(l[:])
		mh.WriteString(n)
		mh.WriteString(v)
		h += mh.Sum64() * 3 // apart from the subscribed names' sum
	}
	return h
}

// equal reports whether two subscriptions are in the same state.
func (s *subscription) equal(o *subscription) bool {
	return s.wildcard == o.wildcard && s.legacy == o.legacy &&
		maps.Equal(s.subscribed, o.subscribed) && maps.Equal(s.returned, o.returned)
}

// sotwSubscription is a state-of-the-world stream's first request of a
// type (go-control-plane's stream.NewSotwSubscription, legacy wildcard on).
func (in *interner) sotwSubscription(names []string) *subscription {
	s := subscription{wildcard: len(names) == 0, legacy: true, returned: map[string]string{}}
	return in.get(setSubscription(s, names))
}

// resubscribe is a later state-of-the-world request of the type: names is
// the whole subscription (stream.Subscription.SetResourceSubscription).
func (in *interner) resubscribe(old *subscription, names []string) *subscription {
	if old.legacy && len(names) == 0 {
		return old // still a legacy wildcard watch
	}
	return in.get(setSubscription(*old, names))
}

func setSubscription(s subscription, names []string) subscription {
	if s.legacy {
		if len(names) == 0 {
			s.subscribed = map[string]struct{}{}
			return s
		}
		s.legacy = false
	}
	subscribed := make(map[string]struct{}, len(names))
	explicit := false
	for _, n := range names {
		if n == explicitWildcard {
			explicit = true
		} else {
			subscribed[n] = struct{}{}
		}
	}
	if !explicit {
		// Forget what was sent of resources no longer subscribed to, so a
		// later subscription to them is answered even at an unchanged
		// version.
		kept := make(map[string]string, len(s.returned))
		for n, v := range s.returned {
			if _, ok := subscribed[n]; ok {
				kept[n] = v
			}
		}
		s.returned = kept
	}
	s.wildcard = explicit
	s.subscribed = subscribed
	return s
}

// deltaSubscription is a delta stream's first request of a type
// (stream.NewDeltaSubscription, legacy wildcard on).
func (in *interner) deltaSubscription(subscribe, unsubscribe []string, initial map[string]string) *subscription {
	s := subscription{wildcard: len(subscribe) == 0, legacy: true, subscribed: map[string]struct{}{},
		returned: maps.Clone(initial)}
	if s.returned == nil {
		s.returned = map[string]string{}
	}
	return in.get(updateSubscription(s, subscribe, unsubscribe))
}

// update is a later delta request of the type
// (stream.Subscription.UpdateResourceSubscriptions).
func (in *interner) update(old *subscription, subscribe, unsubscribe []string) *subscription {
	if old.legacy && len(subscribe) == 0 {
		return old
	}
	return in.get(updateSubscription(*old, subscribe, unsubscribe))
}

func updateSubscription(s subscription, subscribe, unsubscribe []string) subscription {
	if s.legacy {
		if len(subscribe) == 0 {
			return s
		}
		// Naming a resource ends the legacy wildcard; the watch stays a
		// wildcard one until "*" is unsubscribed.
		s.legacy = false
	}
	subscribed := maps.Clone(s.subscribed)
	returned := maps.Clone(s.returned)
	for _, n := range subscribe {
		if n == explicitWildcard {
			s.wildcard = true
			continue
		}
		subscribed[n] = struct{}{}
	}
	for _, n := range unsubscribe {
		if n == explicitWildcard {
			s.wildcard = false
			continue
		}
		if _, ok := subscribed[n]; ok && s.wildcard {
			// Still wanted through the wildcard: mark it unknown so the
			// cache sends it again (or tells it removed).
			returned[n] = ""
		} else {
			delete(returned, n)
		}
		delete(subscribed, n)
	}
	s.subscribed, s.returned = subscribed, returned
	return s
}

// returned is old after a response: the client now has m (the response's
// returned resources, or the delta response's next version map).
func (in *interner) returned(old *subscription, m map[string]string) *subscription {
	s := *old
	s.returned = m
	if s.returned == nil {
		s.returned = map[string]string{}
	}
	return in.get(s)
}
