package jwtauthn

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// DefaultClockSkew is Envoy's clock_skew_seconds default.
const DefaultClockSkew = 60 * time.Second

// DefaultCacheDuration is how long fetched keys are used (Envoy: 10 min).
const DefaultCacheDuration = 10 * time.Minute

// DefaultFetchTimeout bounds a JWKS fetch whose http_uri timeout is 0.
const DefaultFetchTimeout = 5 * time.Second

// Config is one envoy.filters.http.jwt_authn filter's configuration.
type Config struct {
	// Providers by name.
	Providers map[string]*Provider
	// Rules are tried in order; the first whose Match accepts the request
	// says what it needs. A request no rule matches is not checked.
	Rules []Rule
	// RequirementMap names requirements for PerRoute.RequirementName.
	RequirementMap map[string]*Requirement
	// BypassCORSPreflight passes CORS preflight requests unchecked.
	BypassCORSPreflight bool
	// StripFailureResponse sends failures with an empty body and no
	// WWW-Authenticate header.
	StripFailureResponse bool
}

// Provider is a JwtProvider: who issues tokens, where they are, how to
// check them and what to pass on.
type Provider struct {
	Issuer    string
	Audiences []string
	// LocalJWKS is the JSON Web Key Set given inline or from a file; nil
	// with Remote.
	LocalJWKS []byte
	Remote    *RemoteJWKS
	// FromHeaders, FromParams and FromCookies say where tokens are; all
	// empty means Authorization: Bearer <token> and the access_token
	// query parameter.
	FromHeaders []HeaderLocation
	FromParams  []string
	FromCookies []string
	// Forward keeps the token in the forwarded request; false removes the
	// header that carried it.
	Forward bool
	// ForwardPayloadHeader, when set, gets the token's payload
	// (base64url, padded with PadForwardPayloadHeader).
	ForwardPayloadHeader    string
	PadForwardPayloadHeader bool
	ClaimToHeaders          []ClaimToHeader
	// ClockSkew is allowed on exp and nbf; 0 means DefaultClockSkew.
	ClockSkew time.Duration
}

// HeaderLocation is a header carrying a token after ValuePrefix.
type HeaderLocation struct {
	Name, ValuePrefix string
}

// ClaimToHeader copies a claim (a dotted path into nested objects) of a
// verified token into a request header.
type ClaimToHeader struct {
	Header, Claim string
}

// RemoteJWKS is a key set fetched over HTTP through a cluster.
type RemoteJWKS struct {
	URI     string
	Cluster string
	// Timeout bounds one fetch; 0 means DefaultFetchTimeout.
	Timeout time.Duration
	// CacheDuration is how long fetched keys are used; 0 means
	// DefaultCacheDuration.
	CacheDuration time.Duration
	// AsyncFetch fetches as soon as the filter is given its clusters and
	// refreshes in the background once the keys are stale, serving the
	// stale keys meanwhile; without it the first request after expiry
	// waits for the fetch.
	AsyncFetch bool
}

// Rule is a RequirementRule.
type Rule struct {
	Match router.Match
	// Requires is nil for a rule that asks for nothing.
	Requires *Requirement
}

// RequirementKind says which form a Requirement takes.
type RequirementKind uint8

// The forms of a requirement.
const (
	// RequireNothing passes every request.
	RequireNothing RequirementKind = iota
	// RequireProvider needs a valid token of Provider (with Audiences, when
	// set, instead of the provider's).
	RequireProvider
	// RequireAny needs one of Children.
	RequireAny
	// RequireAll needs all Children.
	RequireAll
	// AllowMissing passes requests without a token and with valid ones.
	AllowMissing
	// AllowMissingOrFailed passes every request, verifying the tokens it
	// can (to forward their payload and claims).
	AllowMissingOrFailed
)

// Requirement is a JwtRequirement.
type Requirement struct {
	Kind      RequirementKind
	Provider  string
	Audiences []string
	Children  []*Requirement
}

// PerRoute is a route's PerRouteConfig: Disabled, or the name of a
// requirement in Config.RequirementMap.
type PerRoute struct {
	Disabled        bool
	RequirementName string
}

// Validate checks the configuration: every provider has keys, every
// requirement names a provider that exists. field names it in errors.
func (c *Config) Validate(field string) error {
	var errs []error
	names := make([]string, 0, len(c.Providers))
	for n := range c.Providers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := c.Providers[n].validate(join(field, fmt.Sprintf("providers[%q]", n))); err != nil {
			errs = append(errs, err)
		}
	}
	for i, r := range c.Rules {
		if r.Requires != nil {
			if err := c.checkRequirement(join(field, fmt.Sprintf("rules[%d].requires", i)), r.Requires); err != nil {
				errs = append(errs, err)
			}
		}
	}
	keys := make([]string, 0, len(c.RequirementMap))
	for k := range c.RequirementMap {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := c.checkRequirement(join(field, fmt.Sprintf("requirement_map[%q]", k)), c.RequirementMap[k]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (c *Config) checkRequirement(field string, r *Requirement) error {
	if r == nil {
		return fmt.Errorf("%s: no requirement", field)
	}
	switch r.Kind {
	case RequireProvider:
		if _, ok := c.Providers[r.Provider]; !ok {
			return fmt.Errorf("%s: required provider %q is not configured", field, r.Provider)
		}
	case RequireAny, RequireAll:
		if len(r.Children) < 2 {
			return fmt.Errorf("%s: requires_any and requires_all need at least 2 requirements", field)
		}
		var errs []error
		for i, ch := range r.Children {
			if err := c.checkRequirement(fmt.Sprintf("%s.requirements[%d]", field, i), ch); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	case RequireNothing, AllowMissing, AllowMissingOrFailed:
	default:
		return fmt.Errorf("%s: unknown requirement kind %d", field, r.Kind)
	}
	return nil
}

func (p *Provider) validate(field string) error {
	if p == nil {
		return fmt.Errorf("%s: no provider", field)
	}
	var errs []error
	switch {
	case p.LocalJWKS != nil && p.Remote != nil:
		errs = append(errs, fmt.Errorf("%s: only one of local_jwks and remote_jwks may be set", field))
	case p.LocalJWKS != nil:
		if _, err := parseJWKS(p.LocalJWKS); err != nil {
			errs = append(errs, fmt.Errorf("%s.local_jwks: %w", field, err))
		}
	case p.Remote != nil:
		if p.Remote.URI == "" || p.Remote.Cluster == "" {
			errs = append(errs, fmt.Errorf("%s.remote_jwks.http_uri: uri and cluster are required", field))
		} else if !strings.HasPrefix(p.Remote.URI, "http://") && !strings.HasPrefix(p.Remote.URI, "https://") {
			errs = append(errs, fmt.Errorf("%s.remote_jwks.http_uri.uri: %q is not an http:// or https:// URL", field, p.Remote.URI))
		}
	default:
		errs = append(errs, fmt.Errorf("%s: local_jwks or remote_jwks is required", field))
	}
	for i, h := range p.FromHeaders {
		if h.Name == "" {
			errs = append(errs, fmt.Errorf("%s.from_headers[%d].name: is required", field, i))
		}
	}
	if slices.Contains(p.FromParams, "") {
		errs = append(errs, fmt.Errorf("%s.from_params: empty parameter name", field))
	}
	if slices.Contains(p.FromCookies, "") {
		errs = append(errs, fmt.Errorf("%s.from_cookies: empty cookie name", field))
	}
	for i, ch := range p.ClaimToHeaders {
		if ch.Header == "" || ch.Claim == "" || http.CanonicalHeaderKey(ch.Header) == "" {
			errs = append(errs, fmt.Errorf("%s.claim_to_headers[%d]: header_name and claim_name are required", field, i))
		}
	}
	return errors.Join(errs...)
}

// join names a field inside field ("" for the top level).
func join(field, name string) string {
	if field == "" {
		return name
	}
	return field + "." + name
}
