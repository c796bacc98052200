package snapshot

import (
	"net/http"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	ratelimitcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	httplrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	netlrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/proxy/ratelimit"
	"github.com/outrigger-mesh/outrigger/proxy/snapshot/matchconv"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// localRateLimitFilter converts an envoy.filters.http.local_ratelimit
// filter named name (at path p). The support table has already refused
// the fields we do not implement (descriptors, per-connection buckets, ...).
func (c *converter) localRateLimitFilter(p, name string, a *anypb.Any) hcm.HTTPFilter {
	var m httplrlv3.LocalRateLimit
	if !c.unpack(p, a, &m) {
		return nil
	}
	l := c.localRateLimiter(p, &m)
	if l == nil {
		return nil
	}
	return ratelimit.NewFilter(name, l)
}

// localRateLimitPerRoute converts a local_ratelimit typed_per_filter_config:
// the same message, with a token bucket of its own (required, as in Envoy).
func (c *converter) localRateLimitPerRoute(p string, a *anypb.Any) any {
	var m httplrlv3.LocalRateLimit
	if !c.unpack(p, a, &m) {
		return nil
	}
	if m.GetTokenBucket() == nil {
		c.fail(resource.Join(p, "token_bucket"), "a per-route local rate limit needs its own token bucket")
		return nil
	}
	return c.localRateLimiter(p, &m)
}

func (c *converter) localRateLimiter(p string, m *httplrlv3.LocalRateLimit) *ratelimit.Limiter {
	cfg := ratelimit.Config{
		Where:             p,
		StatPrefix:        m.GetStatPrefix(),
		Enabled:           c.rateLimitFraction(resource.Join(p, "filter_enabled"), m.GetFilterEnabled()),
		Enforced:          c.rateLimitFraction(resource.Join(p, "filter_enforced"), m.GetFilterEnforced()),
		ResponseHeaders:   c.headerValues(resource.Join(p, "response_headers_to_add"), m.GetResponseHeadersToAdd()),
		XRateLimitHeaders: m.GetEnableXRatelimitHeaders() == ratelimitcommonv3.XRateLimitHeadersRFCVersion_DRAFT_VERSION_03,
	}
	if s := m.GetStatus(); s != nil {
		cfg.Status = int(s.GetCode())
		if cfg.Status < 400 || http.StatusText(cfg.Status) == "" {
			c.fail(resource.Join(p, "status.code"), "%d is not an HTTP error status", cfg.Status)
			return nil
		}
	}
	if tb := m.GetTokenBucket(); tb != nil {
		cfg.Bucket = c.tokenBucket(resource.Join(p, "token_bucket"), tb)
		if cfg.Bucket == nil {
			return nil
		}
	}
	l, err := ratelimit.NewLimiter("", cfg)
	if err != nil {
		c.fail(p, "%v", err)
		return nil
	}
	return l
}

// tokenBucket converts a token_bucket at p; nil after an error.
func (c *converter) tokenBucket(p string, tb *typev3.TokenBucket) *ratelimit.TokenBucket {
	out := &ratelimit.TokenBucket{
		MaxTokens:     tb.GetMaxTokens(),
		TokensPerFill: 1,
		FillInterval:  tb.GetFillInterval().AsDuration(),
	}
	if v := tb.GetTokensPerFill(); v != nil {
		out.TokensPerFill = v.GetValue()
	}
	if out.TokensPerFill == 0 {
		c.fail(resource.Join(p, "tokens_per_fill"), "must be greater than 0")
		return nil
	}
	if out.FillInterval < ratelimit.MinFillInterval {
		c.fail(resource.Join(p, "fill_interval"), "%s is shorter than the minimum, %s", out.FillInterval, ratelimit.MinFillInterval)
		return nil
	}
	return out
}

// rateLimitFraction converts a RuntimeFractionalPercent's default_value
// (runtime_key is refused by the support table); nil when unset.
func (c *converter) rateLimitFraction(p string, r *corev3.RuntimeFractionalPercent) *ratelimit.Fraction {
	if r == nil {
		return nil
	}
	d := r.GetDefaultValue()
	den, ok := matchconv.Denominator(d.GetDenominator())
	if !ok {
		c.fail(resource.Join(p, "default_value.denominator"), "unknown denominator %d", d.GetDenominator())
		return nil
	}
	return &ratelimit.Fraction{Numerator: d.GetNumerator(), Denominator: den}
}

// localRateLimitNetworkFilter converts an
// envoy.filters.network.local_ratelimit filter.
func (c *converter) localRateLimitNetworkFilter(p string, a *anypb.Any) listener.ConnFilter {
	var m netlrlv3.LocalRateLimit
	if !c.unpack(p, a, &m) {
		return nil
	}
	cfg := ratelimit.ConnConfig{StatPrefix: m.GetStatPrefix()}
	tb := c.tokenBucket(resource.Join(p, "token_bucket"), m.GetTokenBucket())
	if tb == nil {
		return nil
	}
	cfg.Bucket = *tb
	if re := m.GetRuntimeEnabled(); re != nil {
		cfg.Disabled = !re.GetDefaultValue().GetValue()
	}
	l, err := ratelimit.NewConnLimiter("", cfg)
	if err != nil {
		c.fail(p, "%v", err)
		return nil
	}
	return l
}
