package translate

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httprbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	netrbacv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// This file turns Consul intentions into Envoy RBAC rules for a sidecar's
// public_listener, with Consul's semantics (agent/xds/rbac.go in Consul
// v1.16.3):
//
//   - the intentions that apply to a destination are its own
//     service-intentions entry's sources and those of the "*" entry, in
//     Consul's precedence order (exact destination before "*"; within
//     each, an exact source before "*"; then by source name); a source met
//     again at a lower precedence is dropped, and so is everything below a
//     "*" source. (Consul's agent keeps the intentions below "* -> web",
//     so that "c -> *" (precedence 6) still denies c although "* -> web"
//     (8) allows it; we follow Consul's documented precedence instead);
//   - the default (the agent's ACL default policy) decides the RBAC
//     action: default allow gives a DENY filter listing what is denied,
//     default deny an ALLOW filter listing what is allowed. Each intention
//     whose action is the default's is dropped, after being subtracted
//     (and not_id) from the less specific intentions below it, so that
//     precedence survives in a filter where policies are unordered;
//   - L4 intentions share one policy ("consul-intentions-layer4") of their
//     principals with any permission; each L7 intention (permissions on
//     path, header, method) is its own policy
//     ("consul-intentions-layer7-<i>"), its permissions made
//     precedence-free the same way. On a tcp service an L7 intention is a
//     deny, as in Consul;
//   - a source is matched on the peer certificate's URI SAN:
//     ^spiffe://<trust domain>/ns/default/dc/[^/]+/svc/<source>$ ("*":
//     any service of the trust domain).
//
// http, http2 and grpc services get envoy.filters.http.rbac in the HTTP
// connection manager, before the router (denials count in
// http.public_listener.rbac.*); tcp services get envoy.filters.network.rbac
// before the tcp_proxy, with stat prefix connect_authz. Not translated:
// sources in a peer, a sameness group, another namespace or partition
// (skipped: they cannot be told apart without trust bundles Consul CE does
// not give here), and JWT requirements (an error naming the entry: silently
// ignoring them would widen access).

// Envoy's names of the RBAC filters.
const (
	networkRBACFilterName = "envoy.filters.network.rbac"
	httpRBACFilterName    = "envoy.filters.http.rbac"
	// rbacStatPrefix is Consul's stat prefix of the network filter.
	rbacStatPrefix = "connect_authz"
)

// kindServiceIntentions is Consul's kind of the intentions config entry.
const kindServiceIntentions = "service-intentions"

// Policy names, Consul's.
const (
	l4PolicyName       = "consul-intentions-layer4"
	l7PolicyNamePrefix = "consul-intentions-layer7-"
)

// wildcard is Consul's "any service" name.
const wildcard = "*"

// ixnAction is what an intention does: allow, deny, or look at its L7
// permissions.
type ixnAction int

const (
	actionDeny ixnAction = iota
	actionAllow
	actionL7
)

func actionOf(a api.IntentionAction) ixnAction {
	if a == api.IntentionActionAllow {
		return actionAllow
	}
	return actionDeny
}

// intention is one source of an intention that applies to the destination,
// on its way to RBAC.
type intention struct {
	source     string // a service name or "*"
	precedence int
	action     ixnAction
	perms      []*permission
	// notSources are the more specific sources subtracted from source.
	notSources []string
	skip       bool
}

// permission is one L7 permission on its way to RBAC.
type permission struct {
	action ixnAction
	perm   *rbacv3.Permission
	not    []*rbacv3.Permission
	skip   bool
}

// intentionsFor lists the sources that apply to dest, sorted by Consul's
// precedence, one per source name (the highest). The error is an
// *EntryError.
func intentionsFor(m *model.Mesh, dest string, http bool) ([]*intention, error) {
	var out []*intention
	add := func(e *api.ServiceIntentionsConfigEntry, exactDest bool) error {
		if e == nil {
			return nil
		}
		ref := entryRef{kindServiceIntentions, e.Name}
		if e.JWT != nil && len(e.JWT.Providers) > 0 {
			return entryErr(ref, "JWT requirements are not supported")
		}
		for i, src := range e.Sources {
			if src == nil || !localSource(src) {
				continue
			}
			if src.Name == "" {
				return entryErr(ref, "source %d has no name", i)
			}
			ixn := &intention{source: src.Name, precedence: precedence(exactDest, src.Name != wildcard)}
			if len(src.Permissions) == 0 {
				ixn.action = actionOf(src.Action)
				if src.Action != api.IntentionActionAllow && src.Action != api.IntentionActionDeny {
					return entryErr(ref, "source %q: action %q is neither allow nor deny", src.Name, src.Action)
				}
			} else if !http {
				// Consul treats L7 intentions that reach a tcp service as
				// deny.
				ixn.action = actionDeny
			} else {
				ixn.action = actionL7
				for j, p := range src.Permissions {
					perm, err := convertPermission(ref, src.Name, j, p)
					if err != nil {
						return err
					}
					ixn.perms = append(ixn.perms, perm)
				}
			}
			out = append(out, ixn)
		}
		return nil
	}
	if err := add(m.Intentions[dest], true); err != nil {
		return nil, err
	}
	if dest != wildcard {
		if err := add(m.Intentions[wildcard], false); err != nil {
			return nil, err
		}
	}
	// Consul's IntentionPrecedenceSorter: precedence, then source name.
	slices.SortStableFunc(out, func(a, b *intention) int {
		return cmp.Or(cmp.Compare(b.precedence, a.precedence), cmp.Compare(a.source, b.source))
	})
	// A source already met at a higher precedence decides for itself, and
	// nothing below a "*" source is ever reached.
	seen := map[string]bool{}
	kept := out[:0]
	for _, ixn := range out {
		if seen[ixn.source] {
			continue
		}
		seen[ixn.source] = true
		kept = append(kept, ixn)
		if ixn.source == wildcard {
			break
		}
	}
	return kept, nil
}

// localSource reports whether a source is a service of this datacenter's
// default namespace and partition, the only ones whose identity the mesh
// can check.
func localSource(src *api.SourceIntention) bool {
	isDefault := func(s string) bool { return s == "" || s == "default" }
	return src.Peer == "" && src.SamenessGroup == "" && isDefault(src.Namespace) && isDefault(src.Partition)
}

// precedence is Consul's Intention.UpdatePrecedence for the default
// namespace: 9 exact to exact, 8 "*" to exact, 6 exact to "*", 5 "*" to "*".
func precedence(exactDest, exactSource bool) int {
	p := 9
	if !exactDest {
		p = 6
	}
	if !exactSource {
		p--
	}
	return p
}

// convertPermission is one L7 permission as an RBAC permission: all of its
// path, header and method conditions.
func convertPermission(ref entryRef, source string, i int, p *api.IntentionPermission) (*permission, error) {
	where := fmt.Sprintf("source %q permission %d", source, i)
	if p == nil {
		return nil, entryErr(ref, "%s is empty", where)
	}
	if p.Action != api.IntentionActionAllow && p.Action != api.IntentionActionDeny {
		return nil, entryErr(ref, "%s: action %q is neither allow nor deny", where, p.Action)
	}
	if p.JWT != nil && len(p.JWT.Providers) > 0 {
		return nil, entryErr(ref, "%s: JWT requirements are not supported", where)
	}
	out := &permission{action: actionOf(p.Action)}
	h := p.HTTP
	if h == nil {
		out.perm = anyPermission()
		return out, nil
	}
	var parts []*rbacv3.Permission
	if countSet(h.PathExact != "", h.PathPrefix != "", h.PathRegex != "") > 1 {
		return nil, entryErr(ref, "%s: set at most one of path_exact, path_prefix, path_regex", where)
	}
	var path *matcherv3.StringMatcher
	switch {
	case h.PathExact != "":
		path = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: h.PathExact}}
	case h.PathPrefix != "":
		path = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: h.PathPrefix}}
	case h.PathRegex != "":
		if err := checkRegex(h.PathRegex); err != nil {
			return nil, entryErr(ref, "%s: path_regex: %v", where, err)
		}
		path = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(h.PathRegex)}}
	}
	if path != nil {
		parts = append(parts, &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: path},
		}}})
	}
	for _, hd := range h.Header {
		hm, err := headerPermission(hd)
		if err != nil {
			return nil, entryErr(ref, "%s: header %q: %v", where, hd.Name, err)
		}
		parts = append(parts, &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: hm}})
	}
	if len(h.Methods) > 0 {
		for _, meth := range h.Methods {
			if meth == "" || regexp.QuoteMeta(meth) != meth {
				return nil, entryErr(ref, "%s: %q is not an HTTP method", where, meth)
			}
		}
		parts = append(parts, &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{
			Name: ":method",
			HeaderMatchSpecifier: stringMatch(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
				SafeRegex: regexMatcher(strings.Join(h.Methods, "|")),
			}}),
		}}})
	}
	// An empty http {} matches everything, as in Consul.
	out.perm = andPermissions(parts)
	return out, nil
}

// headerPermission is one header condition of a permission.
func headerPermission(hd api.IntentionHTTPHeaderPermission) (*routev3.HeaderMatcher, error) {
	if hd.Name == "" {
		return nil, fmt.Errorf("a header condition needs a name")
	}
	if n := countSet(hd.Present, hd.Exact != "", hd.Prefix != "", hd.Suffix != "", hd.Contains != "", hd.Regex != ""); n != 1 {
		return nil, fmt.Errorf("set exactly one of present, exact, prefix, suffix, contains, regex")
	}
	hm := &routev3.HeaderMatcher{Name: hd.Name, InvertMatch: hd.Invert}
	var sm *matcherv3.StringMatcher
	switch {
	case hd.Present:
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
		return hm, nil
	case hd.Exact != "":
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: hd.Exact}}
	case hd.Prefix != "":
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: hd.Prefix}}
	case hd.Suffix != "":
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: hd.Suffix}}
	case hd.Contains != "":
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: hd.Contains}}
	default:
		if err := checkRegex(hd.Regex); err != nil {
			return nil, fmt.Errorf("regex: %w", err)
		}
		sm = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(hd.Regex)}}
	}
	sm.IgnoreCase = hd.IgnoreCase && hd.Regex == ""
	hm.HeaderMatchSpecifier = stringMatch(sm)
	return hm, nil
}

// rbacRules are the RBAC rules of destination dest (Consul's makeRBACRules).
// The error is an *EntryError.
func rbacRules(m *model.Mesh, dest string, http bool) (*rbacv3.RBAC, error) {
	ixns, err := intentionsFor(m, dest, http)
	if err != nil {
		return nil, err
	}
	def := actionDeny
	action := rbacv3.RBAC_ALLOW // an allow-list: what no policy allows is denied
	if m.IntentionDefaultAllow {
		def = actionAllow
		action = rbacv3.RBAC_DENY // a deny-list: what no policy denies is allowed
	}
	ixns = removeSourcePrecedence(ixns, def)

	rules := &rbacv3.RBAC{Action: action}
	var l4 []*rbacv3.Principal
	for i, ixn := range ixns {
		principal := principalOf(m.TrustDomain, ixn)
		if ixn.action != actionL7 {
			l4 = append(l4, principal)
			continue
		}
		perms := removePermissionPrecedence(ixn.perms, def)
		if len(perms) == 0 {
			// Every permission had the default's action.
			continue
		}
		if rules.Policies == nil {
			rules.Policies = map[string]*rbacv3.Policy{}
		}
		rules.Policies[fmt.Sprintf("%s%d", l7PolicyNamePrefix, i)] = &rbacv3.Policy{
			Principals:  []*rbacv3.Principal{principal},
			Permissions: perms,
		}
	}
	if len(l4) > 0 {
		if rules.Policies == nil {
			rules.Policies = map[string]*rbacv3.Policy{}
		}
		rules.Policies[l4PolicyName] = &rbacv3.Policy{
			Principals:  l4,
			Permissions: []*rbacv3.Permission{anyPermission()},
		}
	}
	return rules, nil
}

// removeSourcePrecedence makes the order of ixns irrelevant: walking up
// from the lowest precedence, each intention is subtracted from every less
// specific one below it that its source falls under, and dropped when its
// action is the default's (what nothing matches gets the default anyway).
func removeSourcePrecedence(ixns []*intention, def ixnAction) []*intention {
	for i := len(ixns) - 1; i >= 0; i-- {
		for j := i + 1; j < len(ixns); j++ {
			if !ixns[j].skip && sourceFallsUnder(ixns[i].source, ixns[j].source) {
				ixns[j].notSources = append(ixns[j].notSources, ixns[i].source)
			}
		}
		if ixns[i].action == def {
			ixns[i].skip = true
		}
	}
	kept := make([]*intention, 0, len(ixns))
	for _, ixn := range ixns {
		if !ixn.skip {
			kept = append(kept, ixn)
		}
	}
	return kept
}

// sourceFallsUnder reports whether source is strictly more specific than
// other and covered by it: an exact name under "*".
func sourceFallsUnder(source, other string) bool {
	return source != wildcard && other == wildcard
}

// removePermissionPrecedence does for one L7 intention's permissions what
// removeSourcePrecedence does for sources: each permission excludes the
// ones before it, and those with the default's action are dropped.
func removePermissionPrecedence(perms []*permission, def ixnAction) []*rbacv3.Permission {
	for _, p := range perms {
		p.not, p.skip = nil, false
	}
	for i := len(perms) - 1; i >= 0; i-- {
		for j := i + 1; j < len(perms); j++ {
			if !perms[j].skip {
				perms[j].not = append(perms[j].not, perms[i].perm)
			}
		}
		if perms[i].action == def {
			perms[i].skip = true
		}
	}
	var out []*rbacv3.Permission
	for _, p := range perms {
		if p.skip {
			continue
		}
		if len(p.not) == 0 {
			out = append(out, p.perm)
			continue
		}
		parts := []*rbacv3.Permission{p.perm}
		for _, n := range p.not {
			parts = append(parts, &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: n}})
		}
		out = append(out, andPermissions(parts))
	}
	return out
}

// principalOf is the intention's source minus the more specific sources
// subtracted from it.
func principalOf(trustDomain string, ixn *intention) *rbacv3.Principal {
	p := sourcePrincipal(trustDomain, ixn.source)
	nots := slices.Compact(slices.Sorted(slices.Values(ixn.notSources)))
	if len(nots) == 0 {
		return p
	}
	ids := []*rbacv3.Principal{p}
	for _, n := range nots {
		ids = append(ids, &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: sourcePrincipal(trustDomain, n)}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ids}}}
}

// sourcePrincipal matches the SPIFFE ID of source ("*": any service) in
// any datacenter of the trust domain, as Consul does.
func sourcePrincipal(trustDomain, source string) *rbacv3.Principal {
	svc := `[^/]+`
	if source != wildcard {
		svc = regexp.QuoteMeta(source)
	}
	pattern := `^spiffe://` + regexp.QuoteMeta(trustDomain) + `/ns/default/dc/[^/]+/svc/` + svc + `$`
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
		PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regexMatcher(pattern)}},
	}}}
}

func anyPermission() *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
}

func andPermissions(parts []*rbacv3.Permission) *rbacv3.Permission {
	switch len(parts) {
	case 0:
		return anyPermission()
	case 1:
		return parts[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: parts}}}
}

// networkRBACFilter is the tcp public_listener's RBAC filter for dest.
func networkRBACFilter(m *model.Mesh, dest string) (*listenerv3.Filter, error) {
	rules, err := rbacRules(m, dest, false)
	if err != nil {
		return nil, err
	}
	cfg, err := marshalAny(&netrbacv3.RBAC{StatPrefix: rbacStatPrefix, Rules: rules})
	if err != nil {
		return nil, fmt.Errorf("translate: listener %q: %w", publicListenerName, err)
	}
	return &listenerv3.Filter{Name: networkRBACFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: cfg}}, nil
}

// httpRBACFilter is the HTTP public_listener's RBAC filter for dest.
func httpRBACFilter(m *model.Mesh, dest string) (*hcmv3.HttpFilter, error) {
	rules, err := rbacRules(m, dest, true)
	if err != nil {
		return nil, err
	}
	cfg, err := marshalAny(&httprbacv3.RBAC{Rules: rules})
	if err != nil {
		return nil, fmt.Errorf("translate: listener %q: %w", publicListenerName, err)
	}
	return &hcmv3.HttpFilter{Name: httpRBACFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: cfg}}, nil
}
