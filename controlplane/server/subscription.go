package server

import (
	"maps"
	"slices"
	"strings"
	"sync"
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
// was most of an idle stream's memory. The tables are dropped when they
// grow past maxInterned entries (streams keep what they hold); distinct
// states are few, so that happens only after many configuration changes.
type interner struct {
	mu       sync.Mutex
	names    map[string]map[string]struct{}
	versions map[string]map[string]string
	subs     map[subKey]*subscription
}

type subKey struct {
	wildcard, legacy   bool
	subscribed, served string
}

const maxInterned = 4096

func newInterner() *interner {
	in := &interner{}
	in.reset()
	return in
}

func (in *interner) reset() {
	in.names = map[string]map[string]struct{}{}
	in.versions = map[string]map[string]string{}
	in.subs = map[subKey]*subscription{}
}

// get returns the shared subscription equal to s.
func (in *interner) get(s subscription) *subscription {
	nk := namesKey(s.subscribed)
	vk := versionsKey(s.returned)
	in.mu.Lock()
	defer in.mu.Unlock()
	k := subKey{wildcard: s.wildcard, legacy: s.legacy, subscribed: nk, served: vk}
	if p := in.subs[k]; p != nil {
		return p
	}
	if len(in.subs) >= maxInterned {
		in.reset()
	}
	if m, ok := in.names[nk]; ok {
		s.subscribed = m
	} else {
		in.names[nk] = s.subscribed
	}
	if m, ok := in.versions[vk]; ok {
		s.returned = m
	} else {
		in.versions[vk] = s.returned
	}
	p := &s
	in.subs[k] = p
	return p
}

// namesKey and versionsKey spell a map's content, sorted.
func namesKey(m map[string]struct{}) string {
	names := slices.Sorted(maps.Keys(m))
	return strings.Join(names, "\x00")
}

func versionsKey(m map[string]string) string {
	var b strings.Builder
	for _, n := range slices.Sorted(maps.Keys(m)) {
		b.WriteString(n)
		b.WriteByte(0)
		b.WriteString(m[n])
		b.WriteByte(0)
	}
	return b.String()
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
