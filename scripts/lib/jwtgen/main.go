// Command jwtgen makes what scripts/demo-shop.sh needs to put JWT
// validation at the shop's edge gateway: a fresh ES256 key pair, its public
// half as a JSON Web Key Set (for Consul's jwt-provider entry), and a signed
// token for the load generator. Nothing is kept: every demo run gets a new
// key.
//
//	go run ./scripts/lib/jwtgen -out DIR -issuer URL -audience AUD -subject SUB -ttl 24h
//
// writes DIR/jwks.json (the public key set) and DIR/token (the compact JWT,
// no newline), and prints nothing on success.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "jwtgen: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("jwtgen", flag.ContinueOnError)
	out := fs.String("out", "", "directory for jwks.json and token (required)")
	issuer := fs.String("issuer", "https://idp.shop.demo", "the token's iss")
	audience := fs.String("audience", "shop", "the token's aud")
	subject := fs.String("subject", "loadgen", "the token's sub")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	case *out == "":
		return errors.New("-out is required")
	case *ttl <= 0:
		return fmt.Errorf("-ttl %v: want a positive duration", *ttl)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	const kid = "shop-demo-1"
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		{Key: &key.PublicKey, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"},
	}})
	if err != nil {
		return fmt.Errorf("encode key set: %w", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid))
	if err != nil {
		return fmt.Errorf("signer: %w", err)
	}
	now := time.Now()
	token, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: *issuer, Subject: *subject, Audience: jwt.Audience{*audience},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
		Expiry: jwt.NewNumericDate(now.Add(*ttl)),
	}).Serialize()
	if err != nil {
		return fmt.Errorf("sign token: %w", err)
	}
	if err := os.WriteFile(filepath.Join(*out, "jwks.json"), jwks, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*out, "token"), []byte(token), 0o600)
}
