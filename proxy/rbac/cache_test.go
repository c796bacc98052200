package rbac

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"net/url"
	"regexp"
	"testing"
)

// The caches answer exactly what the uncached computation would, for
// repeated and for colliding keys.
func TestCaches(t *testing.T) {
	u, _ := url.Parse("spiffe://td/ns/default/dc/dc1/svc/web")
	a := &x509.Certificate{URIs: []*url.URL{u}, DNSNames: []string{"a"}, Subject: pkix.Name{CommonName: "a"}}
	b := &x509.Certificate{Subject: pkix.Name{CommonName: "b"}}
	for range 3 {
		na, nb := namesOf(a), namesOf(b)
		if len(na.uris) != 1 || na.uris[0] != u.String() || na.subject != "CN=a" || !na.subjSet || nb.subject != "CN=b" || len(nb.uris) != 0 {
			t.Fatalf("names %+v %+v", na, nb)
		}
	}
	if namesOf(a) != namesOf(a) {
		t.Error("a certificate's names were recomputed while cached")
	}

	re := regexp.MustCompile(`^spiffe://[^/]+/ns/default/dc/[^/]+/svc/web$`)
	c := newRegexCache()
	calls := 0
	match := func(s string) bool { calls++; return re.MatchString(s) }
	// More distinct strings than slots: collisions must recompute, never
	// answer for another string.
	for round := range 2 {
		for i := range 3 * regexSlots {
			s := "spiffe://td/ns/default/dc/dc1/svc/" + string(rune('a'+i%26)) + string(rune('a'+i/26))
			if got := c.match(s, match); got != re.MatchString(s) {
				t.Fatalf("round %d: %q = %v", round, s, got)
			}
		}
		if got := c.match(u.String(), match); !got {
			t.Fatalf("round %d: web not matched", round)
		}
	}
	before := calls
	for range 10 {
		c.match(u.String(), match)
	}
	if calls != before {
		t.Errorf("a repeated string was matched %d more times", calls-before)
	}
}
