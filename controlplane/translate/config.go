package translate

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// Consul's proxy config keys (the opaque proxy.config map) that we honour,
// with Consul's meaning (agent/xds/config.ProxyConfig).
const (
	localConnectTimeoutKey = "local_connect_timeout_ms"
	localRequestTimeoutKey = "local_request_timeout_ms"
	// bindAddressKey and bindPortKey move public_listener off the address
	// and port the sidecar is registered with, e.g. to 0.0.0.0 inside a
	// network namespace whose address Consul does not know.
	bindAddressKey = "bind_address"
	bindPortKey    = "bind_port"
)

// proxyConfig is one sidecar's proxy config: its registration's keys, the
// global proxy-defaults' for the keys it does not set, as Consul merges
// them (configentry.MergeServiceConfig: the service's own keys win).
type proxyConfig struct {
	own, defaults map[string]any
}

func proxyConfigOf(m *model.Mesh, sp *api.AgentServiceConnectProxyConfig) proxyConfig {
	c := proxyConfig{own: sp.Config}
	if m.ProxyDefaults != nil {
		c.defaults = m.ProxyDefaults.Config
	}
	return c
}

// get returns key's value and where it comes from, for errors: "config"
// (the registration) or "proxy-defaults config". A null value is unset.
func (c proxyConfig) get(key string) (v any, from string, ok bool) {
	if v, ok := c.own[key]; ok && v != nil {
		return v, "config", true
	}
	if v, ok := c.defaults[key]; ok && v != nil {
		return v, "proxy-defaults config", true
	}
	return nil, "", false
}

// number reads a JSON number or a decimal string, as Consul's weakly typed
// decoding does.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

// millis reads a millisecond count; set is false when the key is absent.
func (c proxyConfig) millis(key string) (d time.Duration, set bool, err error) {
	v, from, ok := c.get(key)
	if !ok {
		return 0, false, nil
	}
	ms, isNumber := number(v)
	if !isNumber {
		if s, isString := v.(string); isString {
			return 0, false, fmt.Errorf("%s %s: %q is not a number of milliseconds", from, key, s)
		}
		return 0, false, fmt.Errorf("%s %s: %v is not a number of milliseconds", from, key, v)
	}
	if ms < 0 || ms > float64((1<<63-1)/time.Millisecond) {
		return 0, false, fmt.Errorf("%s %s: %v is out of range", from, key, v)
	}
	return time.Duration(ms * float64(time.Millisecond)), true, nil
}

// address reads an IP address (a listener binds IPs, not names); "" when
// the key is absent or empty, which Consul treats as unset.
func (c proxyConfig) address(key string) (string, error) {
	v, from, ok := c.get(key)
	if !ok {
		return "", nil
	}
	s, isString := v.(string)
	if !isString {
		return "", fmt.Errorf("%s %s: %v is not an IP address", from, key, v)
	}
	if s == "" {
		return "", nil
	}
	if _, err := netip.ParseAddr(s); err != nil {
		return "", fmt.Errorf("%s %s: %q is not an IP address", from, key, s)
	}
	return s, nil
}

// port reads a TCP port; 0 when the key is absent or 0, which Consul
// treats as unset.
func (c proxyConfig) port(key string) (int, error) {
	v, from, ok := c.get(key)
	if !ok {
		return 0, nil
	}
	f, isNumber := number(v)
	if !isNumber || f != math.Trunc(f) {
		if s, isString := v.(string); isString {
			return 0, fmt.Errorf("%s %s: %q is not a port number", from, key, s)
		}
		return 0, fmt.Errorf("%s %s: %v is not a port number", from, key, v)
	}
	if f < 0 || f > 65535 {
		return 0, fmt.Errorf("%s %s: %v is out of range (1-65535)", from, key, v)
	}
	return int(f), nil
}
