package snapshot

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	grpcwebv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_web/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/outrigger-mesh/outrigger/proxy/cors"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

func TestCORSFilter(t *testing.T) {
	c := &converter{}
	f := c.corsFilter("f", "my-cors", mustAny(t, &corsv3.Cors{}))
	if err := c.err(); err != nil || f == nil {
		t.Fatalf("corsFilter: %v, %v", f, err)
	}
	c = &converter{}
	if f := c.corsFilter("f", "x", mustAny(t, &grpcwebv3.GrpcWeb{})); f != nil || c.err() == nil ||
		!strings.Contains(c.err().Error(), "f: type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb is not allowed here") {
		t.Fatalf("a GrpcWeb as the cors filter's config: %v, %v", f, c.err())
	}
}

func TestCORSPerRoute(t *testing.T) {
	frac := func(n uint32, d typev3.FractionalPercent_DenominatorType) *corev3.RuntimeFractionalPercent {
		return &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: n, Denominator: d}}
	}
	full := &corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://app.test"}},
			{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `https://[a-z]+\.test`}}},
		},
		AllowMethods:                 "GET, POST",
		AllowHeaders:                 "*",
		ExposeHeaders:                "grpc-status",
		MaxAge:                       "600",
		AllowCredentials:             wrapperspb.Bool(true),
		AllowPrivateNetworkAccess:    wrapperspb.Bool(false),
		ForwardNotMatchingPreflights: wrapperspb.Bool(false),
		FilterEnabled:                frac(50, typev3.FractionalPercent_TEN_THOUSAND),
		ShadowEnabled:                frac(1, typev3.FractionalPercent_MILLION),
	}
	tests := []struct {
		name    string
		a       *anypb.Any
		check   func(t *testing.T, p *cors.Policy)
		wantErr string
	}{
		{name: "every field", a: mustAny(t, full), check: func(t *testing.T, p *cors.Policy) {
			if len(p.AllowOrigins) != 2 || p.AllowOrigins[0].Kind != router.StringExact || p.AllowOrigins[1].Regex == nil {
				t.Fatalf("origins %+v", p.AllowOrigins)
			}
			if !p.AllowOrigins[1].Regex.MatchString("https://x.test") || p.AllowOrigins[1].Regex.MatchString("https://x.test.evil") {
				t.Error("the origin regex is not anchored")
			}
			if p.AllowMethods != "GET, POST" || p.AllowHeaders != "*" || p.ExposeHeaders != "grpc-status" || p.MaxAge != "600" {
				t.Errorf("strings %+v", p)
			}
			if !*p.AllowCredentials || *p.AllowPrivateNetworkAccess || *p.ForwardNotMatchingPreflights {
				t.Errorf("flags %v %v %v", *p.AllowCredentials, *p.AllowPrivateNetworkAccess, *p.ForwardNotMatchingPreflights)
			}
			if *p.Enabled != (cors.Fraction{Numerator: 50, Denominator: 10000}) || *p.Shadow != (cors.Fraction{Numerator: 1, Denominator: 1000000}) {
				t.Errorf("fractions %v %v", *p.Enabled, *p.Shadow)
			}
		}},
		{name: "empty: defaults left unset", a: mustAny(t, &corsv3.CorsPolicy{}), check: func(t *testing.T, p *cors.Policy) {
			if p.AllowCredentials != nil || p.ForwardNotMatchingPreflights != nil || p.Enabled != nil || p.Shadow != nil {
				t.Errorf("unset fields set: %+v", p)
			}
		}},
		{name: "bad regex", a: mustAny(t, &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{
			{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "("}}},
		}}), wantErr: "p.allow_origin_string_match[0].safe_regex.regex: invalid regex"},
		{name: "no pattern", a: mustAny(t, &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{{}}}),
			wantErr: "p.allow_origin_string_match[0]: exact, prefix, suffix, contains or safe_regex is required"},
		{name: "unknown denominator", a: mustAny(t, &corsv3.CorsPolicy{FilterEnabled: frac(1, 7)}),
			wantErr: "p.filter_enabled.default_value.denominator: unknown denominator 7"},
		{name: "not a CorsPolicy", a: mustAny(t, &corsv3.Cors{}), wantErr: "is not allowed here"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &converter{}
			got := c.corsPerRoute("p", tt.a)
			err := c.err()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p, ok := got.(*cors.Policy)
			if !ok {
				t.Fatalf("got %T, want *cors.Policy", got)
			}
			tt.check(t, p)
		})
	}
}
