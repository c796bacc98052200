package ratelimit

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// TokenBucket is Envoy's token_bucket.
type TokenBucket struct {
	MaxTokens     uint32
	TokensPerFill uint32 // 0 means 1
	FillInterval  time.Duration
}

// Validate checks the bucket's bounds; field names the token_bucket in
// errors.
func (t TokenBucket) Validate(field string) error {
	if t.MaxTokens == 0 {
		return fmt.Errorf("%s: must be greater than 0", join(field, "max_tokens"))
	}
	if t.FillInterval < MinFillInterval {
		return fmt.Errorf("%s: %s is shorter than the minimum, %s", join(field, "fill_interval"), t.FillInterval, MinFillInterval)
	}
	return nil
}

// Fraction is a runtime fractional percent's default_value: Numerator out
// of Denominator (100, 10 000 or 1 000 000).
type Fraction struct {
	Numerator, Denominator uint32
}

// Always is the fraction that is always true.
var Always = Fraction{Numerator: 100, Denominator: 100}

// sample draws one decision; it does not allocate.
func (f Fraction) sample() bool {
	switch {
	case f.Numerator == 0 || f.Denominator == 0:
		return false
	case f.Numerator >= f.Denominator:
		return true
	}
	return rand.Uint32N(f.Denominator) < f.Numerator
}

// Config is one envoy.filters.http.local_ratelimit configuration, the
// filter's own or a route's (typed_per_filter_config).
type Config struct {
	// Where says where the configuration sits (its field path in the
	// route table, for a route's): per-route limiters with the same Where
	// and the same settings keep one bucket across configuration rebuilds
	// (xDS rebuilds route tables on every update, changed or not).
	Where string
	// StatPrefix names the counters: <StatPrefix>.http_local_rate_limit.*.
	StatPrefix string
	// Bucket is the token bucket; nil rate-limits nothing (a filter-level
	// config may leave it to the routes).
	Bucket *TokenBucket
	// Enabled is filter_enabled; nil means never (as in Envoy: a config
	// without filter_enabled checks no request).
	Enabled *Fraction
	// Enforced is filter_enforced; nil means never: requests over the
	// limit are only counted.
	Enforced *Fraction
	// Status is the reply's status; 0 means 429.
	Status int
	// ResponseHeaders are added to rate-limited replies.
	ResponseHeaders []router.HeaderValue
	// XRateLimitHeaders adds x-ratelimit-limit, -remaining and -reset
	// (DRAFT_VERSION_03) to every response of a checked request.
	XRateLimitHeaders bool
}

// Validate checks c; field names the configuration in errors.
func (c *Config) Validate(field string) error {
	var errs []error
	if c.StatPrefix == "" {
		errs = append(errs, fmt.Errorf("%s: is required", join(field, "stat_prefix")))
	}
	if c.Bucket != nil {
		if err := c.Bucket.Validate(join(field, "token_bucket")); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Status != 0 && (c.Status < 400 || c.Status > 599) {
		errs = append(errs, fmt.Errorf("%s: %d is not an error status (400-599)", join(field, "status"), c.Status))
	}
	for _, f := range []*Fraction{c.Enabled, c.Enforced} {
		if f != nil && f.Denominator == 0 {
			errs = append(errs, fmt.Errorf("%s: a fractional percent needs a denominator", join(field, "filter_enabled")))
		}
	}
	for _, h := range c.ResponseHeaders {
		if h.Name == "" || http.CanonicalHeaderKey(h.Name) == "" {
			errs = append(errs, fmt.Errorf("%s: empty header name", join(field, "response_headers_to_add")))
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

// key identifies the configuration's content and place.
func (c *Config) key() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q|%q|%d|", c.Where, c.StatPrefix, c.Status)
	if c.Bucket != nil {
		fmt.Fprintf(&b, "%d/%d/%d", c.Bucket.MaxTokens, c.Bucket.TokensPerFill, c.Bucket.FillInterval)
	}
	for _, f := range []*Fraction{c.Enabled, c.Enforced} {
		if f != nil {
			fmt.Fprintf(&b, "|%d/%d", f.Numerator, f.Denominator)
		} else {
			b.WriteString("|-")
		}
	}
	fmt.Fprintf(&b, "|%v|%+v", c.XRateLimitHeaders, c.ResponseHeaders)
	return b.String()
}
