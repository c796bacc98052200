package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Defaults Envoy applies when a field is unset.
const (
	DefaultDNSRefreshRate = 5 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	// DefaultCleanupInterval is ORIGINAL_DST's cleanup_interval default.
	DefaultCleanupInterval = 5 * time.Second
)

// ErrNoHealthyUpstream is returned by Pick when no host is available.
var ErrNoHealthyUpstream = errors.New("no healthy upstream")

// Validate checks what the runtime relies on. It is pure: defaults are
// applied where the config is used, not written back.
func (c *Config) Validate() error {
	if c.Name == "" {
		return errors.New("cluster name is empty")
	}
	switch c.Discovery {
	case Static, StrictDNS, LogicalDNS, EDS:
	case OriginalDst:
		if err := c.validateOriginalDst(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("cluster %q: unknown discovery type %d", c.Name, c.Discovery)
	}
	if c.Protocol > HTTP3 {
		return fmt.Errorf("cluster %q: unknown protocol %d", c.Name, c.Protocol)
	}
	if c.DNSFamily > DNSAll {
		return fmt.Errorf("cluster %q: unknown DNS lookup family %d", c.Name, c.DNSFamily)
	}
	if c.Discovery == LogicalDNS && len(c.Endpoints) != 1 {
		return fmt.Errorf("cluster %q: LOGICAL_DNS needs exactly one endpoint, got %d", c.Name, len(c.Endpoints))
	}
	for i, ep := range c.Endpoints {
		if err := validateEndpoint(c.Discovery, ep.Address); err != nil {
			return fmt.Errorf("cluster %q: endpoints[%d]: %w", c.Name, i, err)
		}
	}
	if c.ConnectTimeout < 0 || c.IdleTimeout < 0 || c.DNSRefreshRate < 0 || c.CleanupInterval < 0 {
		return fmt.Errorf("cluster %q: negative duration", c.Name)
	}
	if err := c.LB.Validate(); err != nil {
		return fmt.Errorf("cluster %q: %w", c.Name, err)
	}
	if c.Outlier != nil {
		if err := c.Outlier.Validate(); err != nil {
			return fmt.Errorf("cluster %q: outlier detection: %w", c.Name, err)
		}
	}
	for i := range c.HealthChecks {
		if err := c.HealthChecks[i].Validate(); err != nil {
			return fmt.Errorf("cluster %q: health_checks[%d]: %w", c.Name, i, err)
		}
	}
	return nil
}

func validateEndpoint(d Discovery, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("address %q: port must be 1-65535", addr)
	}
	if host == "" {
		return fmt.Errorf("address %q: empty host", addr)
	}
	if d == Static || d == EDS {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("address %q: %s clusters need an IP address, not a name (use STRICT_DNS or LOGICAL_DNS)", addr, d)
		}
	}
	return nil
}

func (c *Config) dnsRefreshRate() time.Duration {
	if c.DNSRefreshRate > 0 {
		return c.DNSRefreshRate
	}
	return DefaultDNSRefreshRate
}

func (c *Config) connectTimeout() time.Duration {
	if c.ConnectTimeout > 0 {
		return c.ConnectTimeout
	}
	return DefaultConnectTimeout
}

// validateOriginalDst checks what an ORIGINAL_DST cluster cannot have: its
// hosts come from connections, so no endpoints, and no health checks or
// outlier detection over hosts that live only while they are used.
func (c *Config) validateOriginalDst() error {
	switch {
	case len(c.Endpoints) > 0:
		return fmt.Errorf("cluster %q: an ORIGINAL_DST cluster takes no endpoints (its hosts are the connections' original destinations)", c.Name)
	case len(c.HealthChecks) > 0:
		return fmt.Errorf("cluster %q: health checks are not supported on an ORIGINAL_DST cluster", c.Name)
	case c.Outlier != nil:
		return fmt.Errorf("cluster %q: outlier detection is not supported on an ORIGINAL_DST cluster", c.Name)
	}
	return nil
}

func (c *Config) cleanupInterval() time.Duration {
	if c.CleanupInterval > 0 {
		return c.CleanupInterval
	}
	return DefaultCleanupInterval
}
