package snapshot

import (
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"

	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// Envoy's retry defaults.
const (
	defaultNumRetries  = 1
	defaultBackoffBase = 25 * time.Millisecond
)

// retryTokens are the retry_on tokens we implement.
var retryTokens = map[string]router.RetryOn{
	"5xx":                    router.Retry5xx,
	"gateway-error":          router.RetryGatewayError,
	"reset":                  router.RetryReset,
	"connect-failure":        router.RetryConnectFailure,
	"retriable-4xx":          router.RetryRetriable4xx,
	"refused-stream":         router.RetryRefusedStream,
	"retriable-status-codes": router.RetryRetriableStatusCodes,
	"retriable-headers":      router.RetryRetriableHeaders,
	"cancelled":              router.RetryGRPCCancelled,
	"deadline-exceeded":      router.RetryGRPCDeadlineExceeded,
	"internal":               router.RetryGRPCInternal,
	"resource-exhausted":     router.RetryGRPCResourceExhausted,
	"unavailable":            router.RetryGRPCUnavailable,
}

// retryPolicy converts a route's or virtual host's retry_policy.
func (c *converter) retryPolicy(p string, rp *routev3.RetryPolicy) *router.RetryPolicy {
	if rp == nil {
		return nil
	}
	out := &router.RetryPolicy{
		NumRetries:               defaultNumRetries,
		PerTryTimeout:            duration(rp.GetPerTryTimeout(), 0),
		PerTryIdleTimeout:        duration(rp.GetPerTryIdleTimeout(), 0),
		BackoffBase:              defaultBackoffBase,
		HostSelectionMaxAttempts: int(rp.GetHostSelectionRetryMaxAttempts()),
	}
	for _, tok := range strings.Split(rp.GetRetryOn(), ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		f, ok := retryTokens[tok]
		if !ok {
			c.fail(resource.Join(p, "retry_on"), "%q is not supported (supported: 5xx, gateway-error, reset, connect-failure, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)", tok)
			continue
		}
		out.On |= f
	}
	if n := rp.GetNumRetries(); n != nil {
		out.NumRetries = n.GetValue()
	}
	if out.HostSelectionMaxAttempts < 0 {
		c.fail(resource.Join(p, "host_selection_retry_max_attempts"), "must not be negative")
	}
	if out.HostSelectionMaxAttempts == 0 {
		// Envoy: "if unspecified, this will default to retrying once".
		out.HostSelectionMaxAttempts = 1
	}
	for _, code := range rp.GetRetriableStatusCodes() {
		if code < 100 || code > 599 {
			c.fail(resource.Join(p, "retriable_status_codes"), "%d is not an HTTP status", code)
		}
		out.RetriableStatusCodes = append(out.RetriableStatusCodes, int(code))
	}
	if b := rp.GetRetryBackOff(); b != nil {
		bp := resource.Join(p, "retry_back_off")
		out.BackoffBase = duration(b.GetBaseInterval(), defaultBackoffBase)
		if out.BackoffBase <= 0 {
			c.fail(resource.Join(bp, "base_interval"), "must be greater than 0")
		}
		out.BackoffMax = duration(b.GetMaxInterval(), 0)
		if b.GetMaxInterval() != nil && out.BackoffMax < out.BackoffBase {
			c.fail(resource.Join(bp, "max_interval"), "must not be less than base_interval")
		}
	}
	if out.BackoffMax == 0 {
		out.BackoffMax = 10 * out.BackoffBase
	}
	for i, h := range rp.GetRetriableHeaders() {
		out.RetriableHeaders = append(out.RetriableHeaders, c.headerMatcher(resource.Index(resource.Join(p, "retriable_headers"), i), h))
	}
	for i, h := range rp.GetRetriableRequestHeaders() {
		out.RetriableRequestHeaders = append(out.RetriableRequestHeaders, c.headerMatcher(resource.Index(resource.Join(p, "retriable_request_headers"), i), h))
	}
	if err := out.Compile(p); err != nil {
		c.failErr(err)
	}
	for i, hp := range rp.GetRetryHostPredicate() {
		pp := resource.Index(resource.Join(p, "retry_host_predicate"), i)
		var prev previoushostsv3.PreviousHostsPredicate
		if c.unpack(resource.Join(pp, "typed_config"), hp.GetTypedConfig(), &prev) {
			out.PreviousHosts = true
		}
	}
	return out
}

// hedge converts hedge_policy: only hedge_on_per_try_timeout is
// implemented; the other fields must keep their defaults.
func (c *converter) hedge(p string, h *routev3.HedgePolicy) bool {
	if h == nil {
		return false
	}
	if n := h.GetInitialRequests(); n != nil && n.GetValue() != 1 {
		c.fail(resource.Join(p, "initial_requests"), "only 1 is supported (hedging starts on a per-try timeout)")
	}
	if f := h.GetAdditionalRequestChance(); f != nil && f.GetNumerator() != 0 {
		c.fail(resource.Join(p, "additional_request_chance"), "is not supported yet")
	}
	return h.GetHedgeOnPerTryTimeout()
}

// hashPolicies converts hash_policy.
func (c *converter) hashPolicies(p string, hps []*routev3.RouteAction_HashPolicy) []router.HashPolicy {
	var out []router.HashPolicy
	for i, hp := range hps {
		pp := resource.Index(resource.Join(p, "hash_policy"), i)
		h := router.HashPolicy{Terminal: hp.GetTerminal()}
		switch {
		case hp.GetHeader() != nil:
			h.Kind = router.HashHeader
			h.Name = strings.ToLower(hp.GetHeader().GetHeaderName())
			if hp.GetHeader().GetRegexRewrite() != nil {
				c.fail(resource.Join(pp, "header.regex_rewrite"), "is not supported yet")
			}
		case hp.GetCookie() != nil:
			ck := hp.GetCookie()
			h.Kind = router.HashCookie
			h.Name = ck.GetName()
			h.CookieGenerate = ck.GetTtl() != nil
			h.CookieTTL = duration(ck.GetTtl(), 0)
			h.CookiePath = ck.GetPath()
			if len(ck.GetAttributes()) > 0 {
				c.fail(resource.Join(pp, "cookie.attributes"), "is not supported yet")
			}
		case hp.GetConnectionProperties() != nil:
			if !hp.GetConnectionProperties().GetSourceIp() {
				c.fail(resource.Join(pp, "connection_properties.source_ip"), "must be true")
			}
			h.Kind = router.HashSourceIP
		case hp.GetQueryParameter() != nil:
			h.Kind = router.HashQueryParam
			h.Name = hp.GetQueryParameter().GetName()
		default:
			c.fail(pp, "only header, cookie, connection_properties and query_parameter are supported")
			continue
		}
		out = append(out, h)
	}
	return out
}

// resilience fills the retry, hedge, hash and stream-duration settings of a
// route action; vh supplies the virtual host's retry and hedge policies,
// which a route's own replace whole (Envoy's rule).
func (c *converter) resilience(p string, a *routev3.RouteAction, vh *vhostDefaults, out *router.ForwardAction) {
	if rp := a.GetRetryPolicy(); rp != nil {
		out.Retry = c.retryPolicy(resource.Join(p, "retry_policy"), rp)
	} else if vh != nil {
		out.Retry = vh.retry
	}
	if hp := a.GetHedgePolicy(); hp != nil {
		out.HedgeOnPerTryTimeout = c.hedge(resource.Join(p, "hedge_policy"), hp)
	} else if vh != nil {
		out.HedgeOnPerTryTimeout = vh.hedge
	}
	out.HashPolicies = c.hashPolicies(p, a.GetHashPolicy())
	if m := a.GetMaxStreamDuration(); m != nil {
		out.MaxStreamDuration = duration(m.GetMaxStreamDuration(), 0)
		out.GRPCTimeoutHeaderMax = duration(m.GetGrpcTimeoutHeaderMax(), 0)
		out.GRPCTimeoutHeaderOffset = duration(m.GetGrpcTimeoutHeaderOffset(), 0)
	}
	if vh != nil {
		out.RetryBufferLimit = vh.bufferLimit
	}
}

// vhostDefaults are what a virtual host passes down to its routes.
type vhostDefaults struct {
	retry       *router.RetryPolicy
	hedge       bool
	bufferLimit uint32
}

func (c *converter) vhostDefaults(p string, vh *routev3.VirtualHost) *vhostDefaults {
	d := &vhostDefaults{
		retry:       c.retryPolicy(resource.Join(p, "retry_policy"), vh.GetRetryPolicy()),
		hedge:       c.hedge(resource.Join(p, "hedge_policy"), vh.GetHedgePolicy()),
		bufferLimit: vh.GetPerRequestBufferLimitBytes().GetValue(),
	}
	return d
}
