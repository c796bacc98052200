package jwtauthn

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
)

// fuzzSeed makes the fuzz key: fixed, so the seed corpus in
// testdata/fuzz/FuzzJWT holds tokens it signed (they expire in 2100).
var fuzzSeed = []byte("outrigger-jwtauthn-fuzz-key-0001")

func fuzzKey() ed25519.PrivateKey { return ed25519.NewKeyFromSeed(fuzzSeed) }

// FuzzJWT feeds arbitrary Authorization headers and query strings to a
// filter that requires a token signed by the fuzz key. It must never
// panic, and whatever it accepts must carry a real Ed25519 signature by
// that key over its header and payload, checked here with crypto/ed25519
// directly rather than through go-jose.
func FuzzJWT(f *testing.F) {
	key := fuzzKey()
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "fuzz", Algorithm: "EdDSA"}}})
	p := &Provider{Issuer: "https://issuer.example", Audiences: []string{"api"}, LocalJWKS: jwks, FromParams: []string{"t"},
		FromHeaders: []HeaderLocation{{Name: "Authorization", ValuePrefix: "Bearer "}}}
	filter, err := New("jwt", oneRule(p), Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add("Bearer x.y.z", "")
	f.Add("", "t=a.b.c")
	f.Fuzz(func(t *testing.T, authorization, query string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.RawQuery = query
		if authorization != "" {
			r.Header["Authorization"] = []string{authorization}
		}
		w := httptest.NewRecorder()
		v := filter.Decode(w, r, &hcm.FilterInput{})
		if v.Stopped() {
			if v.Status != http.StatusUnauthorized && v.Status != http.StatusForbidden {
				t.Fatalf("failure status %d", v.Status)
			}
			return
		}
		// Accepted: every token found must be genuinely signed.
		var toks []string
		if tok := jwtAfter(authorization, "Bearer "); tok != "" {
			toks = append(toks, tok)
		}
		if tok := r.URL.Query().Get("t"); tok != "" {
			toks = append(toks, tok)
		}
		if len(toks) == 0 {
			t.Fatal("accepted a request without a token")
		}
		for _, tok := range toks {
			parts := strings.Split(tok, ".")
			if len(parts) != 3 {
				t.Fatalf("accepted %q, not three parts", tok)
			}
			hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
			var h map[string]any
			if json.Unmarshal(hdr, &h) != nil || h["alg"] != "EdDSA" {
				t.Fatalf("accepted %q with header %s", tok, hdr)
			}
			sig, err := base64.RawURLEncoding.DecodeString(parts[2])
			if err != nil || !ed25519.Verify(key.Public().(ed25519.PublicKey), []byte(parts[0]+"."+parts[1]), sig) {
				t.Fatalf("accepted %q without a valid signature", tok)
			}
		}
	})
}

// TestFuzzSeedTokens checks the seed corpus still holds a token the filter
// accepts, so the fuzzer starts from the accepting path.
func TestFuzzSeedTokens(t *testing.T) {
	tok := sign(t, &testKey{kid: "fuzz", alg: jose.EdDSA, priv: fuzzKey()}, map[string]any{
		"iss": "https://issuer.example", "aud": "api", "sub": "fuzz", "exp": 4102444800,
	})
	p := &Provider{Issuer: "https://issuer.example", Audiences: []string{"api"},
		LocalJWKS: []byte(`{"keys":[` + string(mustJSON(t, jose.JSONWebKey{Key: fuzzKey().Public(), KeyID: "fuzz"})) + `]}`)}
	f := newFilter(t, oneRule(p))
	if !do(f, "/", tok, nil).passed() {
		t.Fatal("fuzz key token refused")
	}
	seed, err := os.ReadFile("testdata/fuzz/FuzzJWT/valid_header")
	if err != nil || !strings.Contains(string(seed), tok) {
		t.Fatalf("testdata/fuzz/FuzzJWT/valid_header does not hold %s (%v)", tok, err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
