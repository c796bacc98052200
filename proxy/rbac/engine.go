package rbac

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// Input is what the rules see of one request or connection. Evaluating
// caches the peer certificate's names in it: use an Input for one
// evaluation at a time (the filters make one per request or connection).
type Input struct {
	// Request is the HTTP request; nil for a connection (network filter),
	// where no header or url_path rule is allowed.
	Request *http.Request
	// Local is the connection's local address and Peer its remote one
	// (the direct peer). An invalid (zero) address matches no IP or port
	// rule.
	Local, Peer netip.AddrPort
	// Remote is the client address remote_ip matches: for a request, the
	// one the connection manager determined (x-forwarded-for when it
	// trusts it); invalid means the peer.
	Remote netip.Addr
	// TLS is the connection's TLS session; nil for plaintext (and for TLS
	// passed through unterminated).
	TLS *tls.ConnectionState

	// names caches the peer certificate's names once an authenticated
	// rule needed them, for the rules after it.
	names *peerNames
}

// peerNames are the names an authenticated rule matches, in its order.
type peerNames struct {
	uris    []string
	dns     []string
	subject string
	subjSet bool
}

func (in *Input) peerNames() *peerNames {
	if in.names != nil {
		return in.names
	}
	if len(in.TLS.PeerCertificates) == 0 {
		in.names = &peerNames{subjSet: true} // Envoy's subject of no certificate: ""
	} else {
		in.names = namesOf(in.TLS.PeerCertificates[0])
	}
	return in.names
}

func (in *Input) subject() string {
	pn := in.peerNames()
	if !pn.subjSet {
		pn.subject, pn.subjSet = in.TLS.PeerCertificates[0].Subject.String(), true
	}
	return pn.subject
}

func (in *Input) remote() netip.Addr {
	if in.Remote.IsValid() {
		return in.Remote
	}
	return in.Peer.Addr()
}

// Decision is the outcome of evaluating Rules.
type Decision struct {
	Allowed bool
	// Policy names the first policy (in name order) that matched; ""
	// when none did.
	Policy string
}

// Engine is compiled Rules, safe for concurrent use.
type Engine struct {
	action   Action
	policies []policy
}

type policy struct {
	name        string
	permissions []node
	principals  []node
}

// NewEngine checks and compiles r; http false refuses the kinds that
// need a request (the network filter's rules). Errors are *ConfigError
// with the field path relative to the Rules.
func NewEngine(r *Rules, http bool) (*Engine, error) {
	return compileRules(r, http)
}

func compileRules(r *Rules, http bool) (*Engine, error) {
	if r.Action != Allow && r.Action != Deny {
		return nil, cfgErr("action", "%s is not supported (ALLOW or DENY)", r.Action)
	}
	if err := validateNames(r.Policies); err != nil {
		return nil, err
	}
	e := &Engine{action: r.Action}
	for _, p := range sortedPolicies(r.Policies) {
		pp := policyPath(p.Name)
		if len(p.Permissions) == 0 {
			return nil, cfgErr(pp+".permissions", "at least one permission is required")
		}
		if len(p.Principals) == 0 {
			return nil, cfgErr(pp+".principals", "at least one principal is required")
		}
		cp := policy{name: p.Name}
		for i := range p.Permissions {
			n, err := compileRule(fmt.Sprintf("%s.permissions[%d]", pp, i), &p.Permissions[i], permission, http)
			if err != nil {
				return nil, err
			}
			cp.permissions = append(cp.permissions, n)
		}
		for i := range p.Principals {
			n, err := compileRule(fmt.Sprintf("%s.principals[%d]", pp, i), &p.Principals[i], principal, http)
			if err != nil {
				return nil, err
			}
			cp.principals = append(cp.principals, n)
		}
		e.policies = append(e.policies, cp)
	}
	return e, nil
}

// Action is the engine's action.
func (e *Engine) Action() Action { return e.action }

// Evaluate decides on one request or connection: under ALLOW it is
// allowed when a policy matches, under DENY when none does.
func (e *Engine) Evaluate(in *Input) Decision {
	matched := ""
	found := false
	for i := range e.policies {
		p := &e.policies[i]
		if anyMatch(p.permissions, in) && anyMatch(p.principals, in) {
			matched, found = p.name, true
			break
		}
	}
	if e.action == Deny {
		return Decision{Allowed: !found, Policy: matched}
	}
	return Decision{Allowed: found, Policy: matched}
}

func anyMatch(ns []node, in *Input) bool {
	for i := range ns {
		if ns[i].match(in) {
			return true
		}
	}
	return false
}

// node is a compiled Rule.
type node struct {
	kind   Kind
	kids   []node
	header router.HeaderMatchers
	str    *stringMatcher // nil for an authenticated rule without a name
	cidr   netip.Prefix
	port   uint16
}

// Field names of the sets and negations on each side, for error paths.
func setField(s side, k Kind) string {
	switch {
	case s == permission && k == KindAnd:
		return "and_rules.rules"
	case s == permission && k == KindOr:
		return "or_rules.rules"
	case s == permission:
		return "not_rule"
	case k == KindAnd:
		return "and_ids.ids"
	case k == KindOr:
		return "or_ids.ids"
	}
	return "not_id"
}

func compileRule(field string, r *Rule, s side, http bool) (node, error) {
	if !s.allowed(r.Kind) {
		return node{}, cfgErr(field, "%s is not a %s", r.Kind, s)
	}
	n := node{kind: r.Kind}
	switch r.Kind {
	case KindAny:
	case KindAnd, KindOr:
		if len(r.Rules) == 0 {
			return node{}, cfgErr(join(field, setField(s, r.Kind)), "at least one rule is required")
		}
		for i := range r.Rules {
			k, err := compileRule(fmt.Sprintf("%s[%d]", join(field, setField(s, r.Kind)), i), &r.Rules[i], s, http)
			if err != nil {
				return node{}, err
			}
			n.kids = append(n.kids, k)
		}
	case KindNot:
		if len(r.Rules) != 1 {
			return node{}, cfgErr(join(field, setField(s, r.Kind)), "exactly one rule is required, got %d", len(r.Rules))
		}
		k, err := compileRule(join(field, setField(s, r.Kind)), &r.Rules[0], s, http)
		if err != nil {
			return node{}, err
		}
		n.kids = []node{k}
	case KindHeader:
		hp := join(field, "header")
		if !http {
			return node{}, cfgErr(hp, "header is only available to the HTTP filter (envoy.filters.http.rbac)")
		}
		if r.Header == nil {
			return node{}, cfgErr(hp, "a header matcher is required")
		}
		hm, err := router.CompileHeaderMatchers(hp, []router.HeaderMatcher{*r.Header})
		if err != nil {
			return node{}, headerErr(hp, err)
		}
		n.header = hm
	case KindURLPath:
		pp := join(field, "url_path")
		if !http {
			return node{}, cfgErr(pp, "url_path is only available to the HTTP filter (envoy.filters.http.rbac)")
		}
		if r.String == nil {
			return node{}, cfgErr(join(pp, "path"), "a string matcher is required")
		}
		sm, err := compileString(join(pp, "path"), r.String)
		if err != nil {
			return node{}, err
		}
		n.str = sm
	case KindAuthenticated:
		if r.String != nil {
			sm, err := compileString(join(field, "authenticated.principal_name"), r.String)
			if err != nil {
				return node{}, err
			}
			if sm.m.IsRegex() {
				// A mesh has few callers: remember the regex's answers.
				sm.cache = newRegexCache()
			}
			n.str = sm
		}
	case KindDestinationIP, KindDirectRemoteIP, KindRemoteIP, KindSourceIP:
		if !r.CIDR.IsValid() {
			return node{}, cfgErr(join(field, r.Kind.String()), "an address_prefix and prefix_len are required")
		}
		n.cidr = r.CIDR.Masked()
	case KindDestinationPort:
		if r.Port > 65535 {
			return node{}, cfgErr(join(field, "destination_port"), "%d is not a port", r.Port)
		}
		n.port = uint16(r.Port)
	default:
		return node{}, cfgErr(field, "unknown rule kind %d", r.Kind)
	}
	return n, nil
}

// headerErr rewrites the router's error path for a one-matcher list
// ("x.header[0].name") to the field the rule names ("x.header.name").
func headerErr(field string, err error) error {
	var ce *router.ConfigError
	if errors.As(err, &ce) {
		f := strings.Replace(ce.Field, field+"[0]", field, 1)
		return &ConfigError{Field: f, Msg: ce.Msg, Err: ce.Err}
	}
	return &ConfigError{Field: field, Msg: "invalid header matcher", Err: err}
}

func join(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

// match follows Envoy's RBAC matchers (source/extensions/filters/common/
// rbac/matchers.cc).
func (n *node) match(in *Input) bool {
	switch n.kind {
	case KindAny:
		return true
	case KindAnd:
		for i := range n.kids {
			if !n.kids[i].match(in) {
				return false
			}
		}
		return true
	case KindOr:
		return anyMatch(n.kids, in)
	case KindNot:
		return !n.kids[0].match(in)
	case KindHeader:
		return in.Request != nil && n.header.MatchAll(in.Request)
	case KindURLPath:
		if in.Request == nil {
			return false
		}
		return n.str.match(router.RequestPath(in.Request))
	case KindDestinationIP:
		return inRange(n.cidr, in.Local.Addr())
	case KindDestinationPort:
		return in.Local.IsValid() && in.Local.Port() == n.port
	case KindDirectRemoteIP, KindSourceIP:
		return inRange(n.cidr, in.Peer.Addr())
	case KindRemoteIP:
		return inRange(n.cidr, in.remote())
	case KindAuthenticated:
		return authenticated(n.str, in)
	}
	return false
}

// inRange: an IPv4 range never matches an IPv6 address nor the reverse,
// as in Envoy; IPv4-mapped IPv6 addresses count as IPv4.
func inRange(p netip.Prefix, a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	return p.Contains(a.Unmap())
}

// authenticated is Envoy's AuthenticatedMatcher: any TLS session when m
// is nil; otherwise m against each URI SAN, then each DNS SAN of the
// peer's leaf certificate, then its subject.
func authenticated(m *stringMatcher, in *Input) bool {
	if in.TLS == nil {
		return false
	}
	if m == nil {
		return true
	}
	pn := in.peerNames()
	for _, u := range pn.uris {
		if m.match(u) {
			return true
		}
	}
	for _, d := range pn.dns {
		if m.match(d) {
			return true
		}
	}
	return m.match(in.subject())
}

// PeerIdentity names the TLS peer for logs: its first URI SAN (a SPIFFE
// ID in the mesh), else its first DNS SAN, else its subject; "" without a
// peer certificate.
func PeerIdentity(st *tls.ConnectionState) string {
	if st == nil || len(st.PeerCertificates) == 0 {
		return ""
	}
	leaf := st.PeerCertificates[0]
	switch {
	case len(leaf.URIs) > 0:
		return leaf.URIs[0].String()
	case len(leaf.DNSNames) > 0:
		return leaf.DNSNames[0]
	}
	return leaf.Subject.String()
}
