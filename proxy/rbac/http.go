package rbac

import (
	"net"
	"net/http"
	"net/netip"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/forward"
	"github.com/outrigger-mesh/outrigger/proxy/hcm"
)

// DeniedBody is the body of Envoy's 403 for a denied request (and the
// grpc-message of a denied gRPC call).
const DeniedBody = "RBAC: access denied"

// HTTPConfig is envoy.extensions.filters.http.rbac.v3.RBAC: the filter's
// configuration, and a route's override of it.
type HTTPConfig struct {
	// Rules are enforced; nil enforces nothing (every request passes,
	// uncounted).
	Rules *Rules
	// ShadowRules are evaluated and counted (shadow_allowed,
	// shadow_denied) and their denials logged, never enforced; nil:
	// none.
	ShadowRules *Rules
	// RulesStatPrefix and ShadowRulesStatPrefix go between "rbac." and
	// the counter names (rbac.<prefix>.allowed). A route's override
	// counts under its filter's names, as in Envoy.
	RulesStatPrefix       string
	ShadowRulesStatPrefix string
}

// HTTPFilter is the envoy.filters.http.rbac filter, an hcm.HTTPFilter and
// hcm.StatsReporter. Safe for concurrent use.
type HTTPFilter struct {
	name  string
	eng   engines
	stats *counters
	log   logger
}

// NewHTTPFilter compiles the filter named name (its name in http_filters,
// under which routes give their overrides). Errors are *ConfigError with
// paths relative to the filter's config ("rules.policies[\"p\"]...").
func NewHTTPFilter(name string, cfg HTTPConfig) (*HTTPFilter, error) {
	e, err := compileEngines(cfg.Rules, cfg.ShadowRules, true)
	if err != nil {
		return nil, err
	}
	return &HTTPFilter{
		name:  name,
		eng:   e,
		stats: newCounters("rbac.", cfg.RulesStatPrefix, cfg.ShadowRulesStatPrefix),
	}, nil
}

// SetLogger gives the filter the logger its denials go to (the server
// scopes it to the listener); until then it logs nothing. Safe to call
// while the filter serves.
func (f *HTTPFilter) SetLogger(l hclog.Logger) { f.log.set(l) }

// Stats reports rbac.allowed, rbac.denied, rbac.shadow_allowed and
// rbac.shadow_denied (with the configured stat prefixes).
func (f *HTTPFilter) Stats() map[string]uint64 { return f.stats.snapshot() }

// RouteConfig is RBACPerRoute: a route's (or virtual host's) rules in
// place of the filter's, enforced and shadow alike.
type RouteConfig struct {
	eng engines
}

// NewRouteConfig compiles RBACPerRoute; cfg nil (no rbac field), like a
// config with neither rules nor shadow rules, turns the filter off on the
// route. Error paths start at "rbac".
func NewRouteConfig(cfg *HTTPConfig) (*RouteConfig, error) {
	if cfg == nil {
		return &RouteConfig{}, nil
	}
	e, err := compileEngines(cfg.Rules, cfg.ShadowRules, true)
	if err != nil {
		return nil, prefixed("rbac", err)
	}
	return &RouteConfig{eng: e}, nil
}

// Disabled reports whether the route turns RBAC off.
func (rc *RouteConfig) Disabled() bool { return rc.eng.enforced == nil && rc.eng.shadow == nil }

// Decode runs the shadow rules (counted and logged), then the enforced
// ones: a denied request gets 403 "RBAC: access denied" (a gRPC call
// PERMISSION_DENIED), logged with the caller's identity.
func (f *HTTPFilter) Decode(w http.ResponseWriter, r *http.Request, in *hcm.FilterInput) hcm.Verdict {
	e := f.eng
	if in != nil {
		if rc, ok := in.PerRoute(f.name).(*RouteConfig); ok {
			e = rc.eng
		}
	}
	if e.enforced == nil && e.shadow == nil {
		return hcm.Verdict{}
	}
	input := Input{Request: r, TLS: r.TLS}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		input.Peer = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		input.Local = addrPort(a)
	}
	if in != nil {
		input.Remote = in.ClientAddress // remote_ip: x-forwarded-for aware
	}
	if e.shadow != nil {
		d := e.shadow.Evaluate(&input)
		if d.Allowed {
			f.stats.shadowAllowed.Add(1)
		} else {
			f.stats.shadowDenied.Add(1)
			f.logDenial("RBAC: shadow rules deny the request (not enforced)", r, in, &input, d)
		}
	}
	if e.enforced == nil {
		return hcm.Verdict{}
	}
	d := e.enforced.Evaluate(&input)
	if d.Allowed {
		f.stats.allowed.Add(1)
		return hcm.Verdict{}
	}
	f.stats.denied.Add(1)
	f.logDenial("RBAC: access denied", r, in, &input, d)
	status, gs := forward.WriteReply(w, r, http.StatusForbidden, DeniedBody)
	return hcm.Verdict{Status: status, GRPCStatus: gs}
}

// logDenial logs both ends: the caller (its certificate's identity, else
// its address) and what it asked for (route, authority, path).
func (f *HTTPFilter) logDenial(msg string, r *http.Request, in *hcm.FilterInput, input *Input, d Decision) {
	log := f.log.get()
	if !log.IsInfo() {
		return
	}
	caller := PeerIdentity(r.TLS)
	if caller == "" {
		caller = r.RemoteAddr
	}
	route, vhost := "", ""
	if in != nil {
		if in.Route != nil {
			route = in.Route.Name
		}
		if in.VHost != nil {
			vhost = in.VHost.Name
		}
	}
	policy := d.Policy
	if policy == "" {
		policy = "none"
	}
	local := ""
	if input.Local.IsValid() {
		local = input.Local.String()
	}
	log.Info(msg,
		"filter", f.name,
		"caller", caller,
		"peer", r.RemoteAddr,
		"local", local,
		"virtual_host", vhost,
		"route", route,
		"method", r.Method,
		"authority", r.Host,
		"path", r.URL.Path,
		"matched_policy", policy,
	)
}
