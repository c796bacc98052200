package translate

import (
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

func TestTransparentPort(t *testing.T) {
	tp := func(port int) *api.TransparentProxyConfig {
		return &api.TransparentProxyConfig{OutboundListenerPort: port}
	}
	for _, tc := range []struct {
		name     string
		sp       api.AgentServiceConnectProxyConfig
		defaults *api.ProxyConfigEntry
		want     int
	}{
		{"not transparent", api.AgentServiceConnectProxyConfig{}, nil, 0},
		{"direct", api.AgentServiceConnectProxyConfig{Mode: api.ProxyModeDirect}, &api.ProxyConfigEntry{Mode: api.ProxyModeTransparent}, 0},
		{"registration, default port", api.AgentServiceConnectProxyConfig{Mode: api.ProxyModeTransparent}, nil, DefaultOutboundListenerPort},
		{"registration's port", api.AgentServiceConnectProxyConfig{Mode: api.ProxyModeTransparent, TransparentProxy: tp(16001)}, nil, 16001},
		{"proxy-defaults' mode and port", api.AgentServiceConnectProxyConfig{},
			&api.ProxyConfigEntry{Mode: api.ProxyModeTransparent, TransparentProxy: tp(17001)}, 17001},
		{"registration's port over proxy-defaults'", api.AgentServiceConnectProxyConfig{TransparentProxy: tp(16001)},
			&api.ProxyConfigEntry{Mode: api.ProxyModeTransparent, TransparentProxy: tp(17001)}, 16001},
	} {
		if got := transparentPort(&tc.sp, tc.defaults); got != tc.want {
			t.Errorf("%s: port %d, want %d", tc.name, got, tc.want)
		}
	}
}

// The outbound listener's port must not be taken by an upstream's.
func TestTransparentPortConflict(t *testing.T) {
	m := loadMesh(t, "transparent")
	sp := m.Proxies["web-sidecar-proxy"].ServiceProxy
	sp.Upstreams = append(sp.Upstreams, api.Upstream{DestinationName: "postgres", LocalBindPort: DefaultOutboundListenerPort})
	_, err := Proxy(m, "web-sidecar-proxy")
	if err == nil || !strings.Contains(err.Error(), "both bind 127.0.0.1:15001") {
		t.Fatalf("Proxy = %v, want a bind conflict on 127.0.0.1:15001", err)
	}
}

// An upstream with no passing instance gets no chain (nothing to match);
// the passthrough chain stays.
func TestTransparentNoInstances(t *testing.T) {
	m := loadMesh(t, "transparent")
	m.Services["postgres"].Instances = nil
	r, err := Proxy(m, "web-sidecar-proxy")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range r.Listeners {
		if !strings.HasPrefix(l.GetName(), "outbound_listener:") {
			continue
		}
		if n := len(l.GetFilterChains()); n != 1 || l.GetFilterChains()[0].GetName() != "api:8080" {
			t.Errorf("filter chains %d (%v), want api's only", n, l.GetFilterChains())
		}
		if l.GetDefaultFilterChain().GetName() != OriginalDestinationCluster {
			t.Errorf("default chain %q, want the passthrough", l.GetDefaultFilterChain().GetName())
		}
		return
	}
	t.Fatal("no outbound listener")
}
