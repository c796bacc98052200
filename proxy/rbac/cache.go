package rbac

import (
	"crypto/x509"
	"hash/maphash"
	"sync/atomic"
	"unsafe"
)

// Every request on a connection shows the same peer certificate, and a
// mesh has few distinct callers, so what an authenticated rule derives
// from a certificate (its names as strings, its subject) and what a regex
// says about a string are worth keeping. Both caches are small, lossy and
// lock-free: a slot holds the last entry hashed to it, a collision only
// costs a recomputation, and memory is bounded by the slot count.

const certSlots = 256

// certNames caches peerNames by leaf certificate (the pointer: a TLS
// session shares its parsed certificates with every request on it).
var certNames [certSlots]atomic.Pointer[certEntry]

type certEntry struct {
	cert  *x509.Certificate
	names *peerNames // subject filled in
}

// namesOf returns the cached names of leaf, computing them on a miss.
func namesOf(leaf *x509.Certificate) *peerNames {
	slot := &certNames[(uintptr(unsafe.Pointer(leaf))>>4)%certSlots]
	if e := slot.Load(); e != nil && e.cert == leaf {
		return e.names
	}
	pn := &peerNames{dns: leaf.DNSNames, subject: leaf.Subject.String(), subjSet: true}
	if len(leaf.URIs) > 0 {
		pn.uris = make([]string, len(leaf.URIs))
		for i, u := range leaf.URIs {
			pn.uris[i] = u.String()
		}
	}
	slot.Store(&certEntry{cert: leaf, names: pn})
	return pn
}

const regexSlots = 32

// regexCache remembers a regex's answers for the strings it saw last.
type regexCache struct {
	seed  maphash.Seed
	slots [regexSlots]atomic.Pointer[regexResult]
}

type regexResult struct {
	s  string
	ok bool
}

func newRegexCache() *regexCache { return &regexCache{seed: maphash.MakeSeed()} }

// match answers from the cache or asks match and remembers.
func (c *regexCache) match(s string, match func(string) bool) bool {
	slot := &c.slots[maphash.String(c.seed, s)%regexSlots]
	if r := slot.Load(); r != nil && r.s == s {
		return r.ok
	}
	ok := match(s)
	if len(s) <= 512 { // names, not request bodies
		slot.Store(&regexResult{s: s, ok: ok})
	}
	return ok
}
