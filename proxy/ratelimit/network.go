package ratelimit

import (
	"fmt"
	"sync/atomic"

	"github.com/outrigger-mesh/outrigger/proxy/listener"
)

// ConnConfig is envoy.filters.network.local_ratelimit's configuration.
type ConnConfig struct {
	// StatPrefix names the counter local_rate_limit.<StatPrefix>.rate_limited.
	StatPrefix string
	Bucket     TokenBucket
	// Disabled is runtime_enabled's default_value false: every
	// connection is admitted.
	Disabled bool
}

// ConnLimiter is the network filter: a listener.ConnFilter that closes new
// connections once the bucket is empty.
type ConnLimiter struct {
	cfg         ConnConfig
	bucket      *Bucket
	rateLimited atomic.Uint64
}

// NewConnLimiter validates cfg and builds the filter; field names the
// configuration in errors.
func NewConnLimiter(field string, cfg ConnConfig) (*ConnLimiter, error) {
	if cfg.StatPrefix == "" {
		return nil, fmt.Errorf("%s: is required", join(field, "stat_prefix"))
	}
	if err := cfg.Bucket.Validate(join(field, "token_bucket")); err != nil {
		return nil, err
	}
	return &ConnLimiter{cfg: cfg, bucket: NewBucket(cfg.Bucket.MaxTokens, cfg.Bucket.TokensPerFill, cfg.Bucket.FillInterval)}, nil
}

// Admit takes a token for the new connection; false closes it.
func (c *ConnLimiter) Admit(*listener.ConnInfo) bool {
	if c.cfg.Disabled {
		return true
	}
	if ok, _ := c.bucket.Take(); ok {
		return true
	}
	c.rateLimited.Add(1)
	return false
}

// Stats returns local_rate_limit.<stat_prefix>.rate_limited.
func (c *ConnLimiter) Stats() map[string]uint64 {
	return map[string]uint64{"local_rate_limit." + c.cfg.StatPrefix + ".rate_limited": c.rateLimited.Load()}
}
