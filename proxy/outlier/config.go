// Package outlier is passive health checking: it watches the outcome of every
// upstream request and ejects hosts that fail, with the semantics of Envoy's
// v3 Cluster.outlier_detection (consecutive 5xx, consecutive gateway failure,
// consecutive local-origin failure, success rate and failure percentage).
//
// An ejected host carries lb.FailedOutlierCheck, so every balancer routes
// around it. Each ejection is one sony/gobreaker circuit breaker's life:
// closed → open (ejected) → half-open (back in service; its next result
// decides) → closed, or open again with a longer ejection.
//
// The package never sees Envoy protos: proxy/snapshot fills a Config.
package outlier

import (
	"fmt"
	"time"
)

// Envoy's defaults for the fields a Config starts from.
const (
	defaultInterval           = 10 * time.Second
	defaultBaseEjectionTime   = 30 * time.Second
	defaultMaxEjectionTime    = 300 * time.Second
	defaultMaxEjectionPercent = 10
	defaultConsecutive        = 5
	defaultSRMinimumHosts     = 5
	defaultSRRequestVolume    = 100
	defaultSRStdevFactor      = 1900
	defaultFPThreshold        = 85
	defaultFPMinimumHosts     = 5
	defaultFPRequestVolume    = 50

	// minDuration bounds Interval and BaseEjectionTime from below: Envoy
	// counts them in milliseconds.
	minDuration = time.Millisecond
)

// Config is one cluster's outlier_detection. Start from DefaultConfig and
// overwrite the fields the proto sets: a UInt32Value wrapper that is set to
// 0 means 0 (a consecutive threshold of 0 turns that detector off, an
// enforcing percentage of 0 detects without ejecting), exactly as in Envoy.
type Config struct {
	// Consecutive5xx is consecutive_5xx: 5xx responses (and, without
	// SplitExternalLocalOriginErrors, local-origin failures mapped to 5xx)
	// in a row that eject a host. 0 disables. Default 5.
	Consecutive5xx uint32
	// ConsecutiveGatewayFailure is consecutive_gateway_failure: 502, 503 and
	// 504 responses in a row. 0 disables. Default 5.
	ConsecutiveGatewayFailure uint32
	// ConsecutiveLocalOriginFailure is consecutive_local_origin_failure:
	// connect failures, timeouts and resets in a row; counted only with
	// SplitExternalLocalOriginErrors. 0 disables. Default 5.
	ConsecutiveLocalOriginFailure uint32

	// Enforcing* are the percent chances (0-100) that a detected outlier is
	// really ejected. Defaults: 100, 0 (gateway), 100, 100, 100, 0 and 0
	// (both failure percentages).
	EnforcingConsecutive5xx                uint32
	EnforcingConsecutiveGatewayFailure     uint32
	EnforcingConsecutiveLocalOriginFailure uint32
	EnforcingSuccessRate                   uint32
	EnforcingLocalOriginSuccessRate        uint32
	EnforcingFailurePercentage             uint32
	EnforcingFailurePercentageLocalOrigin  uint32

	// SplitExternalLocalOriginErrors is split_external_local_origin_errors:
	// local-origin failures get their own counter and success rate instead
	// of counting as 5xx. Default false.
	SplitExternalLocalOriginErrors bool

	// Interval is the period of the success-rate / failure-percentage sweep
	// and of the ejection-multiplier decay. At least 1ms. Default 10s.
	Interval time.Duration
	// BaseEjectionTime is base_ejection_time: an ejection lasts
	// BaseEjectionTime × the host's ejection multiplier, capped at
	// MaxEjectionTime. At least 1ms. Default 30s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime is max_ejection_time; it may not be below
	// BaseEjectionTime. 0 means unset (the proto forbids an explicit 0):
	// Envoy's default, 300s or BaseEjectionTime if that is larger.
	MaxEjectionTime time.Duration
	// MaxEjectionTimeJitter is max_ejection_time_jitter: a random extra of
	// up to this much is added to each ejection. Default 0.
	MaxEjectionTimeJitter time.Duration

	// MaxEjectionPercent is max_ejection_percent (0-100): an ejection that
	// would put more than this share of the hosts out is not done
	// (ejections_overflow). Default 10.
	MaxEjectionPercent uint32
	// AlwaysEjectOneHost is always_eject_one_host: the first ejection is
	// allowed whatever MaxEjectionPercent says. Default false, as in Envoy
	// since the field exists: without it a cluster of fewer than 10 hosts
	// ejects nothing under the default 10 %.
	AlwaysEjectOneHost bool

	// SuccessRateMinimumHosts, SuccessRateRequestVolume and
	// SuccessRateStdevFactor drive success-rate ejection: among hosts with
	// at least RequestVolume requests in the last Interval, if there are at
	// least MinimumHosts of them, a host whose success rate is below
	// mean − stdev × StdevFactor/1000 is an outlier. Defaults 5, 100, 1900.
	SuccessRateMinimumHosts  uint32
	SuccessRateRequestVolume uint32
	SuccessRateStdevFactor   uint32

	// FailurePercentageThreshold (0-100), FailurePercentageMinimumHosts and
	// FailurePercentageRequestVolume drive failure-percentage ejection: a
	// host with at least RequestVolume requests in the last Interval whose
	// failure percentage is at least Threshold is an outlier, if at least
	// MinimumHosts hosts had the volume. Defaults 85, 5, 50.
	FailurePercentageThreshold     uint32
	FailurePercentageMinimumHosts  uint32
	FailurePercentageRequestVolume uint32

	// SuccessfulActiveHealthCheckUnejectHost is
	// successful_active_health_check_uneject_host: HealthCheckPassed
	// returns an ejected host at once. Default true.
	SuccessfulActiveHealthCheckUnejectHost bool
}

// DefaultConfig is Envoy's outlier_detection with every field unset.
func DefaultConfig() Config {
	return Config{
		Consecutive5xx:                         defaultConsecutive,
		ConsecutiveGatewayFailure:              defaultConsecutive,
		ConsecutiveLocalOriginFailure:          defaultConsecutive,
		EnforcingConsecutive5xx:                100,
		EnforcingConsecutiveGatewayFailure:     0,
		EnforcingConsecutiveLocalOriginFailure: 100,
		EnforcingSuccessRate:                   100,
		EnforcingLocalOriginSuccessRate:        100,
		EnforcingFailurePercentage:             0,
		EnforcingFailurePercentageLocalOrigin:  0,
		Interval:                               defaultInterval,
		BaseEjectionTime:                       defaultBaseEjectionTime,
		MaxEjectionPercent:                     defaultMaxEjectionPercent,
		SuccessRateMinimumHosts:                defaultSRMinimumHosts,
		SuccessRateRequestVolume:               defaultSRRequestVolume,
		SuccessRateStdevFactor:                 defaultSRStdevFactor,
		FailurePercentageThreshold:             defaultFPThreshold,
		FailurePercentageMinimumHosts:          defaultFPMinimumHosts,
		FailurePercentageRequestVolume:         defaultFPRequestVolume,
		SuccessfulActiveHealthCheckUnejectHost: true,
	}
}

// Validate checks what the detector relies on. It is pure: MaxEjectionTime's
// default is applied where it is used, not written back.
func (c *Config) Validate() error {
	if c.Interval < minDuration {
		return fmt.Errorf("outlier_detection.interval %v: must be at least 1ms", c.Interval)
	}
	if c.BaseEjectionTime < minDuration {
		return fmt.Errorf("outlier_detection.base_ejection_time %v: must be at least 1ms", c.BaseEjectionTime)
	}
	if c.MaxEjectionTime < 0 {
		return fmt.Errorf("outlier_detection.max_ejection_time %v: negative", c.MaxEjectionTime)
	}
	if c.MaxEjectionTime != 0 && c.MaxEjectionTime < c.BaseEjectionTime {
		return fmt.Errorf("outlier_detection.max_ejection_time %v: cannot be smaller than base_ejection_time %v",
			c.MaxEjectionTime, c.BaseEjectionTime)
	}
	if c.MaxEjectionTimeJitter < 0 {
		return fmt.Errorf("outlier_detection.max_ejection_time_jitter %v: negative", c.MaxEjectionTimeJitter)
	}
	for _, p := range [...]struct {
		name string
		v    uint32
	}{
		{"max_ejection_percent", c.MaxEjectionPercent},
		{"enforcing_consecutive_5xx", c.EnforcingConsecutive5xx},
		{"enforcing_consecutive_gateway_failure", c.EnforcingConsecutiveGatewayFailure},
		{"enforcing_consecutive_local_origin_failure", c.EnforcingConsecutiveLocalOriginFailure},
		{"enforcing_success_rate", c.EnforcingSuccessRate},
		{"enforcing_local_origin_success_rate", c.EnforcingLocalOriginSuccessRate},
		{"enforcing_failure_percentage", c.EnforcingFailurePercentage},
		{"enforcing_failure_percentage_local_origin", c.EnforcingFailurePercentageLocalOrigin},
		{"failure_percentage_threshold", c.FailurePercentageThreshold},
	} {
		if p.v > 100 {
			return fmt.Errorf("outlier_detection.%s %d: must be at most 100", p.name, p.v)
		}
	}
	return nil
}

// maxEjectionTime is MaxEjectionTime with Envoy's default applied.
func (c *Config) maxEjectionTime() time.Duration {
	if c.MaxEjectionTime != 0 {
		return c.MaxEjectionTime
	}
	return max(defaultMaxEjectionTime, c.BaseEjectionTime)
}

// sanitized is c with whatever would break the detector forced into range,
// so that New never fails or panics on a config that skipped Validate.
func (c Config) sanitized() Config {
	c.Interval = max(c.Interval, minDuration)
	c.BaseEjectionTime = max(c.BaseEjectionTime, minDuration)
	if c.MaxEjectionTime != 0 && c.MaxEjectionTime < c.BaseEjectionTime {
		c.MaxEjectionTime = c.BaseEjectionTime
	}
	c.MaxEjectionTimeJitter = max(c.MaxEjectionTimeJitter, 0)
	for _, p := range []*uint32{
		&c.MaxEjectionPercent, &c.EnforcingConsecutive5xx, &c.EnforcingConsecutiveGatewayFailure,
		&c.EnforcingConsecutiveLocalOriginFailure, &c.EnforcingSuccessRate,
		&c.EnforcingLocalOriginSuccessRate, &c.EnforcingFailurePercentage,
		&c.EnforcingFailurePercentageLocalOrigin, &c.FailurePercentageThreshold,
	} {
		*p = min(*p, 100)
	}
	return c
}
