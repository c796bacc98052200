package router

import (
	"math/bits"
	"math/rand/v2"
	"net/http"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Hash evaluates the action's hash_policy for r, as Envoy does: policies in
// order, each that yields a value folded into the hash (rotate left one bit,
// xor), stopping after a terminal one that yielded. ok is false when none
// yielded (the balancer then picks at random). clientIP is the downstream
// address the connection manager trusts. When a cookie policy with a TTL
// finds no cookie, a value is generated and hashed, and setCookie is the
// Set-Cookie header value to return so the client sticks from then on.
func (a *ForwardAction) Hash(r *http.Request, clientIP string) (hash uint64, ok bool, setCookie string) {
	for i := range a.HashPolicies {
		hp := &a.HashPolicies[i]
		var h uint64
		var got bool
		switch hp.Kind {
		case HashHeader:
			if vs := r.Header.Values(hp.Name); len(vs) > 0 {
				d := xxhash.New()
				for _, v := range vs { // Envoy hashes every value of the header
					_, _ = d.WriteString(v)
				}
				h, got = d.Sum64(), true
			}
		case HashCookie:
			if c, err := r.Cookie(hp.Name); err == nil {
				h, got = xxhash.Sum64String(c.Value), true
			} else if hp.CookieGenerate {
				v := strconv.FormatUint(rand.Uint64(), 16)
				h, got = xxhash.Sum64String(v), true
				setCookie = (&http.Cookie{
					Name:     hp.Name,
					Value:    v,
					Path:     hp.CookiePath,
					MaxAge:   int(hp.CookieTTL.Seconds()), // 0: a session cookie
					HttpOnly: true,
				}).String()
			}
		case HashSourceIP:
			if clientIP != "" {
				h, got = xxhash.Sum64String(clientIP), true
			}
		case HashQueryParam:
			if v := r.URL.Query().Get(hp.Name); v != "" || r.URL.Query().Has(hp.Name) {
				h, got = xxhash.Sum64String(v), true
			}
		}
		if !got {
			continue
		}
		if ok {
			hash = bits.RotateLeft64(hash, 1) ^ h
		} else {
			hash, ok = h, true
		}
		if hp.Terminal {
			break
		}
	}
	return hash, ok, setCookie
}
