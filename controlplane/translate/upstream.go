package translate

import (
	"fmt"
	"math"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/hashicorp/consul/api"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// This file resolves what one upstream of a sidecar asks of the clusters of
// its chain, as Consul v1.16.3 does: the downstream service's
// service-defaults UpstreamConfig (Defaults, then the Overrides entry
// naming the upstream: agent/configentry/resolve.go,
// ComputeResolvedServiceConfig), then the upstream's own config map in the
// registration, whose keys win (configentry.MergeServiceConfig). Each of
// connect_timeout_ms, limits and passive_health_check is taken whole from
// the last layer that sets it (UpstreamConfig.MergeInto), never merged
// field by field.
//
// A sidecar registered through a Consul agent carries the agent's merge in
// the catalog already (its upstreams' config holds the central keys); one
// registered in the catalog directly does not. Resolving both layers here
// gives the same answer for both.

// The upstream config keys we honour (structs.UpstreamConfig's aliases).
const (
	connectTimeoutMsKey   = "connect_timeout_ms"
	limitsKey             = "limits"
	passiveHealthCheckKey = "passive_health_check"
)

// kindServiceDefaults is Consul's kind of the entry holding UpstreamConfig.
const kindServiceDefaults = "service-defaults"

// optional is a value that may be unset, so that an explicit zero can be
// told from an absent field (Consul's pointer fields).
type optional[T comparable] struct {
	v   T
	set bool
}

func some[T comparable](v T) optional[T] { return optional[T]{v: v, set: true} }

// upstreamLimits is Consul's UpstreamLimits; an unset field keeps Envoy's
// default.
type upstreamLimits struct {
	maxConnections, maxPendingRequests, maxConcurrentRequests optional[uint32]
}

// passiveHealthCheck is Consul's PassiveHealthCheck. Zero interval and
// maxFailures are unset, as in Consul's ToOutlierDetection.
type passiveHealthCheck struct {
	interval                time.Duration
	maxFailures             uint32
	enforcingConsecutive5xx optional[uint32]
	maxEjectionPercent      optional[uint32]
	baseEjectionTime        optional[time.Duration]
}

// clusterSettings is what one upstream's resolved config makes of every
// cluster of its chain. It is comparable: clusters are shared by the
// proxies whose upstreams resolve to the same settings.
type clusterSettings struct {
	// connectTimeout, when positive, replaces the resolvers' connect
	// timeouts (Consul's OverrideConnectTimeout of the chain).
	connectTimeout time.Duration
	limits         upstreamLimits
	passive        passiveHealthCheck
}

// upstreamSettings resolves the settings of upstream u of the sidecar id
// in front of service downstream. An invalid service-defaults is an
// *EntryError naming it; an invalid registration key is an error naming
// the proxy, the upstream and the key.
func upstreamSettings(m *model.Mesh, id, downstream string, u api.Upstream) (clusterSettings, error) {
	var s clusterSettings
	if svc := m.Services[downstream]; svc != nil && svc.Defaults != nil && svc.Defaults.UpstreamConfig != nil {
		uc := svc.Defaults.UpstreamConfig
		ref := entryRef{kindServiceDefaults, svc.Defaults.Name}
		if uc.Defaults != nil {
			if err := s.applyEntry(ref, "UpstreamConfig.Defaults", uc.Defaults); err != nil {
				return s, err
			}
		}
		// Consul keys the overrides by name: the last one for a name wins.
		for i := len(uc.Overrides) - 1; i >= 0; i-- {
			o := uc.Overrides[i]
			if overrideMatches(o, u.DestinationName) {
				if err := s.applyEntry(ref, fmt.Sprintf("UpstreamConfig.Overrides[%d] (%s)", i, o.Name), o); err != nil {
					return s, err
				}
				break
			}
		}
	}
	if err := s.applyRegistration(u.Config); err != nil {
		return s, fmt.Errorf("translate: proxy %q: upstream %q: %w", id, u.DestinationName, err)
	}
	return s, nil
}

// overrideMatches reports whether an UpstreamConfig.Overrides entry is
// for the local upstream name. An override for a peer's service never is
// (peered upstreams are skipped); Consul CE refuses any namespace or
// partition in an override, so only the defaults can match.
func overrideMatches(o *api.UpstreamConfig, name string) bool {
	isDefault := func(s string) bool { return s == "" || s == "default" }
	return o != nil && o.Name == name && o.Peer == "" && isDefault(o.Namespace) && isDefault(o.Partition)
}

// applyEntry lays one UpstreamConfig of a service-defaults over s, as
// UpstreamConfig.MergeInto does: only what it sets replaces s's.
func (s *clusterSettings) applyEntry(ref entryRef, where string, c *api.UpstreamConfig) error {
	if c.ConnectTimeoutMs > 0 { // Consul normalizes a negative one to 0
		if int64(c.ConnectTimeoutMs) > math.MaxInt64/int64(time.Millisecond) {
			return entryErr(ref, "%s.ConnectTimeoutMs: %d is out of range", where, c.ConnectTimeoutMs)
		}
		s.connectTimeout = time.Duration(c.ConnectTimeoutMs) * time.Millisecond
	}
	if l := c.Limits; l != nil {
		var out upstreamLimits
		for _, f := range []struct {
			name string
			v    *int
			dst  *optional[uint32]
		}{
			{"MaxConnections", l.MaxConnections, &out.maxConnections},
			{"MaxPendingRequests", l.MaxPendingRequests, &out.maxPendingRequests},
			{"MaxConcurrentRequests", l.MaxConcurrentRequests, &out.maxConcurrentRequests},
		} {
			if f.v == nil {
				continue
			}
			v, err := limitValue(float64(*f.v))
			if err != nil {
				return entryErr(ref, "%s.Limits.%s: %v", where, f.name, err)
			}
			*f.dst = some(v)
		}
		s.limits = out
	}
	if p := c.PassiveHealthCheck; p != nil {
		out := passiveHealthCheck{interval: p.Interval, maxFailures: p.MaxFailures}
		if p.EnforcingConsecutive5xx != nil {
			out.enforcingConsecutive5xx = some(*p.EnforcingConsecutive5xx)
		}
		if p.MaxEjectionPercent != nil {
			out.maxEjectionPercent = some(*p.MaxEjectionPercent)
		}
		if p.BaseEjectionTime != nil {
			out.baseEjectionTime = some(*p.BaseEjectionTime)
		}
		if field, err := out.check(); err != nil {
			return entryErr(ref, "%s.PassiveHealthCheck.%s: %v", where, field, err)
		}
		s.passive = out
	}
	return nil
}

// applyRegistration lays the upstream's own config map over s: a key that
// is set and not empty (null, 0, "" or {}) replaces what the entries said,
// as Consul's mergo.Merge of the registration over them does.
func (s *clusterSettings) applyRegistration(cfg map[string]any) error {
	// Sorted, so that two spellings of one key ("limits", "Limits") give
	// the same answer every time: the last in byte order wins.
	for _, key := range sortedKeys(cfg) {
		v := cfg[key]
		if isEmpty(v) {
			continue
		}
		switch normalKey(key) {
		case normalKey(connectTimeoutMsKey):
			ms, err := wholeNumber(v)
			if err != nil {
				return fmt.Errorf("config %s: %w", key, err)
			}
			if ms < 0 || ms > float64(math.MaxInt64/int64(time.Millisecond)) {
				return fmt.Errorf("config %s: %v is out of range", key, v)
			}
			s.connectTimeout = time.Duration(ms) * time.Millisecond
		case normalKey(limitsKey):
			l, err := limitsFromMap(key, v)
			if err != nil {
				return err
			}
			s.limits = l
		case normalKey(passiveHealthCheckKey):
			p, err := passiveFromMap(key, v)
			if err != nil {
				return err
			}
			s.passive = p
		}
	}
	return nil
}

// normalKey folds a key the way Consul's decoding matches it: a field name
// in any case or its snake_case alias ("MaxConnections", "max_connections").
func normalKey(k string) string {
	return strings.ToLower(strings.ReplaceAll(k, "_", ""))
}

// isEmpty is mergo's empty value: the registration's key then does not
// shadow the entries'.
func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case bool:
		return !x
	case map[string]any:
		return len(x) == 0
	}
	f, ok := number(v)
	return ok && f == 0
}

// wholeNumber reads a JSON number or a decimal string without a fraction.
func wholeNumber(v any) (float64, error) {
	f, ok := number(v)
	if !ok || f != math.Trunc(f) {
		if s, isStr := v.(string); isStr {
			return 0, fmt.Errorf("%q is not a whole number", s)
		}
		return 0, fmt.Errorf("%v is not a whole number", v)
	}
	return f, nil
}

// limitValue checks one circuit-breaker limit. Consul passes 0 on to Envoy,
// where it refuses every request; our proxy rejects that, so it is refused
// here, naming the entry, rather than NACKed.
func limitValue(f float64) (uint32, error) {
	switch {
	case f < 0:
		return 0, fmt.Errorf("%v is negative", f)
	case f == 0:
		return 0, fmt.Errorf("0 would refuse every request (leave it unset for the proxy's default)")
	case f > math.MaxUint32:
		return 0, fmt.Errorf("%v is out of range", f)
	}
	return uint32(f), nil
}

// fields reads a nested config object's keys by their normal form.
func fields(key string, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("config %s: %v is not an object", key, v)
	}
	out := make(map[string]any, len(m))
	for _, k := range sortedKeys(m) { // deterministic, as in applyRegistration
		if x := m[k]; x != nil {
			out[normalKey(k)] = x
		}
	}
	return out, nil
}

// limitsFromMap reads the registration's limits object.
func limitsFromMap(key string, v any) (upstreamLimits, error) {
	var out upstreamLimits
	m, err := fields(key, v)
	if err != nil {
		return out, err
	}
	for _, f := range []struct {
		name string
		dst  *optional[uint32]
	}{
		{"max_connections", &out.maxConnections},
		{"max_pending_requests", &out.maxPendingRequests},
		{"max_concurrent_requests", &out.maxConcurrentRequests},
	} {
		x, ok := m[normalKey(f.name)]
		if !ok {
			continue
		}
		n, err := wholeNumber(x)
		if err != nil {
			return out, fmt.Errorf("config %s.%s: %w", key, f.name, err)
		}
		l, err := limitValue(n)
		if err != nil {
			return out, fmt.Errorf("config %s.%s: %w", key, f.name, err)
		}
		*f.dst = some(l)
	}
	return out, nil
}

// passiveFromMap reads the registration's passive_health_check object.
// Durations are nanoseconds when numbers (how the agent writes a merged
// service-defaults value) or Go durations when strings ("10s").
func passiveFromMap(key string, v any) (passiveHealthCheck, error) {
	var out passiveHealthCheck
	m, err := fields(key, v)
	if err != nil {
		return out, err
	}
	fail := func(name string, err error) (passiveHealthCheck, error) {
		return out, fmt.Errorf("config %s.%s: %w", key, name, err)
	}
	percent := func(name string, dst *optional[uint32]) error {
		x, ok := m[normalKey(name)]
		if !ok {
			return nil
		}
		n, err := wholeNumber(x)
		if err != nil {
			return err
		}
		if n < 0 || n > math.MaxUint32 {
			return fmt.Errorf("%v is out of range", x)
		}
		*dst = some(uint32(n))
		return nil
	}
	if x, ok := m[normalKey("interval")]; ok {
		if out.interval, err = durationValue(x); err != nil {
			return fail("interval", err)
		}
	}
	if x, ok := m[normalKey("max_failures")]; ok {
		n, err := wholeNumber(x)
		if err == nil && (n < 0 || n > math.MaxUint32) {
			err = fmt.Errorf("%v is out of range", x)
		}
		if err != nil {
			return fail("max_failures", err)
		}
		out.maxFailures = uint32(n)
	}
	for _, f := range []struct {
		name string
		dst  *optional[uint32]
	}{
		{"enforcing_consecutive_5xx", &out.enforcingConsecutive5xx},
		{"max_ejection_percent", &out.maxEjectionPercent},
	} {
		if err := percent(f.name, f.dst); err != nil {
			return fail(f.name, err)
		}
	}
	if x, ok := m[normalKey("base_ejection_time")]; ok {
		d, err := durationValue(x)
		if err != nil {
			return fail("base_ejection_time", err)
		}
		out.baseEjectionTime = some(d)
	}
	if field, err := out.check(); err != nil {
		return out, fmt.Errorf("config %s.%s: %w", key, field, err)
	}
	return out, nil
}

// durationValue reads nanoseconds (a number) or a Go duration (a string).
func durationValue(v any) (time.Duration, error) {
	if s, ok := v.(string); ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration", s)
		}
		return d, nil
	}
	n, err := wholeNumber(v)
	if err != nil {
		return 0, err
	}
	if n < math.MinInt64 || n > math.MaxInt64 {
		return 0, fmt.Errorf("%v is out of range", v)
	}
	return time.Duration(n), nil
}

// check rejects what Consul's validation or Envoy's would (Envoy requires
// positive durations and percentages up to 100); it names the field with
// Consul's alias.
func (p passiveHealthCheck) check() (field string, err error) {
	switch {
	case p.interval < 0:
		return "interval", fmt.Errorf("%v is negative", p.interval)
	case p.enforcingConsecutive5xx.v > 100:
		return "enforcing_consecutive_5xx", fmt.Errorf("%d is not a percentage (0-100)", p.enforcingConsecutive5xx.v)
	case p.maxEjectionPercent.v > 100:
		return "max_ejection_percent", fmt.Errorf("%d is not a percentage (0-100)", p.maxEjectionPercent.v)
	case p.baseEjectionTime.set && p.baseEjectionTime.v <= 0:
		return "base_ejection_time", fmt.Errorf("%v: Envoy needs a positive duration", p.baseEjectionTime.v)
	}
	return "", nil
}

// circuitBreakers is Consul's makeThresholdsIfNeeded: one DEFAULT
// threshold holding the limits that are set, or nothing when none is (an
// empty threshold is Envoy's defaults).
func (l upstreamLimits) circuitBreakers() *clusterv3.CircuitBreakers {
	if l == (upstreamLimits{}) {
		return nil
	}
	th := &clusterv3.CircuitBreakers_Thresholds{}
	opt := func(o optional[uint32]) *wrapperspb.UInt32Value {
		if !o.set {
			return nil
		}
		return wrapperspb.UInt32(o.v)
	}
	th.MaxConnections = opt(l.maxConnections)
	th.MaxPendingRequests = opt(l.maxPendingRequests)
	th.MaxRequests = opt(l.maxConcurrentRequests)
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{th}}
}

// outlierDetection is Consul's ToOutlierDetection for a connect proxy
// (allowZero): always present, so that outlier detection runs with Envoy's
// defaults when nothing is configured; consecutive_5xx only when
// MaxFailures is positive; an explicit 0 enforcing percentage is kept.
func (p passiveHealthCheck) outlierDetection() *clusterv3.OutlierDetection {
	od := &clusterv3.OutlierDetection{}
	if p.interval != 0 {
		od.Interval = durationpb.New(p.interval)
	}
	if p.maxFailures != 0 {
		od.Consecutive_5Xx = wrapperspb.UInt32(p.maxFailures)
	}
	if p.enforcingConsecutive5xx.set {
		od.EnforcingConsecutive_5Xx = wrapperspb.UInt32(p.enforcingConsecutive5xx.v)
	}
	if p.maxEjectionPercent.set {
		od.MaxEjectionPercent = wrapperspb.UInt32(p.maxEjectionPercent.v)
	}
	if p.baseEjectionTime.set {
		od.BaseEjectionTime = durationpb.New(p.baseEjectionTime.v)
	}
	return od
}
