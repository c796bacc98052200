package snapshot

import (
	"sort"
	"strings"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/jwtauthn"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// jwtAuthnFilter converts an envoy.filters.http.jwt_authn filter named
// name (at path p). The support table has already refused the fields we
// do not implement (metadata outputs, the JWT cache, filter_state_rules,
// retry_policy, ...).
func (c *converter) jwtAuthnFilter(p, name string, a *anypb.Any) hcm.HTTPFilter {
	var m jwtv3.JwtAuthentication
	if !c.unpack(p, a, &m) {
		return nil
	}
	n := len(c.errs)
	cfg := &jwtauthn.Config{
		Providers:            map[string]*jwtauthn.Provider{},
		BypassCORSPreflight:  m.GetBypassCorsPreflight(),
		StripFailureResponse: m.GetStripFailureResponse(),
	}
	for _, pn := range jwtKeys(m.GetProviders()) {
		if pc := c.jwtProvider(resource.Key(resource.Join(p, "providers"), pn), m.GetProviders()[pn]); pc != nil {
			cfg.Providers[pn] = pc
		}
	}
	if len(m.GetRequirementMap()) > 0 {
		cfg.RequirementMap = map[string]*jwtauthn.Requirement{}
		for _, k := range jwtKeys(m.GetRequirementMap()) {
			cfg.RequirementMap[k] = c.jwtRequirement(resource.Key(resource.Join(p, "requirement_map"), k), m.GetRequirementMap()[k], cfg)
		}
	}
	for i, r := range m.GetRules() {
		rp := resource.Index(resource.Join(p, "rules"), i)
		rule := jwtauthn.Rule{Match: c.routeMatch(resource.Join(rp, "match"), r.GetMatch())}
		switch {
		case r.GetRequires() != nil:
			rule.Requires = c.jwtRequirement(resource.Join(rp, "requires"), r.GetRequires(), cfg)
		case r.GetRequirementName() != "":
			req, ok := cfg.RequirementMap[r.GetRequirementName()]
			if !ok {
				c.fail(resource.Join(rp, "requirement_name"), "%q is not in requirement_map", r.GetRequirementName())
			}
			rule.Requires = req
		}
		cfg.Rules = append(cfg.Rules, rule)
	}
	if len(c.errs) > n {
		return nil
	}
	f, err := jwtauthn.New(name, cfg, jwtauthn.Options{})
	if err != nil {
		c.fail(p, "%v", err)
		return nil
	}
	return f
}

// jwtProvider converts one JwtProvider at p; nil after an error.
func (c *converter) jwtProvider(p string, m *jwtv3.JwtProvider) *jwtauthn.Provider {
	out := &jwtauthn.Provider{
		Issuer:                  m.GetIssuer(),
		Audiences:               m.GetAudiences(),
		FromParams:              m.GetFromParams(),
		FromCookies:             m.GetFromCookies(),
		Forward:                 m.GetForward(),
		ForwardPayloadHeader:    m.GetForwardPayloadHeader(),
		PadForwardPayloadHeader: m.GetPadForwardPayloadHeader(),
	}
	if s := m.GetClockSkewSeconds(); s > 0 {
		out.ClockSkew = time.Duration(s) * time.Second
	}
	for _, h := range m.GetFromHeaders() {
		out.FromHeaders = append(out.FromHeaders, jwtauthn.HeaderLocation{Name: h.GetName(), ValuePrefix: h.GetValuePrefix()})
	}
	for i, ch := range m.GetClaimToHeaders() {
		if ch.GetClaimName() == "" {
			c.fail(resource.Index(resource.Join(p, "claim_to_headers"), i), "claim_name is required")
			return nil
		}
		out.ClaimToHeaders = append(out.ClaimToHeaders, jwtauthn.ClaimToHeader{Header: ch.GetHeaderName(), Claim: ch.GetClaimName()})
	}
	switch {
	case m.GetLocalJwks() != nil:
		b, ok := c.dataSource(resource.Join(p, "local_jwks"), m.GetLocalJwks())
		if !ok {
			return nil
		}
		if b == nil {
			b = []byte{}
		}
		out.LocalJWKS = b
	case m.GetRemoteJwks() != nil:
		rp := resource.Join(p, "remote_jwks")
		rj := m.GetRemoteJwks()
		u := rj.GetHttpUri()
		out.Remote = &jwtauthn.RemoteJWKS{
			URI:           u.GetUri(),
			Cluster:       u.GetCluster(),
			Timeout:       u.GetTimeout().AsDuration(),
			CacheDuration: rj.GetCacheDuration().AsDuration(),
			AsyncFetch:    rj.GetAsyncFetch() != nil,
		}
		c.clusterRefs = append(c.clusterRefs, reference{path: resource.Join(rp, "http_uri.cluster"), name: u.GetCluster()})
	}
	// Checked here so the error carries the provider's path.
	cfg := jwtauthn.Config{Providers: map[string]*jwtauthn.Provider{"p": out}}
	if err := cfg.Validate(""); err != nil {
		c.fail(p, "%v", trimProviderField(err))
		return nil
	}
	return out
}

// trimProviderField drops the placeholder provider's name from a
// validation error (the path already names the provider).
func trimProviderField(err error) string {
	s := err.Error()
	const pre = `providers["p"]`
	if len(s) > len(pre) && s[:len(pre)] == pre {
		s = s[len(pre):]
		s = strings.TrimLeft(s, ".: ")
	}
	return s
}

// jwtRequirement converts a JwtRequirement at p; providers must exist in
// cfg.
func (c *converter) jwtRequirement(p string, m *jwtv3.JwtRequirement, cfg *jwtauthn.Config) *jwtauthn.Requirement {
	provider := func(pp, name string) {
		if _, ok := cfg.Providers[name]; !ok {
			c.fail(pp, "required provider %q is not configured", name)
		}
	}
	switch t := m.GetRequiresType().(type) {
	case *jwtv3.JwtRequirement_ProviderName:
		provider(resource.Join(p, "provider_name"), t.ProviderName)
		return &jwtauthn.Requirement{Kind: jwtauthn.RequireProvider, Provider: t.ProviderName}
	case *jwtv3.JwtRequirement_ProviderAndAudiences:
		pa := t.ProviderAndAudiences
		provider(resource.Join(p, "provider_and_audiences.provider_name"), pa.GetProviderName())
		return &jwtauthn.Requirement{Kind: jwtauthn.RequireProvider, Provider: pa.GetProviderName(), Audiences: pa.GetAudiences()}
	case *jwtv3.JwtRequirement_RequiresAny:
		out := &jwtauthn.Requirement{Kind: jwtauthn.RequireAny}
		for i, ch := range t.RequiresAny.GetRequirements() {
			out.Children = append(out.Children, c.jwtRequirement(resource.Index(resource.Join(p, "requires_any.requirements"), i), ch, cfg))
		}
		return out
	case *jwtv3.JwtRequirement_RequiresAll:
		out := &jwtauthn.Requirement{Kind: jwtauthn.RequireAll}
		for i, ch := range t.RequiresAll.GetRequirements() {
			out.Children = append(out.Children, c.jwtRequirement(resource.Index(resource.Join(p, "requires_all.requirements"), i), ch, cfg))
		}
		return out
	case *jwtv3.JwtRequirement_AllowMissing:
		return &jwtauthn.Requirement{Kind: jwtauthn.AllowMissing}
	case *jwtv3.JwtRequirement_AllowMissingOrFailed:
		return &jwtauthn.Requirement{Kind: jwtauthn.AllowMissingOrFailed}
	case nil:
		return &jwtauthn.Requirement{Kind: jwtauthn.RequireNothing}
	default:
		c.fail(p, "%T is not supported", t)
		return &jwtauthn.Requirement{}
	}
}

// jwtAuthnPerRoute converts a jwt_authn PerRouteConfig.
func (c *converter) jwtAuthnPerRoute(p string, a *anypb.Any) any {
	var m jwtv3.PerRouteConfig
	if !c.unpack(p, a, &m) {
		return nil
	}
	switch t := m.GetRequirementSpecifier().(type) {
	case *jwtv3.PerRouteConfig_Disabled:
		if !t.Disabled {
			c.fail(resource.Join(p, "disabled"), "only disabled: true is meaningful")
			return nil
		}
		return &jwtauthn.PerRoute{Disabled: true}
	case *jwtv3.PerRouteConfig_RequirementName:
		return &jwtauthn.PerRoute{RequirementName: t.RequirementName}
	}
	c.fail(p, "disabled or requirement_name is required")
	return nil
}

// jwtKeys is m's keys, sorted, so errors come in a stable order.
func jwtKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
