package lb

import "net/netip"

// Picker chooses the host for the next request. It returns nil when no host
// is available. Implementations are safe for concurrent use and hold an
// immutable host list: a change of hosts builds a new Picker.
type Picker interface {
	// Pick chooses a host for one attempt. r may be nil (no hash, nothing
	// tried yet); policies must not keep r.
	Pick(r *Request) *Host
}

// Request is what a policy may know of the request being balanced. The
// zero value (or a nil *Request) is a request with no hash key and no
// earlier attempt.
type Request struct {
	// Hash is the route's hash_policy result, meaningful when HasHash.
	// RING_HASH and MAGLEV use it; without it they pick at random, as
	// Envoy does.
	Hash    uint64
	HasHash bool
	// Tried are the hosts earlier attempts of this request went to
	// (retry_host_predicate previous_hosts). A policy re-picks up to
	// MaxAttempts times (host_selection_retry_max_attempts; 0 means once)
	// to avoid them, and returns the last pick if every try hit one.
	Tried       []*Host
	MaxAttempts int
	// OriginalDst is where the downstream connection was going before
	// netfilter redirected it to the proxy (its local address once the
	// listener's original_dst filter restored it). Only ORIGINAL_DST
	// clusters read it: their host is this address. The zero value means
	// unknown.
	OriginalDst netip.AddrPort
}

// Rejects reports whether the retry host predicate rejects h for r.
func (r *Request) Rejects(h *Host) bool {
	if r == nil {
		return false
	}
	for _, t := range r.Tried {
		if t == h {
			return true
		}
	}
	return false
}

// retries is how many re-picks r allows after the first pick.
func (r *Request) retries() int {
	if r == nil || r.MaxAttempts < 0 {
		return 0
	}
	return r.MaxAttempts
}

// policy is one load-balancing algorithm over a fixed host slice. The
// balancer built by New chooses the priority (and locality) and then asks a
// policy; the slice is the level's or locality's healthy hosts, or all its
// hosts in panic mode, so a policy never filters by health itself (except
// RoundRobin built by NewRoundRobin, which predates New).
type policy interface {
	// choose picks a host. hash is the request's hash (a random one when
	// the request has none) and attempt counts earlier picks of this
	// request the retry predicate rejected: hash policies use both to walk
	// to another entry; the others ignore them and simply pick again.
	choose(hash uint64, attempt int) *Host
}
