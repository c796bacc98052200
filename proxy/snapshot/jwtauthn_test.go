package snapshot

import (
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/outrigger-mesh/outrigger/proxy/jwtauthn"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

func testJWKS(t *testing.T) string {
	pub := ed25519.NewKeyFromSeed(make([]byte, 32)).Public()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: pub, KeyID: "k"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func inline(s string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}
}

func providerName(n string) *jwtv3.JwtRequirement {
	return &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: n}}
}

func TestJWTAuthnConversion(t *testing.T) {
	jwks := testJWKS(t)
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, []byte(jwks), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &jwtv3.JwtAuthentication{
		Providers: map[string]*jwtv3.JwtProvider{
			"inline": {Issuer: "a", JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: inline(jwks)},
				ClockSkewSeconds: 5, FromHeaders: []*jwtv3.JwtHeader{{Name: "x-t", ValuePrefix: "T "}},
				ClaimToHeaders: []*jwtv3.JwtClaimToHeader{{HeaderName: "x-sub", ClaimName: "sub"}}},
			"bytes": {JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte(jwks)}}}},
			"file":  {JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: file}}}},
			"remote": {JwksSourceSpecifier: &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
				HttpUri:       &corev3.HttpUri{Uri: "http://idp/jwks", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "idp"}, Timeout: durationpb.New(time.Second)},
				CacheDuration: durationpb.New(time.Minute), AsyncFetch: &jwtv3.JwksAsyncFetch{},
			}}},
		},
		Rules: []*jwtv3.RequirementRule{
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/a"}},
				RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{
					RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: []*jwtv3.JwtRequirement{providerName("inline"),
						{RequiresType: &jwtv3.JwtRequirement_AllowMissing{AllowMissing: &emptypb.Empty{}}}}}}}}},
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/b"}},
				RequirementType: &jwtv3.RequirementRule_RequirementName{RequirementName: "all"}},
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/c/[0-9]+"}}}},
		},
		RequirementMap: map[string]*jwtv3.JwtRequirement{
			"all": {RequiresType: &jwtv3.JwtRequirement_RequiresAll{RequiresAll: &jwtv3.JwtRequirementAndList{
				Requirements: []*jwtv3.JwtRequirement{providerName("bytes"), providerName("file")}}}},
			"aud":    {RequiresType: &jwtv3.JwtRequirement_ProviderAndAudiences{ProviderAndAudiences: &jwtv3.ProviderWithAudiences{ProviderName: "remote", Audiences: []string{"x"}}}},
			"failed": {RequiresType: &jwtv3.JwtRequirement_AllowMissingOrFailed{AllowMissingOrFailed: &emptypb.Empty{}}},
			"none":   {},
		},
	}
	c := &converter{}
	f := c.jwtAuthnFilter("f", "jwt", mustAny(t, m))
	if err := c.err(); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*jwtauthn.Filter); !ok {
		t.Fatalf("got %T", f)
	}
	if len(c.clusterRefs) != 1 || c.clusterRefs[0].name != "idp" || c.clusterRefs[0].path != `f.providers["remote"].remote_jwks.http_uri.cluster` {
		t.Fatalf("cluster references %+v", c.clusterRefs)
	}

	pr := c.jwtAuthnPerRoute("r", mustAny(t, &jwtv3.PerRouteConfig{RequirementSpecifier: &jwtv3.PerRouteConfig_RequirementName{RequirementName: "all"}}))
	if got, ok := pr.(*jwtauthn.PerRoute); !ok || got.RequirementName != "all" {
		t.Fatalf("per-route %#v", pr)
	}
	pr = c.jwtAuthnPerRoute("r", mustAny(t, &jwtv3.PerRouteConfig{RequirementSpecifier: &jwtv3.PerRouteConfig_Disabled{Disabled: true}}))
	if got, ok := pr.(*jwtauthn.PerRoute); !ok || !got.Disabled {
		t.Fatalf("per-route %#v", pr)
	}
}

func TestJWTAuthnConversionErrors(t *testing.T) {
	jwks := testJWKS(t)
	local := func() *jwtv3.JwtProvider {
		return &jwtv3.JwtProvider{JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: inline(jwks)}}
	}
	prefix := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	for _, tc := range []struct {
		name string
		m    *jwtv3.JwtAuthentication
		want string
	}{
		{"unknown provider", &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": local()},
			Rules: []*jwtv3.RequirementRule{{Match: prefix, RequirementType: &jwtv3.RequirementRule_Requires{Requires: providerName("q")}}}},
			`f.rules[0].requires.provider_name: required provider "q" is not configured`},
		{"unknown provider with audiences", &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": local()},
			RequirementMap: map[string]*jwtv3.JwtRequirement{"r": {RequiresType: &jwtv3.JwtRequirement_ProviderAndAudiences{ProviderAndAudiences: &jwtv3.ProviderWithAudiences{ProviderName: "q"}}}}},
			`f.requirement_map["r"].provider_and_audiences.provider_name`},
		{"unknown requirement name", &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": local()},
			Rules: []*jwtv3.RequirementRule{{Match: prefix, RequirementType: &jwtv3.RequirementRule_RequirementName{RequirementName: "nope"}}}},
			`f.rules[0].requirement_name: "nope" is not in requirement_map`},
		{"bad jwks", &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": {JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: inline("{}")}}}},
			`f.providers["p"]: local_jwks: not a JSON Web Key Set`},
		{"missing file", &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": {JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/nonexistent/jwks"}}}}}},
			`f.providers["p"].local_jwks.filename`},
		{"no keys", &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": {}}},
			`f.providers["p"]: local_jwks or remote_jwks is required`},
		{"empty claim", &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": {JwksSourceSpecifier: &jwtv3.JwtProvider_LocalJwks{LocalJwks: inline(jwks)},
			ClaimToHeaders: []*jwtv3.JwtClaimToHeader{{HeaderName: "x"}}}}}, `f.providers["p"].claim_to_headers[0]: claim_name is required`},
		{"bad route regex", &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": local()},
			Rules: []*jwtv3.RequirementRule{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}}}}},
			`f.rules[0].match.safe_regex.regex`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &converter{}
			if f := c.jwtAuthnFilter("f", "jwt", mustAny(t, tc.m)); f != nil {
				t.Fatal("a filter despite errors")
			}
			if err := c.err(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	c := &converter{}
	c.jwtAuthnPerRoute("r", mustAny(t, &jwtv3.PerRouteConfig{RequirementSpecifier: &jwtv3.PerRouteConfig_Disabled{Disabled: false}}))
	c.jwtAuthnPerRoute("s", mustAny(t, &jwtv3.PerRouteConfig{}))
	c.jwtAuthnPerRoute("t", mustAny(t, &jwtv3.JwtAuthentication{}))
	c.jwtAuthnFilter("u", "jwt", mustAny(t, &jwtv3.PerRouteConfig{}))
	err := c.err()
	for _, want := range []string{"r.disabled: only disabled: true", "s: disabled or requirement_name is required", "t: type.googleapis.com", "u: type.googleapis.com"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err %v, want %q", err, want)
		}
	}
}

func TestJWTAuthnUnsupportedFields(t *testing.T) {
	jwks := testJWKS(t)
	for _, tc := range []struct {
		p    *jwtv3.JwtProvider
		want string
	}{
		{&jwtv3.JwtProvider{PayloadInMetadata: "x"}, "payload_in_metadata"},
		{&jwtv3.JwtProvider{RequireExpiration: true}, "require_expiration"},
		{&jwtv3.JwtProvider{JwtCacheConfig: &jwtv3.JwtCacheConfig{JwtCacheSize: 1}}, "jwt_cache_config"},
		{&jwtv3.JwtProvider{JwksSourceSpecifier: &jwtv3.JwtProvider_RemoteJwks{RemoteJwks: &jwtv3.RemoteJwks{
			HttpUri:     &corev3.HttpUri{Uri: "http://a/", HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "c"}, Timeout: durationpb.New(time.Second)},
			RetryPolicy: &corev3.RetryPolicy{}}}}, "retry_policy"},
	} {
		if tc.p.JwksSourceSpecifier == nil {
			tc.p.JwksSourceSpecifier = &jwtv3.JwtProvider_LocalJwks{LocalJwks: inline(jwks)}
		}
		m := &jwtv3.JwtAuthentication{Providers: map[string]*jwtv3.JwtProvider{"p": tc.p}}
		f := &hcmv3.HttpFilter{Name: "jwt", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, m)}}
		if _, err := resource.Validate("f", f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err %v, want %q", err, tc.want)
		}
	}
}
