package rbac

import (
	"net"
	"net/netip"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// counters are one filter's statistics: Envoy's allowed and denied
// (enforced rules) and shadow_allowed and shadow_denied (shadow rules).
// A request or connection with no rules in force counts in neither pair,
// as in Envoy.
type counters struct {
	allowed, denied, shadowAllowed, shadowDenied atomic.Uint64
	names                                        [4]string
}

// newCounters names the counters as Envoy's generateStats does:
// base is "rbac." for the HTTP filter (under http.<stat_prefix>., which
// the connection manager adds) and "<stat_prefix>.rbac." for the network
// filter; rulesPrefix (HTTP rules_stat_prefix) goes before allowed and
// denied, shadowPrefix (shadow_rules_stat_prefix) before the shadow pair.
func newCounters(base, rulesPrefix, shadowPrefix string) *counters {
	rules := statPrefixJoin(base, rulesPrefix)
	shadow := statPrefixJoin(base, shadowPrefix)
	return &counters{names: [4]string{
		statPrefixJoin(rules, "allowed"),
		statPrefixJoin(rules, "denied"),
		statPrefixJoin(shadow, "shadow_allowed"),
		statPrefixJoin(shadow, "shadow_denied"),
	}}
}

// statPrefixJoin is Envoy's: prefix and token joined by one dot.
func statPrefixJoin(prefix, token string) string {
	switch {
	case prefix == "":
		return token
	case token == "":
		return prefix
	case strings.HasSuffix(prefix, "."):
		return prefix + token
	}
	return prefix + "." + token
}

func (c *counters) snapshot() map[string]uint64 {
	return map[string]uint64{
		c.names[0]: c.allowed.Load(),
		c.names[1]: c.denied.Load(),
		c.names[2]: c.shadowAllowed.Load(),
		c.names[3]: c.shadowDenied.Load(),
	}
}

// engines are the rules in force for a filter or a route: either may be
// nil (no enforcement, no shadow).
type engines struct {
	enforced, shadow *Engine
}

func compileEngines(rules, shadow *Rules, http bool) (engines, error) {
	var e engines
	var err error
	if rules != nil {
		if e.enforced, err = NewEngine(rules, http); err != nil {
			return engines{}, prefixed("rules", err)
		}
	}
	if shadow != nil {
		if e.shadow, err = NewEngine(shadow, http); err != nil {
			return engines{}, prefixed("shadow_rules", err)
		}
	}
	return e, nil
}

// prefixed puts field in front of a *ConfigError's path.
func prefixed(field string, err error) error {
	if ce, ok := err.(*ConfigError); ok {
		return &ConfigError{Field: join(field, ce.Field), Msg: ce.Msg, Err: ce.Err}
	}
	return err
}

// logger is a filter's logger, set once the server knows the listener.
type logger struct{ p atomic.Pointer[hclog.Logger] }

func (l *logger) set(lg hclog.Logger) {
	if lg == nil {
		lg = hclog.NewNullLogger()
	}
	l.p.Store(&lg)
}

func (l *logger) get() hclog.Logger {
	if p := l.p.Load(); p != nil {
		return *p
	}
	return nullLogger
}

var nullLogger = hclog.NewNullLogger()

// addrPort converts a net.Addr, IPv4-mapped IPv6 addresses to IPv4; an
// address it cannot read is invalid (and matches no IP or port rule).
func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	case nil:
		return netip.AddrPort{}
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
