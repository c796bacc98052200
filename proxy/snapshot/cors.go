package snapshot

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/outrigger-mesh/outrigger/proxy/cors"
	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/snapshot/matchconv"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// corsFilter converts an envoy.filters.http.cors filter named name (at
// path p). The Cors message has no fields: the policies are the routes'
// and virtual hosts' typed_per_filter_config entries under name.
func (c *converter) corsFilter(p, name string, a *anypb.Any) hcm.HTTPFilter {
	var m corsv3.Cors
	if !c.unpack(p, a, &m) {
		return nil
	}
	return cors.New(name)
}

// corsPerRoute converts a CorsPolicy typed_per_filter_config (at path p)
// into a *cors.Policy.
func (c *converter) corsPerRoute(p string, a *anypb.Any) any {
	var m corsv3.CorsPolicy
	if !c.unpack(p, a, &m) {
		return nil
	}
	out := &cors.Policy{
		AllowMethods:                 m.GetAllowMethods(),
		AllowHeaders:                 m.GetAllowHeaders(),
		ExposeHeaders:                m.GetExposeHeaders(),
		MaxAge:                       m.GetMaxAge(),
		AllowCredentials:             optBool(m.GetAllowCredentials()),
		AllowPrivateNetworkAccess:    optBool(m.GetAllowPrivateNetworkAccess()),
		ForwardNotMatchingPreflights: optBool(m.GetForwardNotMatchingPreflights()),
		Enabled:                      c.corsFraction(resource.Join(p, "filter_enabled"), m.GetFilterEnabled()),
		Shadow:                       c.corsFraction(resource.Join(p, "shadow_enabled"), m.GetShadowEnabled()),
	}
	before := len(c.errs)
	mc := c.matchConv()
	for i, sm := range m.GetAllowOriginStringMatch() {
		if conv := mc.StringMatcher(resource.Index(resource.Join(p, "allow_origin_string_match"), i), sm); conv != nil {
			out.AllowOrigins = append(out.AllowOrigins, *conv)
		}
	}
	if len(c.errs) > before {
		return nil
	}
	if err := out.Validate(); err != nil {
		c.fail(p, "%v", err)
		return nil
	}
	return out
}

// corsFraction converts filter_enabled or shadow_enabled: only its
// default_value (the support table refuses runtime_key).
func (c *converter) corsFraction(p string, r *corev3.RuntimeFractionalPercent) *cors.Fraction {
	if r == nil {
		return nil
	}
	d := r.GetDefaultValue()
	den, ok := matchconv.Denominator(d.GetDenominator())
	if !ok {
		c.fail(resource.Join(p, "default_value.denominator"), "unknown denominator %d", d.GetDenominator())
		return nil
	}
	return &cors.Fraction{Numerator: d.GetNumerator(), Denominator: den}
}

// optBool is a BoolValue as a *bool; nil when unset.
func optBool(v *wrapperspb.BoolValue) *bool {
	if v == nil {
		return nil
	}
	b := v.GetValue()
	return &b
}
