package jwtauthn

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet is a JSON Web Key Set's usable public keys.
type keySet struct {
	keys []jose.JSONWebKey
}

// parseJWKS decodes a JWKS document. Keys go-jose cannot read, private or
// symmetric keys and keys only for encryption are skipped; a set with no
// usable key is an error.
func parseJWKS(data []byte) (*keySet, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not a JSON Web Key Set: %w", err)
	}
	if doc.Keys == nil {
		return nil, errors.New("not a JSON Web Key Set: no keys field")
	}
	ks := &keySet{}
	for _, raw := range doc.Keys {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			continue
		}
		if k.Use == "enc" || !k.Valid() {
			continue
		}
		switch k.Key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			ks.keys = append(ks.keys, k)
		}
	}
	if len(ks.keys) == 0 {
		return nil, errors.New("no valid public key (RSA, EC or OKP/Ed25519) in the key set")
	}
	return ks, nil
}

// suits reports whether key k can check alg: the key type of its family,
// and for ECDSA the curve alg names.
func suits(k *jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		switch alg {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case jose.ES256:
			return pub.Curve == elliptic.P256()
		case jose.ES384:
			return pub.Curve == elliptic.P384()
		case jose.ES512:
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == jose.EdDSA
	}
	return false
}

// verify checks t's signature with the keys that match its kid and alg
// (jwt_verify_lib's order): JwksKidAlgMismatch when none does,
// JwtVerificationFail when none of them verifies it.
func (ks *keySet) verify(t *jwt) Status {
	matched := false
	var sig *jose.JSONWebSignature
	for i := range ks.keys {
		k := &ks.keys[i]
		if t.kid != "" && k.KeyID != "" && k.KeyID != t.kid {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != string(t.alg) {
			continue
		}
		if !suits(k, t.alg) {
			continue
		}
		matched = true
		if sig == nil {
			var err error
			if sig, err = jose.ParseSignedCompact(t.raw, []jose.SignatureAlgorithm{t.alg}); err != nil {
				return JwtVerificationFail
			}
		}
		if _, err := sig.Verify(k.Key); err == nil {
			return OK
		}
	}
	if !matched {
		return JwksKidAlgMismatch
	}
	return JwtVerificationFail
}
