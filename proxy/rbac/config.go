// Package rbac is Envoy's role-based access control: the policy engine of
// envoy.config.rbac.v3.RBAC (named policies, each a set of permissions and
// a set of principals, under an ALLOW or DENY action) and the two filters
// that enforce it, envoy.filters.http.rbac (an hcm.HTTPFilter: a denied
// request gets 403 "RBAC: access denied", or PERMISSION_DENIED for gRPC)
// and envoy.filters.network.rbac (a listener.ConnFilter: a denied
// connection is closed before any byte is proxied). Shadow rules are
// evaluated, counted and logged, never enforced. It never sees Envoy
// protos: proxy/snapshot converts the filters' configs into Config types.
package rbac

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// Action is RBAC.action: what a matching policy means.
type Action uint8

const (
	// Allow (ALLOW): a request or connection is allowed when at least one
	// policy matches, denied otherwise (no policies: everything denied).
	Allow Action = iota
	// Deny (DENY): denied when at least one policy matches, allowed
	// otherwise (no policies: everything allowed).
	Deny
)

// String is the Envoy enum name.
func (a Action) String() string {
	switch a {
	case Allow:
		return "ALLOW"
	case Deny:
		return "DENY"
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// Rules is envoy.config.rbac.v3.RBAC: an action and its policies.
type Rules struct {
	Action Action
	// Policies are evaluated in name order (Envoy keeps them in a sorted
	// map): the first that matches is the one reported in logs. Names
	// are unique.
	Policies []Policy
}

// Policy is envoy.config.rbac.v3.Policy: it matches when at least one of
// its permissions and at least one of its principals match.
type Policy struct {
	Name        string
	Permissions []Rule
	Principals  []Rule
}

// Kind says which form a Rule takes: a permission (what is asked for) or
// a principal (who asks). Some kinds are valid on one side only.
type Kind uint8

const (
	// KindAny matches everything (permission any, principal any).
	KindAny Kind = iota
	// KindAnd matches when every rule in Rules matches (and_rules,
	// and_ids).
	KindAnd
	// KindOr matches when at least one rule in Rules matches (or_rules,
	// or_ids).
	KindOr
	// KindNot matches when Rules[0] does not (not_rule, not_id).
	KindNot
	// KindHeader matches a request header with Header, Envoy's
	// HeaderMatcher semantics; pseudo-headers :authority, :method, :path
	// (with its query) and :scheme as Envoy exposes them. HTTP only.
	KindHeader
	// KindURLPath matches the request path without its query with
	// String (url_path). HTTP only.
	KindURLPath
	// KindDestinationIP matches the local address of the connection with
	// CIDR (permission destination_ip).
	KindDestinationIP
	// KindDestinationPort matches the local port of the connection
	// (permission destination_port).
	KindDestinationPort
	// KindAuthenticated matches a TLS peer (principal authenticated).
	// With String nil it matches any TLS connection. Otherwise String is
	// matched against every URI SAN of the peer's certificate, then
	// every DNS SAN, then its subject (RFC 2253 form): any match counts.
	KindAuthenticated
	// KindDirectRemoteIP matches the peer's address with CIDR (principal
	// direct_remote_ip).
	KindDirectRemoteIP
	// KindRemoteIP matches the client's address with CIDR (principal
	// remote_ip): the request's client address as the connection manager
	// determined it (see Input.Remote), the peer for a connection.
	KindRemoteIP
	// KindSourceIP is the deprecated principal source_ip: the
	// connection's peer, as KindDirectRemoteIP.
	KindSourceIP
)

var kindNames = [...]string{
	KindAny: "any", KindAnd: "and", KindOr: "or", KindNot: "not", KindHeader: "header",
	KindURLPath: "url_path", KindDestinationIP: "destination_ip", KindDestinationPort: "destination_port",
	KindAuthenticated: "authenticated", KindDirectRemoteIP: "direct_remote_ip", KindRemoteIP: "remote_ip",
	KindSourceIP: "source_ip",
}

// String names the kind as Envoy's field does (and/or/not for both
// sides' sets).
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Rule is one permission or principal. Kind says which fields are used.
type Rule struct {
	Kind Kind
	// Rules are the operands of KindAnd and KindOr (at least one), and
	// of KindNot (exactly one).
	Rules []Rule
	// Header is KindHeader's matcher.
	Header *router.HeaderMatcher
	// String is KindURLPath's path matcher and KindAuthenticated's
	// principal_name (nil: any TLS peer). A regex must match the whole
	// input (proxy/snapshot anchors it).
	String *router.StringMatcher
	// CIDR is the range of the IP kinds. Its address is masked to the
	// prefix length when compiled, as Envoy does.
	CIDR netip.Prefix
	// Port is KindDestinationPort's port.
	Port uint32
}

// Side says where a Rule stands, which decides the kinds it may take.
type side uint8

const (
	permission side = iota
	principal
)

func (s side) String() string {
	if s == permission {
		return "permission"
	}
	return "principal"
}

// allowed reports whether kind k may stand on side s.
func (s side) allowed(k Kind) bool {
	switch k {
	case KindAny, KindAnd, KindOr, KindNot, KindHeader, KindURLPath:
		return true
	case KindDestinationIP, KindDestinationPort:
		return s == permission
	case KindAuthenticated, KindDirectRemoteIP, KindRemoteIP, KindSourceIP:
		return s == principal
	}
	return false
}

// ConfigError is a problem with a Config, at a path relative to the
// Rules ("policies[\"name\"].permissions[0].and_rules.rules[1]").
type ConfigError struct {
	Field string
	Msg   string
	Err   error
}

func (e *ConfigError) Error() string {
	s := e.Msg
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ConfigError) Unwrap() error { return e.Err }

func cfgErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate checks the rules for a filter: http false refuses the kinds
// that need a request (header, url_path), which the network filter never
// has.
func (r *Rules) Validate(http bool) error {
	_, err := compileRules(r, http)
	return err
}

// policyPath is the path of a policy as Envoy's map field spells it.
func policyPath(name string) string { return fmt.Sprintf("policies[%q]", name) }

func validateNames(ps []Policy) error {
	seen := make(map[string]bool, len(ps))
	for _, p := range ps {
		if seen[p.Name] {
			return cfgErr(policyPath(p.Name), "policy %q is defined twice", p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// sortedPolicies returns the policies in name order, as Envoy evaluates
// them.
func sortedPolicies(ps []Policy) []Policy {
	out := slices.Clone(ps)
	slices.SortFunc(out, func(a, b Policy) int { return strings.Compare(a.Name, b.Name) })
	return out
}
