package server_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
)

// jwtSigner signs test tokens with one key.
type jwtSigner struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func newRSASigner(t *testing.T, kid string) *jwtSigner {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	return &jwtSigner{kid: kid, alg: jose.RS256, priv: k}
}

func newECSigner(t *testing.T, kid string) *jwtSigner {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	return &jwtSigner{kid: kid, alg: jose.ES256, priv: k}
}

// jwks is the public key set of signers.
func jwks(t *testing.T, ss ...*jwtSigner) []byte {
	var set jose.JSONWebKeySet
	for _, s := range ss {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: s.priv.Public(), KeyID: s.kid, Use: "sig"})
	}
	b, err := json.Marshal(set)
	must(t, err)
	return b
}

// token signs claims: iss "https://idp.test", aud "mesh", sub "alice",
// an hour of validity, then extra (a nil value deletes a claim).
func (s *jwtSigner) token(t *testing.T, extra map[string]any) string {
	c := map[string]any{"iss": "https://idp.test", "aud": "mesh", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: s.alg, Key: s.priv}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", s.kid))
	must(t, err)
	payload, _ := json.Marshal(c)
	obj, err := sig.Sign(payload)
	must(t, err)
	out, err := obj.CompactSerialize()
	must(t, err)
	return out
}

// jwksHost is an identity provider's key endpoint on loopback whose key
// set the test swaps.
type jwksHost struct {
	addr  string
	mu    sync.Mutex
	body  []byte
	hits  atomic.Int64
	paths sync.Map
}

func startJWKSHost(t *testing.T, body []byte) *jwksHost {
	h := &jwksHost{body: body}
	h.addr = backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		h.paths.Store(r.Host+r.URL.Path, true)
		h.mu.Lock()
		defer h.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write(h.body)
	}))
	return h
}

func (h *jwksHost) set(body []byte) {
	h.mu.Lock()
	h.body = body
	h.mu.Unlock()
}

// echoHeaders answers with the request headers the JWT filter sets or
// removes, one per line.
func echoHeaders(t *testing.T) string {
	return backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, h := range []string{"Authorization", "X-Jwt-Payload", "X-Sub", "X-Team"} {
			fmt.Fprintf(w, "%s=%s\n", h, strings.Join(r.Header.Values(h), ","))
		}
	}))
}

// jwtCall sends GET path with a bearer token ("" for none) and returns
// the status, WWW-Authenticate and body.
func jwtCall(t *testing.T, c *http.Client, addr, path, tok string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	must(t, err)
	req.Host = "api.test"
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("X-Sub", "spoofed")
	resp, err := c.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Www-Authenticate"), string(b)
}

// filterCounter reads one outrigger_listener_filter_total counter
// ("listener/stat").
func filterCounter(t *testing.T, p *proxy, listener, stat string) uint64 {
	t.Helper()
	mfs, err := p.srv.Gatherer().Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != "outrigger_listener_filter_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var l, s string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "listener":
					l = lp.GetValue()
				case "stat":
					s = lp.GetValue()
				}
			}
			if l == listener && s == stat {
				return uint64(m.GetCounter().GetValue() + m.GetUntyped().GetValue())
			}
		}
	}
	return 0
}

// A remote JWKS is fetched through its cluster, cached for
// cache_duration, and a rotated key is picked up once the cache expires.
func TestJWTRemoteJWKSThroughCluster(t *testing.T) {
	k1, k2 := newRSASigner(t, "k1"), newECSigner(t, "k2")
	idp := startJWKSHost(t, jwks(t, k1))
	up := echoHeaders(t)
	filter := `          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                idp:
                  issuer: https://idp.test
                  audiences: [mesh]
                  remote_jwks:
                    http_uri: {uri: "http://idp.test/.well-known/jwks.json", cluster: idp, timeout: 2s}
                    cache_duration: 1s
                  forward_payload_header: x-jwt-payload
                  claim_to_headers:
                  - {header_name: x-sub, claim_name: sub}
                  - {header_name: x-team, claim_name: org.team}
              rules:
              - match: {prefix: /public}
              - match: {prefix: /}
                requires: {provider_name: idp}
`
	p := startProxy(t, bs{Filters: filter, VirtualHosts: vhostAll("app", ""),
		Clusters: staticCluster("app", "", up) + staticCluster("idp", "", idp.addr)}.String())
	addr := p.addr["ingress"]
	c := h1Client()

	code, auth, body := jwtCall(t, c, addr, "/x?y=1", "")
	if code != 401 || body != "Jwt is missing" || auth != `Bearer realm="http://api.test/x?y=1"` {
		t.Fatalf("no token: %d %q %q", code, auth, body)
	}
	if code, _, body := jwtCall(t, c, addr, "/public/page", ""); code != 200 {
		t.Fatalf("public path: %d %q", code, body)
	}
	tok := k1.token(t, map[string]any{"org": map[string]any{"team": "core"}})
	code, _, body = jwtCall(t, c, addr, "/x", tok)
	if code != 200 {
		t.Fatalf("valid token: %d %q", code, body)
	}
	payload := strings.Split(tok, ".")[1]
	for _, want := range []string{"Authorization=\n", "X-Jwt-Payload=" + payload + "\n", "X-Sub=alice\n", "X-Team=core\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("upstream saw %q, want a line %q", body, want)
		}
	}
	if _, ok := idp.paths.Load("idp.test/.well-known/jwks.json"); !ok {
		t.Errorf("the key set was not fetched with the URI's host and path")
	}
	for _, tc := range []struct {
		name, tok string
		code      int
		body      string
	}{
		{"expired", k1.token(t, map[string]any{"exp": time.Now().Add(-5 * time.Minute).Unix()}), 401, "Jwt is expired"},
		{"wrong audience", k1.token(t, map[string]any{"aud": "other"}), 403, "Audiences in Jwt are not allowed"},
		{"wrong issuer", k1.token(t, map[string]any{"iss": "https://evil.test"}), 401, "Jwt issuer is not configured"},
		{"wrong signature", (&jwtSigner{kid: "k1", alg: jose.RS256, priv: newRSASigner(t, "x").priv}).token(t, nil), 401, "Jwt verification fails"},
	} {
		code, auth, body := jwtCall(t, c, addr, "/x", tc.tok)
		if code != tc.code || body != tc.body || !strings.HasSuffix(auth, `, error="invalid_token"`) {
			t.Errorf("%s: %d %q %q, want %d %q", tc.name, code, auth, body, tc.code, tc.body)
		}
	}

	// Rotation: k2 replaces k1 at the identity provider.
	idp.set(jwks(t, k2))
	tok2 := k2.token(t, nil)
	waitFor(t, 10*time.Second, "the rotated key after cache expiry", func() bool {
		code, _, _ := jwtCall(t, c, addr, "/x", tok2)
		return code == 200
	})
	if code, _, body := jwtCall(t, c, addr, "/x", tok); code != 401 || body != "Jwks doesn't have key to match kid or alg from Jwt" {
		t.Fatalf("retired key: %d %q", code, body)
	}
	if n := filterCounter(t, p, "ingress", "jwt_authn.jwks_fetch_success"); n < 2 {
		t.Errorf("jwks_fetch_success = %d, want >= 2", n)
	}
	if n := filterCounter(t, p, "ingress", "jwt_authn.denied"); n < 6 {
		t.Errorf("denied = %d, want >= 6", n)
	}
	if n := filterCounter(t, p, "ingress", "jwt_authn.allowed"); n < 3 {
		t.Errorf("allowed = %d, want >= 3", n)
	}
}

// gRPC callers get UNAUTHENTICATED without a token and PERMISSION_DENIED
// for a wrong audience; routes can turn the filter off or name a
// requirement (local JWKS from a file).
func TestJWTGRPCAndPerRoute(t *testing.T) {
	k := newECSigner(t, "k")
	file := t.TempDir() + "/jwks.json"
	must(t, os.WriteFile(file, jwks(t, k), 0o600))
	filter := fmt.Sprintf(`          - name: jwt
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                idp:
                  issuer: https://idp.test
                  audiences: [mesh]
                  local_jwks: {filename: %q}
              requirement_map:
                open: {allow_missing: {}}
              rules:
              - match: {prefix: /}
                requires: {provider_name: idp}
`, file)
	vh := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/grpc.testing.TestService/EmptyCall", grpc: {}}
                  route: {cluster: grpc, timeout: 0s}
                  typed_per_filter_config:
                    jwt:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
                      disabled: true
                - match: {prefix: "/grpc.testing.TestService/StreamingOutputCall", grpc: {}}
                  route: {cluster: grpc, timeout: 0s}
                  typed_per_filter_config:
                    jwt:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig
                      requirement_name: open
                - match: {prefix: "/", grpc: {}}
                  route: {cluster: grpc, timeout: 0s}
`
	p := startProxy(t, bs{Filters: filter, VirtualHosts: vh, Clusters: staticCluster("grpc", h2cOptions, grpcBackend(t))}.String())
	conn, err := grpc.NewClient(p.addr["ingress"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	_, err = client.UnaryCall(ctx, &testpb.SimpleRequest{})
	if status.Code(err) != codes.Unauthenticated || status.Convert(err).Message() != "Jwt is missing" {
		t.Fatalf("no token: %v", err)
	}
	bad := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+k.token(t, map[string]any{"aud": "else"}))
	if _, err := client.UnaryCall(bad, &testpb.SimpleRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("wrong audience: %v", err)
	}
	good := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+k.token(t, nil))
	if _, err := client.UnaryCall(good, &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("valid token: %v", err)
	}
	// disabled: true on EmptyCall's route.
	if _, err := client.EmptyCall(ctx, &testpb.Empty{}); err != nil {
		t.Fatalf("disabled route: %v", err)
	}
	// requirement_name open (allow_missing): no token passes, a bad one not.
	s, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
	must(t, err)
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("allow_missing route without a token: %v", err)
	}
	s, err = client.StreamingOutputCall(bad, &testpb.StreamingOutputCallRequest{})
	must(t, err)
	if _, err := s.Recv(); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("allow_missing route with a bad token: %v", err)
	}
}

// A bootstrap with a JWT setting we do not implement is refused with the
// field's path.
func TestJWTUnsupportedFieldRefused(t *testing.T) {
	filter := `          - name: envoy.filters.http.jwt_authn
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication
              providers:
                idp:
                  local_jwks: {inline_string: "{\"keys\":[]}"}
                  payload_in_metadata: jwt
`
	_, err := bootstrap.Load("", bs{Filters: filter, VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", "127.0.0.1:1")}.String())
	if err == nil || !strings.Contains(err.Error(), "payload_in_metadata") {
		t.Fatalf("err = %v", err)
	}
}
