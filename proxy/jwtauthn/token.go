package jwtauthn

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// algorithms are the signature algorithms accepted, by the "alg" header:
// asymmetric only ("none" and HMAC are refused).
var algorithms = map[string]jose.SignatureAlgorithm{
	"RS256": jose.RS256, "RS384": jose.RS384, "RS512": jose.RS512,
	"PS256": jose.PS256, "PS384": jose.PS384, "PS512": jose.PS512,
	"ES256": jose.ES256, "ES384": jose.ES384, "ES512": jose.ES512,
	"EdDSA": jose.EdDSA,
}

// b64 decodes base64url without padding, strictly: the unused low bits of
// the last character must be zero, so one token has one spelling (the
// signature covers the encoded text, and go-jose checks it over a
// re-encoding: a lenient decoder would accept altered tokens).
var b64 = base64.RawURLEncoding.Strict()

// jwt is a token split and decoded, not yet verified. Only the structure
// is checked here (Envoy's parse statuses); the signature is go-jose's job.
type jwt struct {
	raw        string
	alg        jose.SignatureAlgorithm
	kid        string
	iss        string
	aud        []string
	exp, nbf   int64 // 0: absent
	payloadB64 string
	claims     map[string]any // numbers as json.Number
}

// parseJWT decodes a compact JWS token.
func parseJWT(raw string) (*jwt, Status) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, JwtBadFormat
	}
	t := &jwt{raw: raw, payloadB64: parts[1]}
	var hdr map[string]any
	if !decodeObject(parts[0], &hdr) {
		return nil, JwtHeaderParseError
	}
	alg, ok := hdr["alg"].(string)
	if !ok {
		return nil, JwtHeaderBadAlg
	}
	if t.alg, ok = algorithms[alg]; !ok {
		return nil, JwtHeaderNotImplementedAlg
	}
	if k, present := hdr["kid"]; present {
		if t.kid, ok = k.(string); !ok {
			return nil, JwtHeaderBadKid
		}
	}
	if !decodeObject(parts[1], &t.claims) {
		return nil, JwtPayloadParseError
	}
	if !t.readClaims() {
		return nil, JwtPayloadParseError
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil || len(sig) == 0 {
		return nil, JwtSignatureParseError
	}
	return t, OK
}

// decodeObject decodes base64url JSON holding one object into dst.
func decodeObject(s string, dst *map[string]any) bool {
	b, err := b64.DecodeString(s)
	if err != nil {
		return false
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(dst); err != nil || *dst == nil {
		return false
	}
	// Nothing may follow the object.
	_, err = d.Token()
	return err != nil
}

// readClaims reads iss, aud, exp and nbf with their JSON types checked.
func (t *jwt) readClaims() bool {
	if v, ok := t.claims["iss"]; ok {
		s, ok := v.(string)
		if !ok {
			return false
		}
		t.iss = s
	}
	switch v := t.claims["aud"].(type) {
	case nil:
		if _, ok := t.claims["aud"]; ok {
			return false
		}
	case string:
		t.aud = []string{v}
	case []any:
		for _, a := range v {
			s, ok := a.(string)
			if !ok {
				return false
			}
			t.aud = append(t.aud, s)
		}
	default:
		return false
	}
	var ok bool
	if t.exp, ok = timeClaim(t.claims, "exp"); !ok {
		return false
	}
	if t.nbf, ok = timeClaim(t.claims, "nbf"); !ok {
		return false
	}
	return true
}

// timeClaim reads a NumericDate claim as whole seconds; absent is 0.
func timeClaim(claims map[string]any, name string) (int64, bool) {
	v, present := claims[name]
	if !present {
		return 0, true
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	if err != nil || f < 0 || f > math.MaxInt64/2 || math.IsNaN(f) {
		return 0, false
	}
	return int64(f), true
}

// checkTime is Envoy's time constraint with skew: nbf may be up to skew in
// the future, exp up to skew in the past.
func (t *jwt) checkTime(now time.Time, skew time.Duration) Status {
	s := now.Unix()
	k := int64(skew / time.Second)
	if t.nbf != 0 && s+k < t.nbf {
		return JwtNotYetValid
	}
	if t.exp != 0 && s > t.exp+k {
		return JwtExpired
	}
	return OK
}

// audienceAllowed reports whether one of the token's audiences is among
// allowed (empty allows every token), comparing as Envoy does: without an
// http:// or https:// scheme and without a trailing slash.
func (t *jwt) audienceAllowed(allowed []string) bool {
	if len(allowed) == 0 {
		return true
	}
	for _, a := range t.aud {
		a = normalizeAudience(a)
		for _, b := range allowed {
			if a == normalizeAudience(b) {
				return true
			}
		}
	}
	return false
}

func normalizeAudience(a string) string {
	a = strings.TrimPrefix(a, "http://")
	a = strings.TrimPrefix(a, "https://")
	return strings.TrimSuffix(a, "/")
}

// claim finds a claim by a dotted path into nested objects.
func (t *jwt) claim(path string) (any, bool) {
	var cur any = t.claims
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// claimHeaderValue is a claim as a header value: strings as they are,
// numbers (integers without a fraction), booleans; "" for other types,
// which are not copied (as Envoy).
func claimHeaderValue(v any) string {
	switch c := v.(type) {
	case string:
		return c
	case bool:
		if c {
			return "true"
		}
		return "false"
	case json.Number:
		if i, err := c.Int64(); err == nil {
			return strconv.FormatInt(i, 10)
		}
		if f, err := c.Float64(); err == nil && f >= 0 && f < 1<<63 && f == math.Trunc(f) {
			return strconv.FormatInt(int64(f), 10)
		}
		return c.String()
	}
	return ""
}
