package router

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHashPolicies(t *testing.T) {
	req := func(target string, hdr ...string) *http.Request {
		r := httptest.NewRequest("GET", target, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return r
	}
	header := ForwardAction{HashPolicies: []HashPolicy{{Kind: HashHeader, Name: "x-user"}}}
	h1, ok1, _ := header.Hash(req("/", "X-User", "alice"), "")
	h2, ok2, _ := header.Hash(req("/other", "X-User", "alice"), "10.0.0.1")
	h3, _, _ := header.Hash(req("/", "X-User", "bob"), "")
	if !ok1 || !ok2 || h1 != h2 || h1 == h3 {
		t.Fatalf("header hash: alice %x/%x (ok %v %v), bob %x", h1, h2, ok1, ok2, h3)
	}
	if _, ok, _ := header.Hash(req("/"), ""); ok {
		t.Fatal("a missing header produced a hash")
	}

	src := ForwardAction{HashPolicies: []HashPolicy{{Kind: HashSourceIP}}}
	a, _, _ := src.Hash(req("/"), "10.0.0.1")
	b, _, _ := src.Hash(req("/x"), "10.0.0.1")
	c, _, _ := src.Hash(req("/"), "10.0.0.2")
	if a != b || a == c {
		t.Fatalf("source ip hash: %x %x %x", a, b, c)
	}

	q := ForwardAction{HashPolicies: []HashPolicy{{Kind: HashQueryParam, Name: "id"}}}
	a, okA, _ := q.Hash(req("/?id=7"), "")
	b, _, _ = q.Hash(req("/p?x=1&id=7"), "")
	if !okA || a != b {
		t.Fatalf("query hash: %x %x", a, b)
	}

	// Terminal: the first policy that yields ends the evaluation.
	term := ForwardAction{HashPolicies: []HashPolicy{
		{Kind: HashHeader, Name: "x-user", Terminal: true},
		{Kind: HashSourceIP},
	}}
	a, _, _ = term.Hash(req("/", "X-User", "alice"), "10.0.0.1")
	b, _, _ = term.Hash(req("/", "X-User", "alice"), "10.0.0.2")
	if a != b {
		t.Fatal("a terminal policy did not stop the evaluation")
	}
	both := ForwardAction{HashPolicies: []HashPolicy{{Kind: HashHeader, Name: "x-user"}, {Kind: HashSourceIP}}}
	a, _, _ = both.Hash(req("/", "X-User", "alice"), "10.0.0.1")
	b, _, _ = both.Hash(req("/", "X-User", "alice"), "10.0.0.2")
	if a == b {
		t.Fatal("a non-terminal policy's successor did not contribute")
	}
}

func TestHashCookie(t *testing.T) {
	a := ForwardAction{HashPolicies: []HashPolicy{{Kind: HashCookie, Name: "sticky", CookieGenerate: true, CookieTTL: time.Hour, CookiePath: "/"}}}
	r := httptest.NewRequest("GET", "/", nil)
	h1, ok, set := a.Hash(r, "")
	if !ok || !strings.HasPrefix(set, "sticky=") || !strings.Contains(set, "Max-Age=3600") {
		t.Fatalf("no cookie: ok %v, Set-Cookie %q", ok, set)
	}
	// The client sends the cookie back: same hash, nothing set.
	r2 := httptest.NewRequest("GET", "/", nil)
	r2.Header.Set("Cookie", strings.SplitN(set, ";", 2)[0])
	h2, ok2, set2 := a.Hash(r2, "")
	if !ok2 || h2 != h1 || set2 != "" {
		t.Fatalf("with cookie: hash %x want %x, Set-Cookie %q", h2, h1, set2)
	}
	session := ForwardAction{HashPolicies: []HashPolicy{{Kind: HashCookie, Name: "sticky", CookieGenerate: true}}}
	if _, ok, set := session.Hash(httptest.NewRequest("GET", "/", nil), ""); !ok || !strings.HasPrefix(set, "sticky=") || strings.Contains(set, "Max-Age") {
		t.Fatalf("ttl 0: Set-Cookie %q, want a session cookie", set)
	}
	noTTL := ForwardAction{HashPolicies: []HashPolicy{{Kind: HashCookie, Name: "sticky"}}}
	if _, ok, set := noTTL.Hash(httptest.NewRequest("GET", "/", nil), ""); ok || set != "" {
		t.Fatal("a cookie policy without ttl generated a cookie")
	}
}
