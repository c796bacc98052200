package rbac

import (
	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/listener"
)

// NetworkConfig is envoy.extensions.filters.network.rbac.v3.RBAC.
type NetworkConfig struct {
	// StatPrefix names the counters: <stat_prefix>.rbac.allowed, ...
	StatPrefix string
	// Rules are enforced (nil: none); they may not use header or
	// url_path, which need a request.
	Rules *Rules
	// ShadowRules are evaluated, counted and logged, never enforced.
	ShadowRules *Rules
	// ShadowRulesStatPrefix goes before shadow_allowed and shadow_denied.
	ShadowRulesStatPrefix string
}

// NetworkFilter is the envoy.filters.network.rbac filter, a
// listener.ConnFilter (and StatsReporter). It decides once per
// connection, as soon as its TLS handshake (if any) is done and before
// any byte reaches the connection manager or the TCP proxy: Envoy's
// ONE_TIME_ON_FIRST_BYTE, without waiting for the first byte. Safe for
// concurrent use.
type NetworkFilter struct {
	eng   engines
	stats *counters
	log   logger
}

// NewNetworkFilter compiles the filter. Errors are *ConfigError with
// paths relative to its config.
func NewNetworkFilter(cfg NetworkConfig) (*NetworkFilter, error) {
	if cfg.StatPrefix == "" {
		return nil, cfgErr("stat_prefix", "a stat_prefix is required")
	}
	e, err := compileEngines(cfg.Rules, cfg.ShadowRules, false)
	if err != nil {
		return nil, err
	}
	return &NetworkFilter{
		eng:   e,
		stats: newCounters(statPrefixJoin(cfg.StatPrefix, "rbac."), "", cfg.ShadowRulesStatPrefix),
	}, nil
}

// SetLogger gives the filter the logger its denials go to (the server
// scopes it to the listener); until then it logs nothing.
func (f *NetworkFilter) SetLogger(l hclog.Logger) { f.log.set(l) }

// Stats reports <stat_prefix>.rbac.allowed, .denied, .shadow_allowed and
// .shadow_denied.
func (f *NetworkFilter) Stats() map[string]uint64 { return f.stats.snapshot() }

// Admit evaluates the shadow rules (counted, denials logged) and the
// enforced rules; false closes the connection.
func (f *NetworkFilter) Admit(info *listener.ConnInfo) bool {
	e := f.eng
	if e.enforced == nil && e.shadow == nil {
		return true
	}
	input := Input{TLS: info.TLS, Local: addrPort(info.Local), Peer: addrPort(info.Remote)}
	if e.shadow != nil {
		d := e.shadow.Evaluate(&input)
		if d.Allowed {
			f.stats.shadowAllowed.Add(1)
		} else {
			f.stats.shadowDenied.Add(1)
			f.logDenial("RBAC: shadow rules deny the connection (not enforced)", info, d)
		}
	}
	if e.enforced == nil {
		return true
	}
	d := e.enforced.Evaluate(&input)
	if d.Allowed {
		f.stats.allowed.Add(1)
		return true
	}
	f.stats.denied.Add(1)
	f.logDenial("RBAC: connection denied", info, d)
	return false
}

func (f *NetworkFilter) logDenial(msg string, info *listener.ConnInfo, d Decision) {
	log := f.log.get()
	if !log.IsInfo() {
		return
	}
	peer, local := "", ""
	if info.Remote != nil {
		peer = info.Remote.String()
	}
	if info.Local != nil {
		local = info.Local.String()
	}
	caller := PeerIdentity(info.TLS)
	if caller == "" {
		caller = peer
	}
	policy := d.Policy
	if policy == "" {
		policy = "none"
	}
	log.Info(msg, "caller", caller, "peer", peer, "local", local, "matched_policy", policy)
}
