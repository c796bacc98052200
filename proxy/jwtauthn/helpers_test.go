package jwtauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// testKey is a signing key with its kid.
type testKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

var (
	keysOnce sync.Once
	keys     map[string]*testKey
)

// testKeys are generated once per test binary (RSA generation is slow).
func testKeys(t testing.TB) map[string]*testKey {
	t.Helper()
	keysOnce.Do(func() {
		rsa1, _ := rsa.GenerateKey(rand.Reader, 2048)
		rsa2, _ := rsa.GenerateKey(rand.Reader, 2048)
		ec256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		_, ed, _ := ed25519.GenerateKey(rand.Reader)
		keys = map[string]*testKey{
			"rs":    {"rs", jose.RS256, rsa1},
			"rs384": {"rs", jose.RS384, rsa1},
			"rs512": {"rs", jose.RS512, rsa1},
			"ps":    {"rs", jose.PS256, rsa1},
			"other": {"other", jose.RS256, rsa2},
			"es256": {"es256", jose.ES256, ec256},
			"es384": {"es384", jose.ES384, ec384},
			"ed":    {"ed", jose.EdDSA, ed},
		}
	})
	return keys
}

// jwksOf is the public JWKS of the given keys (duplicates by kid once).
func jwksOf(t testing.TB, ks ...*testKey) []byte {
	t.Helper()
	var set jose.JSONWebKeySet
	seen := map[string]bool{}
	for _, k := range ks {
		if seen[k.kid] {
			continue
		}
		seen[k.kid] = true
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sign makes a compact token of claims with k.
func sign(t testing.TB, k *testKey, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// claims are valid claims of issuer "https://issuer.example" for "api".
func claims(extra ...any) map[string]any {
	c := map[string]any{
		"iss": "https://issuer.example",
		"aud": "api",
		"sub": "alice",
		"exp": time.Now().Add(time.Hour).Unix(),
	}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(c, extra[i].(string))
			continue
		}
		c[extra[i].(string)] = extra[i+1]
	}
	return c
}

// provider is a local-JWKS provider for issuer "https://issuer.example".
func testProvider(t testing.TB, jwks []byte) *Provider {
	return &Provider{Issuer: "https://issuer.example", Audiences: []string{"api"}, LocalJWKS: jwks}
}

// oneRule requires provider "p" on every path.
func oneRule(p *Provider) *Config {
	return &Config{
		Providers: map[string]*Provider{"p": p},
		Rules:     []Rule{{Match: router.Match{Prefix: "/"}, Requires: &Requirement{Kind: RequireProvider, Provider: "p"}}},
	}
}

func newFilter(t testing.TB, cfg *Config) *Filter {
	t.Helper()
	f, err := New("jwt", cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// result is one request's outcome.
type result struct {
	verdict hcm.Verdict
	w       *httptest.ResponseRecorder
	r       *http.Request
}

// do runs one request with an Authorization bearer token (none when "").
func do(f *Filter, target, tok string, in *hcm.FilterInput, hdrs ...string) result {
	r := httptest.NewRequest("GET", target, nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdrs); i += 2 {
		r.Header.Add(hdrs[i], hdrs[i+1])
	}
	if in == nil {
		in = &hcm.FilterInput{}
	}
	w := httptest.NewRecorder()
	v := f.Decode(w, r, in)
	return result{v, w, r}
}

func (res result) passed() bool { return !res.verdict.Stopped() }

func wantDenied(t *testing.T, res result, status int, body string) {
	t.Helper()
	if res.passed() {
		t.Fatalf("passed, want %d %q", status, body)
	}
	if res.w.Code != status || res.verdict.Status != status || res.w.Body.String() != body {
		t.Fatalf("got %d %q (verdict %+v), want %d %q", res.w.Code, res.w.Body.String(), res.verdict, status, body)
	}
}
