package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestRunWritesVerifiableToken checks that the token verifies with the
// written key set and carries the asked-for claims.
func TestRunWritesVerifiableToken(t *testing.T) {
	dir := t.TempDir()
	if err := run([]string{"-out", dir, "-issuer", "https://idp.test", "-audience", "shop", "-subject", "lg", "-ttl", "1h"}); err != nil {
		t.Fatal(err)
	}
	jwksJSON, err := os.ReadFile(filepath.Join(dir, "jwks.json"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(dir, "token"))
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwksJSON, &set); err != nil {
		t.Fatalf("jwks.json: %v", err)
	}
	if len(set.Keys) != 1 || !set.Keys[0].IsPublic() || set.Keys[0].KeyID == "" {
		t.Fatalf("jwks.json: want one public key with a kid, got %s", jwksJSON)
	}
	parsed, err := jwt.ParseSigned(string(token), []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	var claims jwt.Claims
	if err := parsed.Claims(set.Keys[0].Key, &claims); err != nil {
		t.Fatalf("token does not verify with the key set: %v", err)
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: "https://idp.test", AnyAudience: jwt.Audience{"shop"}, Subject: "lg", Time: time.Now().Add(50 * time.Minute)}, 0); err != nil {
		t.Fatalf("claims: %v", err)
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Time: time.Now().Add(2 * time.Hour)}, 0); err == nil {
		t.Fatal("token still valid after its -ttl")
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "-out is required"},
		{[]string{"-out", dir, "extra"}, "unexpected arguments"},
		{[]string{"-out", dir, "-ttl", "0s"}, "-ttl 0s"},
		{[]string{"-out", filepath.Join(dir, "missing", "dir")}, "no such file"},
		{[]string{"-nope"}, "not defined"},
	} {
		err := run(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}
