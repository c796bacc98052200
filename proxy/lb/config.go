package lb

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Policy is a load-balancing algorithm, Envoy's lb_policy plus our own
// PEAK_EWMA. The zero value is ROUND_ROBIN, Envoy's default.
type Policy uint8

// The policies New builds.
const (
	RoundRobinPolicy   Policy = iota // ROUND_ROBIN: smooth weighted round robin
	LeastRequestPolicy               // LEAST_REQUEST: power of choices / weighted EDF
	RandomPolicy                     // RANDOM: weighted random
	RingHashPolicy                   // RING_HASH: ketama consistent hashing
	MaglevPolicy                     // MAGLEV: Maglev consistent hashing
	PeakEWMAPolicy                   // PEAK_EWMA: P2C over peak-EWMA latency × load
)

var policyNames = [...]string{
	RoundRobinPolicy:   "ROUND_ROBIN",
	LeastRequestPolicy: "LEAST_REQUEST",
	RandomPolicy:       "RANDOM",
	RingHashPolicy:     "RING_HASH",
	MaglevPolicy:       "MAGLEV",
	PeakEWMAPolicy:     "PEAK_EWMA",
}

// String is the policy's Envoy-style name, e.g. "LEAST_REQUEST".
func (p Policy) String() string {
	if int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("Policy(%d)", uint8(p))
}

// hashed reports whether the policy balances by the request's hash.
func (p Policy) hashed() bool { return p == RingHashPolicy || p == MaglevPolicy }

// Defaults and limits, Envoy's where Envoy has them.
const (
	DefaultChoiceCount            = 2
	DefaultActiveRequestBias      = 1.0
	DefaultMinRingSize            = 1024
	DefaultMaxRingSize            = 8 << 20 // 8M entries
	MaxRingSizeLimit              = 8 << 20 // neither ring bound may exceed it
	DefaultTableSize              = 65537
	MaxTableSize                  = 5000011
	DefaultDecay                  = 10 * time.Second
	DefaultRTT                    = 30 * time.Millisecond
	DefaultOverprovisioningFactor = 140 // percent
	DefaultPanicThreshold         = 50.0
)

// Config is a balancer's policy and its parameters. Zero fields take the
// defaults above; the pointer fields tell "unset" (nil) from 0, which is
// meaningful for them (new(0.0) sets 0). Fields of other policies than
// Policy are validated but otherwise ignored. It holds no Envoy protos:
// proxy/snapshot fills it from a Cluster.
type Config struct {
	Policy Policy

	// ChoiceCount is how many random hosts LEAST_REQUEST (equal weights)
	// and PEAK_EWMA compare per pick: at least 2, default 2.
	ChoiceCount uint32
	// ActiveRequestBias is LEAST_REQUEST's exponent on active requests
	// with unequal weights: nil means 1.0, 0 means plain weights.
	ActiveRequestBias *float64

	// MinRingSize and MaxRingSize bound RING_HASH's ring (defaults 1024
	// and 8M, each at most 8M, min <= max).
	MinRingSize, MaxRingSize uint64
	// TableSize is MAGLEV's table size: a prime up to 5000011, default
	// 65537.
	TableSize uint64

	// Decay is PEAK_EWMA's time constant (default 10s) and DefaultRTT the
	// latency it assumes for a host with no sample yet (default 30ms).
	Decay, DefaultRTT time.Duration

	// OverprovisioningFactor (percent, default 140) scales each priority's
	// and locality's healthy fraction: at 140, a level 72% healthy still
	// takes all its traffic.
	OverprovisioningFactor uint32
	// PanicThreshold (percent, 0-100): a priority whose healthy share falls
	// below it balances over all its hosts, healthy or not. nil means 50;
	// 0 disables panic mode.
	PanicThreshold *float64
	// LocalityWeighted picks a locality by its weight × health within a
	// priority before the policy picks a host in it.
	LocalityWeighted bool
}

// Validate checks every field without changing any. New calls it.
func (c Config) Validate() error {
	if int(c.Policy) >= len(policyNames) {
		return fmt.Errorf("lb: unknown policy %d", uint8(c.Policy))
	}
	if c.ChoiceCount == 1 {
		return errors.New("lb: choice count 1: must be at least 2")
	}
	if b := c.ActiveRequestBias; b != nil && (*b < 0 || math.IsNaN(*b) || math.IsInf(*b, 0)) {
		return fmt.Errorf("lb: active request bias %v: must be a finite number >= 0", *b)
	}
	c = c.withDefaults()
	if c.MinRingSize > MaxRingSizeLimit {
		return fmt.Errorf("lb: ring hash: minimum ring size %d exceeds the limit %d", c.MinRingSize, MaxRingSizeLimit)
	}
	if c.MaxRingSize > MaxRingSizeLimit {
		return fmt.Errorf("lb: ring hash: maximum ring size %d exceeds the limit %d", c.MaxRingSize, MaxRingSizeLimit)
	}
	if c.MinRingSize > c.MaxRingSize {
		return fmt.Errorf("lb: ring hash: minimum ring size %d > maximum ring size %d", c.MinRingSize, c.MaxRingSize)
	}
	if c.TableSize > MaxTableSize {
		return fmt.Errorf("lb: maglev: table size %d exceeds the limit %d", c.TableSize, MaxTableSize)
	}
	if !isPrime(c.TableSize) {
		return fmt.Errorf("lb: maglev: table size %d is not a prime number", c.TableSize)
	}
	if c.Decay < 0 {
		return fmt.Errorf("lb: peak EWMA: negative decay %v", c.Decay)
	}
	if c.DefaultRTT < 0 {
		return fmt.Errorf("lb: peak EWMA: negative default RTT %v", c.DefaultRTT)
	}
	if t := *c.PanicThreshold; !(t >= 0 && t <= 100) {
		return fmt.Errorf("lb: panic threshold %v%%: must be between 0 and 100", t)
	}
	return nil
}

// withDefaults returns c with every unset field at its default.
func (c Config) withDefaults() Config {
	if c.ChoiceCount == 0 {
		c.ChoiceCount = DefaultChoiceCount
	}
	if c.ActiveRequestBias == nil {
		c.ActiveRequestBias = new(DefaultActiveRequestBias)
	}
	if c.MinRingSize == 0 {
		c.MinRingSize = DefaultMinRingSize
	}
	if c.MaxRingSize == 0 {
		c.MaxRingSize = DefaultMaxRingSize
	}
	if c.TableSize == 0 {
		c.TableSize = DefaultTableSize
	}
	if c.Decay == 0 {
		c.Decay = DefaultDecay
	}
	if c.DefaultRTT == 0 {
		c.DefaultRTT = DefaultRTT
	}
	if c.OverprovisioningFactor == 0 {
		c.OverprovisioningFactor = DefaultOverprovisioningFactor
	}
	if c.PanicThreshold == nil {
		c.PanicThreshold = new(DefaultPanicThreshold)
	}
	return c
}

// isPrime reports whether n is prime, by trial division (n <= 5000011).
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
