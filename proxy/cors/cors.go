// Package cors is Envoy's envoy.filters.http.cors filter: it answers CORS
// preflight requests itself and adds Access-Control-Allow-Origin (with
// credentials and exposed headers) to the responses of cross-origin
// requests whose Origin a policy allows. The policies come from the
// matched route's and virtual host's typed_per_filter_config (Envoy's
// CorsPolicy, converted by proxy/snapshot); the filter itself has no
// settings.
package cors

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// Policy is one CorsPolicy. Where a route and its virtual host both have
// one, each setting comes from the route's policy when it sets it, else
// from the virtual host's (Envoy's rule); Enabled and Shadow come from the
// route's policy alone.
type Policy struct {
	// AllowOrigins are the origins allowed (allow_origin_string_match); a
	// matcher that matches "*" allows every origin. Regexes must already
	// be anchored (match the whole origin).
	AllowOrigins []router.StringMatcher
	// AllowMethods, AllowHeaders, ExposeHeaders and MaxAge are the header
	// values as configured; "" leaves the setting to a less specific
	// policy. AllowMethods or AllowHeaders "*" echoes the preflight's
	// Access-Control-Request-Method or -Headers.
	AllowMethods, AllowHeaders, ExposeHeaders, MaxAge string
	// AllowCredentials, AllowPrivateNetworkAccess and
	// ForwardNotMatchingPreflights are nil when unset (Envoy's defaults:
	// false, false, true).
	AllowCredentials             *bool
	AllowPrivateNetworkAccess    *bool
	ForwardNotMatchingPreflights *bool
	// Enabled is filter_enabled's default_value (nil: always on); Shadow
	// is shadow_enabled's (nil: off). A shadow-enabled policy that is not
	// enabled only counts origins.
	Enabled, Shadow *Fraction
}

// Fraction is Envoy's FractionalPercent: Numerator out of Denominator
// (100, 10000 or 1000000); a numerator at or above the denominator means
// always.
type Fraction struct {
	Numerator, Denominator uint32
}

// on rolls the fraction for one request.
func (f *Fraction) on() bool {
	if f.Numerator >= f.Denominator {
		return true
	}
	if f.Numerator == 0 {
		return false
	}
	return rand.Uint32N(f.Denominator) < f.Numerator
}

// ErrInvalidPolicy is matched (errors.Is) by every error Validate returns.
var ErrInvalidPolicy = errors.New("invalid CORS policy")

// Validate checks the policy; the error names the offending field.
func (p *Policy) Validate() error {
	for i, m := range p.AllowOrigins {
		if m.Kind == router.StringRegex && m.Regex == nil {
			return fmt.Errorf("%w: allow_origin_string_match[%d]: the regex is missing", ErrInvalidPolicy, i)
		}
		if m.Kind > router.StringRegex {
			return fmt.Errorf("%w: allow_origin_string_match[%d]: unknown match kind %d", ErrInvalidPolicy, i, m.Kind)
		}
	}
	for _, f := range []struct {
		name string
		v    *Fraction
	}{{"filter_enabled", p.Enabled}, {"shadow_enabled", p.Shadow}} {
		if f.v == nil {
			continue
		}
		switch f.v.Denominator {
		case 100, 10000, 1000000:
		default:
			return fmt.Errorf("%w: %s: denominator %d is not 100, 10000 or 1000000", ErrInvalidPolicy, f.name, f.v.Denominator)
		}
	}
	return nil
}

// Filter is the envoy.filters.http.cors filter of one connection
// manager, looking up its policies by its name in http_filters.
type Filter struct {
	name           string
	valid, invalid atomic.Uint64
}

// New returns the filter named name in http_filters: the key of its
// typed_per_filter_config entries.
func New(name string) *Filter { return &Filter{name: name} }

// Stats reports cors.origin_valid and cors.origin_invalid: requests with
// an Origin header a policy allowed, and ones it did not (requests without
// an Origin, or without an enabled policy, are not counted, as in Envoy).
func (f *Filter) Stats() map[string]uint64 {
	return map[string]uint64{
		"cors.origin_valid":   f.valid.Load(),
		"cors.origin_invalid": f.invalid.Load(),
	}
}

// policies are the policies that apply to one request, most specific
// first.
type policies [2]*Policy

func (f *Filter) lookup(in *hcm.FilterInput) policies {
	var ps policies
	n := 0
	if in.Route != nil {
		if p, ok := in.Route.PerFilter[f.name].(*Policy); ok {
			ps[n] = p
			n++
		}
	}
	if in.VHost != nil {
		if p, ok := in.VHost.PerFilter[f.name].(*Policy); ok {
			ps[n] = p
		}
	}
	return ps
}

// Decode answers a preflight from an allowed origin (or from any origin
// when forward_not_matching_preflights is false) with 200 and the
// Access-Control-* headers; on any other request from an allowed origin it
// sets Access-Control-Allow-Origin (the origin itself), -Allow-Credentials
// and -Expose-Headers on the response and passes the request on. Requests
// without an Origin, from an origin no policy allows, or under no enabled
// policy pass untouched.
func (f *Filter) Decode(w http.ResponseWriter, r *http.Request, in *hcm.FilterInput) hcm.Verdict {
	ps := f.lookup(in)
	if ps[0] == nil {
		return hcm.Verdict{}
	}
	enabled := ps[0].Enabled == nil || ps[0].Enabled.on()
	shadow := ps[0].Shadow != nil && ps[0].Shadow.on()
	if !enabled && !shadow {
		return hcm.Verdict{}
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return hcm.Verdict{}
	}
	allowed := ps.originAllowed(origin)
	if allowed {
		f.valid.Add(1)
	} else {
		f.invalid.Add(1)
	}
	if !enabled {
		return hcm.Verdict{} // shadow mode: counted only
	}
	reqMethod := r.Header.Get("Access-Control-Request-Method")
	if r.Method != http.MethodOptions || reqMethod == "" {
		if allowed {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			if ps.credentials() {
				h.Set("Access-Control-Allow-Credentials", "true")
			}
			if v := ps.str(func(p *Policy) string { return p.ExposeHeaders }); v != "" {
				h.Set("Access-Control-Expose-Headers", v)
			}
		}
		return hcm.Verdict{}
	}
	if !allowed && ps.forwardNotMatching() {
		return hcm.Verdict{}
	}
	// A preflight: Envoy answers it with 200 and no body.
	h := w.Header()
	if allowed {
		h.Set("Access-Control-Allow-Origin", origin)
	}
	if ps.credentials() {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if v := ps.str(func(p *Policy) string { return p.AllowMethods }); v == "*" {
		h.Set("Access-Control-Allow-Methods", reqMethod)
	} else if v != "" {
		h.Set("Access-Control-Allow-Methods", v)
	}
	if v := ps.str(func(p *Policy) string { return p.AllowHeaders }); v == "*" {
		h.Set("Access-Control-Allow-Headers", r.Header.Get("Access-Control-Request-Headers"))
	} else if v != "" {
		h.Set("Access-Control-Allow-Headers", v)
	}
	if v := ps.str(func(p *Policy) string { return p.MaxAge }); v != "" {
		h.Set("Access-Control-Max-Age", v)
	}
	if ps.flag(func(p *Policy) *bool { return p.AllowPrivateNetworkAccess }, false) &&
		r.Header.Get("Access-Control-Request-Private-Network") == "true" {
		h.Set("Access-Control-Allow-Private-Network", "true")
	}
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	return hcm.Verdict{Status: http.StatusOK}
}

// originAllowed applies the most specific policy's allow_origin_string_match
// that has one.
func (ps policies) originAllowed(origin string) bool {
	for _, p := range ps {
		if p == nil || len(p.AllowOrigins) == 0 {
			continue
		}
		for i := range p.AllowOrigins {
			m := &p.AllowOrigins[i]
			if matchString(m, "*") || matchString(m, origin) {
				return true
			}
		}
		return false
	}
	return false
}

func (ps policies) credentials() bool {
	return ps.flag(func(p *Policy) *bool { return p.AllowCredentials }, false)
}

func (ps policies) forwardNotMatching() bool {
	return ps.flag(func(p *Policy) *bool { return p.ForwardNotMatchingPreflights }, true)
}

// str is the first non-empty value of a setting, most specific first.
func (ps policies) str(get func(*Policy) string) string {
	for _, p := range ps {
		if p != nil {
			if v := get(p); v != "" {
				return v
			}
		}
	}
	return ""
}

// flag is the first set value of a boolean setting, else def.
func (ps policies) flag(get func(*Policy) *bool, def bool) bool {
	for _, p := range ps {
		if p != nil {
			if v := get(p); v != nil {
				return *v
			}
		}
	}
	return def
}

// matchString is Envoy's StringMatcher on s.
func matchString(m *router.StringMatcher, s string) bool {
	switch m.Kind {
	case router.StringExact:
		if m.IgnoreCase {
			return strings.EqualFold(s, m.Value)
		}
		return s == m.Value
	case router.StringPrefix:
		return len(s) >= len(m.Value) && eq(s[:len(m.Value)], m.Value, m.IgnoreCase)
	case router.StringSuffix:
		return len(s) >= len(m.Value) && eq(s[len(s)-len(m.Value):], m.Value, m.IgnoreCase)
	case router.StringContains:
		if m.IgnoreCase {
			return strings.Contains(strings.ToLower(s), strings.ToLower(m.Value))
		}
		return strings.Contains(s, m.Value)
	case router.StringRegex:
		return m.Regex != nil && m.Regex.MatchString(s)
	}
	return false
}

func eq(a, b string, fold bool) bool {
	if fold {
		return strings.EqualFold(a, b)
	}
	return a == b
}
