package snapshot

import (
	"errors"
	"net/netip"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/proxy/rbac"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// rbacHTTPFilter converts an envoy.filters.http.rbac filter named name (at
// path p, its typed_config). Fields outside the support table
// (table_rbac.go) were refused before conversion.
func (c *converter) rbacHTTPFilter(p, name string, a *anypb.Any) hcm.HTTPFilter {
	var m rbachttpv3.RBAC
	if !c.unpack(p, a, &m) {
		return nil
	}
	before := len(c.errs)
	cfg := c.rbacHTTPConfig(p, &m)
	if len(c.errs) > before {
		return nil
	}
	f, err := rbac.NewHTTPFilter(name, cfg)
	if err != nil {
		c.rbacErr(p, err)
		return nil
	}
	return f
}

// rbacPerRoute converts an RBACPerRoute typed_per_filter_config entry into
// a *rbac.RouteConfig; without rbac it turns the filter off on the route.
func (c *converter) rbacPerRoute(p string, a *anypb.Any) any {
	var m rbachttpv3.RBACPerRoute
	if !c.unpack(p, a, &m) {
		return nil
	}
	var cfg *rbac.HTTPConfig
	before := len(c.errs)
	if m.GetRbac() != nil {
		hc := c.rbacHTTPConfig(resource.Join(p, "rbac"), m.GetRbac())
		cfg = &hc
	}
	if len(c.errs) > before {
		return nil
	}
	rc, err := rbac.NewRouteConfig(cfg)
	if err != nil {
		c.rbacErr(p, err)
		return nil
	}
	return rc
}

// rbacNetworkFilter converts an envoy.filters.network.rbac filter.
func (c *converter) rbacNetworkFilter(p string, a *anypb.Any) listener.ConnFilter {
	var m rbacnetv3.RBAC
	if !c.unpack(p, a, &m) {
		return nil
	}
	before := len(c.errs)
	if m.GetEnforcementType() != rbacnetv3.RBAC_ONE_TIME_ON_FIRST_BYTE {
		c.fail(resource.Join(p, "enforcement_type"), "%s is not supported yet", m.GetEnforcementType())
	}
	cfg := rbac.NetworkConfig{
		StatPrefix:            m.GetStatPrefix(),
		ShadowRulesStatPrefix: m.GetShadowRulesStatPrefix(),
	}
	if m.GetRules() != nil {
		cfg.Rules = c.rbacRules(resource.Join(p, "rules"), m.GetRules(), false)
	}
	if m.GetShadowRules() != nil {
		cfg.ShadowRules = c.rbacRules(resource.Join(p, "shadow_rules"), m.GetShadowRules(), false)
	}
	if len(c.errs) > before {
		return nil
	}
	f, err := rbac.NewNetworkFilter(cfg)
	if err != nil {
		c.rbacErr(p, err)
		return nil
	}
	return f
}

// rbacHTTPConfig converts the HTTP filter's config (also a route's
// override) found at p.
func (c *converter) rbacHTTPConfig(p string, m *rbachttpv3.RBAC) rbac.HTTPConfig {
	cfg := rbac.HTTPConfig{
		RulesStatPrefix:       m.GetRulesStatPrefix(),
		ShadowRulesStatPrefix: m.GetShadowRulesStatPrefix(),
	}
	if m.GetRules() != nil {
		cfg.Rules = c.rbacRules(resource.Join(p, "rules"), m.GetRules(), true)
	}
	if m.GetShadowRules() != nil {
		cfg.ShadowRules = c.rbacRules(resource.Join(p, "shadow_rules"), m.GetShadowRules(), true)
	}
	return cfg
}

// rbacErr records an error of proxy/rbac (a *rbac.ConfigError, whose path
// is relative to the config at p).
func (c *converter) rbacErr(p string, err error) {
	var ce *rbac.ConfigError
	if errors.As(err, &ce) {
		msg := ce.Msg
		if ce.Err != nil {
			msg += ": " + ce.Err.Error()
		}
		c.fail(resource.Join(p, ce.Field), "%s", msg)
		return
	}
	c.fail(p, "%v", err)
}

// rbacRules converts envoy.config.rbac.v3.RBAC at p. http false is the
// network filter's, which has no request for header and url_path rules.
func (c *converter) rbacRules(p string, m *rbacv3.RBAC, http bool) *rbac.Rules {
	out := &rbac.Rules{}
	switch m.GetAction() {
	case rbacv3.RBAC_ALLOW:
		out.Action = rbac.Allow
	case rbacv3.RBAC_DENY:
		out.Action = rbac.Deny
	default:
		c.fail(resource.Join(p, "action"), "%s is not supported yet (ALLOW or DENY)", m.GetAction())
	}
	names := make([]string, 0, len(m.GetPolicies()))
	for name := range m.GetPolicies() {
		names = append(names, name)
	}
	slices.Sort(names) // Envoy's evaluation order, and a deterministic report
	for _, name := range names {
		pol := m.GetPolicies()[name]
		pp := resource.Key(resource.Join(p, "policies"), name)
		cp := rbac.Policy{Name: name}
		for i, perm := range pol.GetPermissions() {
			cp.Permissions = append(cp.Permissions, c.rbacPermission(resource.Index(resource.Join(pp, "permissions"), i), perm, http))
		}
		for i, id := range pol.GetPrincipals() {
			cp.Principals = append(cp.Principals, c.rbacPrincipal(resource.Index(resource.Join(pp, "principals"), i), id, http))
		}
		out.Policies = append(out.Policies, cp)
	}
	return out
}

// rbacPermission converts a Permission at p.
func (c *converter) rbacPermission(p string, m *rbacv3.Permission, http bool) rbac.Rule {
	set := func(field string, rules []*rbacv3.Permission) []rbac.Rule {
		out := make([]rbac.Rule, 0, len(rules))
		for i, r := range rules {
			out = append(out, c.rbacPermission(resource.Index(resource.Join(p, field), i), r, http))
		}
		return out
	}
	switch r := m.GetRule().(type) {
	case *rbacv3.Permission_Any:
		return rbac.Rule{Kind: rbac.KindAny}
	case *rbacv3.Permission_AndRules:
		return rbac.Rule{Kind: rbac.KindAnd, Rules: set("and_rules.rules", r.AndRules.GetRules())}
	case *rbacv3.Permission_OrRules:
		return rbac.Rule{Kind: rbac.KindOr, Rules: set("or_rules.rules", r.OrRules.GetRules())}
	case *rbacv3.Permission_NotRule:
		return rbac.Rule{Kind: rbac.KindNot, Rules: []rbac.Rule{c.rbacPermission(resource.Join(p, "not_rule"), r.NotRule, http)}}
	case *rbacv3.Permission_Header:
		return c.rbacHeader(resource.Join(p, "header"), r.Header, http)
	case *rbacv3.Permission_UrlPath:
		return c.rbacURLPath(resource.Join(p, "url_path"), r.UrlPath, http)
	case *rbacv3.Permission_DestinationIp:
		return rbac.Rule{Kind: rbac.KindDestinationIP, CIDR: c.cidr(resource.Join(p, "destination_ip"), r.DestinationIp)}
	case *rbacv3.Permission_DestinationPort:
		return rbac.Rule{Kind: rbac.KindDestinationPort, Port: r.DestinationPort}
	case nil:
		c.fail(p, "a rule is required")
	default:
		c.fail(p, "this permission is not supported yet")
	}
	return rbac.Rule{}
}

// rbacPrincipal converts a Principal at p.
func (c *converter) rbacPrincipal(p string, m *rbacv3.Principal, http bool) rbac.Rule {
	set := func(field string, ids []*rbacv3.Principal) []rbac.Rule {
		out := make([]rbac.Rule, 0, len(ids))
		for i, id := range ids {
			out = append(out, c.rbacPrincipal(resource.Index(resource.Join(p, field), i), id, http))
		}
		return out
	}
	switch id := m.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		return rbac.Rule{Kind: rbac.KindAny}
	case *rbacv3.Principal_AndIds:
		return rbac.Rule{Kind: rbac.KindAnd, Rules: set("and_ids.ids", id.AndIds.GetIds())}
	case *rbacv3.Principal_OrIds:
		return rbac.Rule{Kind: rbac.KindOr, Rules: set("or_ids.ids", id.OrIds.GetIds())}
	case *rbacv3.Principal_NotId:
		return rbac.Rule{Kind: rbac.KindNot, Rules: []rbac.Rule{c.rbacPrincipal(resource.Join(p, "not_id"), id.NotId, http)}}
	case *rbacv3.Principal_Authenticated_:
		out := rbac.Rule{Kind: rbac.KindAuthenticated}
		if n := id.Authenticated.GetPrincipalName(); n != nil {
			out.String = c.matchConv().StringMatcher(resource.Join(p, "authenticated.principal_name"), n)
		}
		return out
	case *rbacv3.Principal_SourceIp:
		return rbac.Rule{Kind: rbac.KindSourceIP, CIDR: c.cidr(resource.Join(p, "source_ip"), id.SourceIp)}
	case *rbacv3.Principal_DirectRemoteIp:
		return rbac.Rule{Kind: rbac.KindDirectRemoteIP, CIDR: c.cidr(resource.Join(p, "direct_remote_ip"), id.DirectRemoteIp)}
	case *rbacv3.Principal_RemoteIp:
		return rbac.Rule{Kind: rbac.KindRemoteIP, CIDR: c.cidr(resource.Join(p, "remote_ip"), id.RemoteIp)}
	case *rbacv3.Principal_Header:
		return c.rbacHeader(resource.Join(p, "header"), id.Header, http)
	case *rbacv3.Principal_UrlPath:
		return c.rbacURLPath(resource.Join(p, "url_path"), id.UrlPath, http)
	case nil:
		c.fail(p, "an identifier is required")
	default:
		c.fail(p, "this principal is not supported yet")
	}
	return rbac.Rule{}
}

func (c *converter) rbacHeader(p string, h *routev3.HeaderMatcher, http bool) rbac.Rule {
	if !http {
		c.fail(p, "header is only available to the HTTP filter (envoy.filters.http.rbac)")
		return rbac.Rule{}
	}
	hm := c.headerMatcher(p, h)
	return rbac.Rule{Kind: rbac.KindHeader, Header: &hm}
}

func (c *converter) rbacURLPath(p string, m *matcherv3.PathMatcher, http bool) rbac.Rule {
	if !http {
		c.fail(p, "url_path is only available to the HTTP filter (envoy.filters.http.rbac)")
		return rbac.Rule{}
	}
	if m.GetPath() == nil {
		c.fail(resource.Join(p, "path"), "a string matcher is required")
		return rbac.Rule{}
	}
	return rbac.Rule{Kind: rbac.KindURLPath, String: c.matchConv().StringMatcher(resource.Join(p, "path"), m.GetPath())}
}

// cidr converts a CidrRange as Envoy reads it: an unset prefix_len is 0,
// and the address is masked to the prefix.
func (c *converter) cidr(p string, r *corev3.CidrRange) netip.Prefix {
	addr, err := netip.ParseAddr(r.GetAddressPrefix())
	if err != nil || addr.Zone() != "" {
		c.fail(resource.Join(p, "address_prefix"), "%q is not an IP address", r.GetAddressPrefix())
		return netip.Prefix{}
	}
	n := r.GetPrefixLen().GetValue()
	if int(n) > addr.BitLen() {
		c.fail(resource.Join(p, "prefix_len"), "%d is longer than an IPv%d address", n, map[int]int{32: 4, 128: 6}[addr.BitLen()])
		return netip.Prefix{}
	}
	return netip.PrefixFrom(addr, int(n)).Masked()
}
