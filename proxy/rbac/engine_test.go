package rbac

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

const (
	webID = "spiffe://example.consul/ns/default/dc/dc1/svc/web"
	apiID = "spiffe://example.consul/ns/default/dc/dc1/svc/api"
)

// peer is a TLS session whose verified leaf carries the given names
// (the engine reads only the parsed certificate).
func peer(uris []string, dns []string, cn string) *tls.ConnectionState {
	c := &x509.Certificate{DNSNames: dns, Subject: pkix.Name{CommonName: cn, Organization: []string{"Mesh"}}}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			panic(err)
		}
		c.URIs = append(c.URIs, pu)
	}
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}}
}

func exact(v string) *router.StringMatcher {
	return &router.StringMatcher{Kind: router.StringExact, Value: v}
}

func prefix(v string) *router.StringMatcher {
	return &router.StringMatcher{Kind: router.StringPrefix, Value: v}
}

func cidr(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func any_() Rule { return Rule{Kind: KindAny} }

// req builds an HTTP input from a peer at 10.0.0.7:5555 to 10.1.0.1:8443.
func req(method, target string, hdr map[string]string, st *tls.ConnectionState) *Input {
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	r.TLS = st
	return &Input{
		Request: r, TLS: st,
		Local: netip.MustParseAddrPort("10.1.0.1:8443"),
		Peer:  netip.MustParseAddrPort("10.0.0.7:5555"),
	}
}

func conn(st *tls.ConnectionState) *Input {
	return &Input{
		TLS:   st,
		Local: netip.MustParseAddrPort("10.1.0.1:8443"),
		Peer:  netip.MustParseAddrPort("10.0.0.7:5555"),
	}
}

// Each kind of permission and principal, alone, on inputs it must and
// must not match.
func TestRuleKinds(t *testing.T) {
	web := peer([]string{webID}, []string{"web.internal"}, "web")
	api := peer([]string{apiID}, nil, "api")
	dnsOnly := peer(nil, []string{"db.internal", "db2.internal"}, "db")
	subjOnly := peer(nil, nil, "legacy")
	noCert := &tls.ConnectionState{}
	get := req("GET", "/admin/users?x=1", map[string]string{"X-Team": "blue"}, web)
	post := req("POST", "https://api.example:8443/public", nil, api)

	for _, tc := range []struct {
		name    string
		side    side
		rule    Rule
		match   []*Input
		nomatch []*Input
	}{
		{"permission any", permission, any_(), []*Input{get, conn(nil)}, nil},
		{"principal any", principal, any_(), []*Input{get, conn(nil)}, nil},
		{"header exact", permission, Rule{Kind: KindHeader, Header: &router.HeaderMatcher{Name: "x-team", String: exact("blue")}},
			[]*Input{get}, []*Input{post, conn(web)}},
		{"header :method", permission, Rule{Kind: KindHeader, Header: &router.HeaderMatcher{Name: ":method", String: exact("POST")}},
			[]*Input{post}, []*Input{get}},
		{"header :path keeps the query", permission, Rule{Kind: KindHeader, Header: &router.HeaderMatcher{Name: ":path", String: exact("/admin/users?x=1")}},
			[]*Input{get}, []*Input{post}},
		{"header :authority", permission, Rule{Kind: KindHeader, Header: &router.HeaderMatcher{Name: ":authority", String: prefix("api.example")}},
			[]*Input{post}, []*Input{get}},
		{"header absent, inverted presence", principal, Rule{Kind: KindHeader, Header: func() *router.HeaderMatcher {
			f := false
			return &router.HeaderMatcher{Name: "x-team", Present: &f}
		}()}, []*Input{post}, []*Input{get}},
		{"url_path drops the query", permission, Rule{Kind: KindURLPath, String: exact("/admin/users")},
			[]*Input{get}, []*Input{post, conn(web)}},
		{"url_path regex is whole-path", principal, Rule{Kind: KindURLPath, String: &router.StringMatcher{Kind: router.StringRegex, Regex: regexp.MustCompile("/admin/[a-z]+")}},
			[]*Input{get}, []*Input{req("GET", "/x/admin/users", nil, nil)}},
		{"destination_ip", permission, Rule{Kind: KindDestinationIP, CIDR: cidr("10.1.0.0/16")},
			[]*Input{get, conn(nil)}, []*Input{{Local: netip.MustParseAddrPort("10.2.0.1:8443")}, {}}},
		{"destination_port", permission, Rule{Kind: KindDestinationPort, Port: 8443},
			[]*Input{get, conn(nil)}, []*Input{{Local: netip.MustParseAddrPort("10.1.0.1:80")}, {}}},
		{"direct_remote_ip", principal, Rule{Kind: KindDirectRemoteIP, CIDR: cidr("10.0.0.0/24")},
			[]*Input{get, conn(nil), {Peer: netip.MustParseAddrPort("[::ffff:10.0.0.9]:1")}},
			[]*Input{{Peer: netip.MustParseAddrPort("10.0.1.7:5555")}, {Peer: netip.MustParseAddrPort("[2001:db8::1]:1")}}},
		{"source_ip is the peer", principal, Rule{Kind: KindSourceIP, CIDR: cidr("10.0.0.7/32")},
			[]*Input{get}, []*Input{{Peer: netip.MustParseAddrPort("10.0.0.8:1")}}},
		{"remote_ip is the client address", principal, Rule{Kind: KindRemoteIP, CIDR: cidr("192.0.2.0/24")},
			[]*Input{{Peer: netip.MustParseAddrPort("10.0.0.7:1"), Remote: netip.MustParseAddr("192.0.2.9")}},
			[]*Input{get}},
		{"remote_ip falls back to the peer", principal, Rule{Kind: KindRemoteIP, CIDR: cidr("10.0.0.0/8")},
			[]*Input{get}, []*Input{{Peer: netip.MustParseAddrPort("10.0.0.7:1"), Remote: netip.MustParseAddr("192.0.2.9")}}},
		{"IPv6 range", principal, Rule{Kind: KindDirectRemoteIP, CIDR: cidr("2001:db8::/32")},
			[]*Input{{Peer: netip.MustParseAddrPort("[2001:db8::1]:1")}}, []*Input{get}},
		{"authenticated, any TLS peer", principal, Rule{Kind: KindAuthenticated},
			[]*Input{get, conn(noCert)}, []*Input{conn(nil), req("GET", "/", nil, nil)}},
		{"authenticated, URI SAN", principal, Rule{Kind: KindAuthenticated, String: exact(webID)},
			[]*Input{get, conn(web)}, []*Input{post, conn(nil), conn(dnsOnly)}},
		{"authenticated, SPIFFE prefix", principal, Rule{Kind: KindAuthenticated, String: prefix("spiffe://example.consul/")},
			[]*Input{get, post}, []*Input{conn(dnsOnly)}},
		{"authenticated, DNS SAN (any of them)", principal, Rule{Kind: KindAuthenticated, String: exact("db2.internal")},
			[]*Input{conn(dnsOnly)}, []*Input{conn(web)}},
		{"authenticated, DNS SAN even with a URI SAN", principal, Rule{Kind: KindAuthenticated, String: exact("web.internal")},
			[]*Input{conn(web)}, nil},
		{"authenticated, subject", principal, Rule{Kind: KindAuthenticated, String: exact("CN=legacy,O=Mesh")},
			[]*Input{conn(subjOnly)}, []*Input{conn(noCert)}},
		{"authenticated, ignore_case", principal, Rule{Kind: KindAuthenticated, String: &router.StringMatcher{Kind: router.StringSuffix, Value: "/SVC/WEB", IgnoreCase: true}},
			[]*Input{get}, []*Input{post}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := compileRule("r", &tc.rule, tc.side, true)
			if err != nil {
				t.Fatal(err)
			}
			for i, in := range tc.match {
				if !n.match(in) {
					t.Errorf("input %d: no match, want one", i)
				}
			}
			for i, in := range tc.nomatch {
				if n.match(in) {
					t.Errorf("input %d: matches, want none", i)
				}
			}
		})
	}
}

// and, or and not compose on both sides.
func TestNesting(t *testing.T) {
	method := func(m string) Rule {
		return Rule{Kind: KindHeader, Header: &router.HeaderMatcher{Name: ":method", String: exact(m)}}
	}
	path := func(p string) Rule { return Rule{Kind: KindURLPath, String: prefix(p)} }
	// (GET or HEAD) and /api and not /api/admin
	perm := Rule{Kind: KindAnd, Rules: []Rule{
		{Kind: KindOr, Rules: []Rule{method("GET"), method("HEAD")}},
		path("/api"),
		{Kind: KindNot, Rules: []Rule{path("/api/admin")}},
	}}
	// web, or anyone from 10.9/16 who is not api
	who := Rule{Kind: KindOr, Rules: []Rule{
		{Kind: KindAuthenticated, String: exact(webID)},
		{Kind: KindAnd, Rules: []Rule{
			{Kind: KindDirectRemoteIP, CIDR: cidr("10.9.0.0/16")},
			{Kind: KindNot, Rules: []Rule{{Kind: KindAuthenticated, String: exact(apiID)}}},
		}},
	}}
	e, err := NewEngine(&Rules{Action: Allow, Policies: []Policy{{Name: "p", Permissions: []Rule{perm}, Principals: []Rule{who}}}}, true)
	if err != nil {
		t.Fatal(err)
	}
	web := peer([]string{webID}, nil, "web")
	api := peer([]string{apiID}, nil, "api")
	from := func(in *Input, addr string) *Input { in.Peer = netip.MustParseAddrPort(addr); return in }
	for _, tc := range []struct {
		name string
		in   *Input
		want bool
	}{
		{"web GET /api/x", req("GET", "/api/x", nil, web), true},
		{"web HEAD /api", req("HEAD", "/api", nil, web), true},
		{"web POST /api/x", req("POST", "/api/x", nil, web), false},
		{"web GET /api/admin/x", req("GET", "/api/admin/x", nil, web), false},
		{"web GET /other", req("GET", "/other", nil, web), false},
		{"plaintext from 10.9", from(req("GET", "/api/x", nil, nil), "10.9.1.1:1"), true},
		{"api from 10.9", from(req("GET", "/api/x", nil, api), "10.9.1.1:1"), false},
		{"plaintext elsewhere", req("GET", "/api/x", nil, nil), false},
	} {
		if got := e.Evaluate(tc.in).Allowed; got != tc.want {
			t.Errorf("%s: allowed %v, want %v", tc.name, got, tc.want)
		}
	}
}

// ALLOW allows on a match, DENY denies on one; a policy needs a
// permission and a principal; policies are tried in name order.
func TestActions(t *testing.T) {
	web := peer([]string{webID}, nil, "web")
	isWeb := Rule{Kind: KindAuthenticated, String: exact(webID)}
	isAdmin := Rule{Kind: KindURLPath, String: prefix("/admin")}
	pol := func(name string, perm, who Rule) Policy {
		return Policy{Name: name, Permissions: []Rule{perm}, Principals: []Rule{who}}
	}
	for _, tc := range []struct {
		name       string
		rules      Rules
		in         *Input
		allowed    bool
		wantPolicy string
	}{
		{"ALLOW with no policies denies", Rules{Action: Allow}, req("GET", "/", nil, web), false, ""},
		{"DENY with no policies allows", Rules{Action: Deny}, req("GET", "/", nil, web), true, ""},
		{"ALLOW match", Rules{Action: Allow, Policies: []Policy{pol("web", any_(), isWeb)}}, req("GET", "/", nil, web), true, "web"},
		{"ALLOW no match", Rules{Action: Allow, Policies: []Policy{pol("web", any_(), isWeb)}}, req("GET", "/", nil, nil), false, ""},
		{"DENY match", Rules{Action: Deny, Policies: []Policy{pol("no-admin", isAdmin, any_())}}, req("GET", "/admin", nil, web), false, "no-admin"},
		{"DENY no match", Rules{Action: Deny, Policies: []Policy{pol("no-admin", isAdmin, any_())}}, req("GET", "/home", nil, web), true, ""},
		{"permission without principal", Rules{Action: Allow, Policies: []Policy{pol("p", any_(), isWeb)}}, req("GET", "/", nil, nil), false, ""},
		{"principal without permission", Rules{Action: Allow, Policies: []Policy{pol("p", isAdmin, isWeb)}}, req("GET", "/home", nil, web), false, ""},
		{"any of several permissions and principals", Rules{Action: Allow, Policies: []Policy{{Name: "p",
			Permissions: []Rule{isAdmin, {Kind: KindDestinationPort, Port: 8443}},
			Principals:  []Rule{{Kind: KindDirectRemoteIP, CIDR: cidr("192.0.2.0/24")}, isWeb}}}}, req("GET", "/home", nil, web), true, "p"},
		{"first policy by name", Rules{Action: Allow, Policies: []Policy{pol("zeta", any_(), any_()), pol("alpha", any_(), isWeb), pol("beta", any_(), any_())}},
			req("GET", "/", nil, web), true, "alpha"},
		{"first matching policy by name", Rules{Action: Allow, Policies: []Policy{pol("zeta", any_(), any_()), pol("alpha", any_(), isWeb)}},
			req("GET", "/", nil, nil), true, "zeta"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEngine(&tc.rules, true)
			if err != nil {
				t.Fatal(err)
			}
			d := e.Evaluate(tc.in)
			if d.Allowed != tc.allowed || d.Policy != tc.wantPolicy {
				t.Errorf("got %+v, want allowed %v by %q", d, tc.allowed, tc.wantPolicy)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	one := func(perm, who Rule) *Rules {
		return &Rules{Action: Allow, Policies: []Policy{{Name: "p", Permissions: []Rule{perm}, Principals: []Rule{who}}}}
	}
	for _, tc := range []struct {
		name    string
		rules   *Rules
		http    bool
		wantErr string
	}{
		{"bad action", &Rules{Action: 7}, true, "action: Action(7) is not supported"},
		{"duplicate policy", &Rules{Policies: []Policy{{Name: "a", Permissions: []Rule{any_()}, Principals: []Rule{any_()}}, {Name: "a", Permissions: []Rule{any_()}, Principals: []Rule{any_()}}}}, true,
			`policies["a"]: policy "a" is defined twice`},
		{"no permissions", &Rules{Policies: []Policy{{Name: "a", Principals: []Rule{any_()}}}}, true, `policies["a"].permissions: at least one permission is required`},
		{"no principals", &Rules{Policies: []Policy{{Name: "a", Permissions: []Rule{any_()}}}}, true, `policies["a"].principals: at least one principal is required`},
		{"principal kind as permission", one(Rule{Kind: KindAuthenticated}, any_()), true, `policies["p"].permissions[0]: authenticated is not a permission`},
		{"permission kind as principal", one(any_(), Rule{Kind: KindDestinationPort}), true, `policies["p"].principals[0]: destination_port is not a principal`},
		{"unknown kind", one(Rule{Kind: 99}, any_()), true, "Kind(99) is not a permission"},
		{"empty and", one(Rule{Kind: KindAnd}, any_()), true, `policies["p"].permissions[0].and_rules.rules: at least one rule is required`},
		{"empty or_ids", one(any_(), Rule{Kind: KindOr}), true, `policies["p"].principals[0].or_ids.ids: at least one rule is required`},
		{"not with two", one(any_(), Rule{Kind: KindNot, Rules: []Rule{any_(), any_()}}), true, `principals[0].not_id: exactly one rule is required, got 2`},
		{"nested error path", one(Rule{Kind: KindOr, Rules: []Rule{any_(), {Kind: KindNot, Rules: []Rule{{Kind: KindHeader, Header: &router.HeaderMatcher{Name: ":status"}}}}}}, any_()), true,
			`policies["p"].permissions[0].or_rules.rules[1].not_rule.header.name: pseudo-header ":status" is not supported`},
		{"header without matcher", one(Rule{Kind: KindHeader}, any_()), true, "permissions[0].header: a header matcher is required"},
		{"header in a network filter", one(any_(), Rule{Kind: KindHeader, Header: &router.HeaderMatcher{Name: "x"}}), false,
			"principals[0].header: header is only available to the HTTP filter"},
		{"url_path in a network filter", one(Rule{Kind: KindURLPath, String: exact("/")}, any_()), false,
			"permissions[0].url_path: url_path is only available to the HTTP filter"},
		{"url_path without matcher", one(Rule{Kind: KindURLPath}, any_()), true, "permissions[0].url_path.path: a string matcher is required"},
		{"empty prefix", one(Rule{Kind: KindURLPath, String: prefix("")}, any_()), true, "url_path.path.prefix: value must not be empty"},
		{"regex kind without regex", one(any_(), Rule{Kind: KindAuthenticated, String: &router.StringMatcher{Kind: router.StringRegex}}), true,
			"authenticated.principal_name.safe_regex: regex is missing"},
		{"unknown string kind", one(any_(), Rule{Kind: KindAuthenticated, String: &router.StringMatcher{Kind: 42}}), true,
			"principal_name: unknown string match kind 42"},
		{"no CIDR", one(any_(), Rule{Kind: KindRemoteIP}), true, "principals[0].remote_ip: an address_prefix and prefix_len are required"},
		{"port too big", one(Rule{Kind: KindDestinationPort, Port: 70000}, any_()), true, "destination_port: 70000 is not a port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewEngine(tc.rules, tc.http)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("%T is not a *ConfigError", err)
			}
			if err := tc.rules.Validate(tc.http); err == nil {
				t.Error("Validate accepts what NewEngine refuses")
			}
		})
	}
}

func TestStringMatcher(t *testing.T) {
	for _, tc := range []struct {
		m     router.StringMatcher
		in    string
		match bool
	}{
		{router.StringMatcher{Kind: router.StringExact, Value: "a"}, "a", true},
		{router.StringMatcher{Kind: router.StringExact, Value: "a"}, "A", false},
		{router.StringMatcher{Kind: router.StringExact, Value: "Ab", IgnoreCase: true}, "aB", true},
		{router.StringMatcher{Kind: router.StringExact, Value: ""}, "", true},
		{router.StringMatcher{Kind: router.StringPrefix, Value: "/API", IgnoreCase: true}, "/api/x", true},
		{router.StringMatcher{Kind: router.StringSuffix, Value: "/web"}, "svc/web", true},
		{router.StringMatcher{Kind: router.StringSuffix, Value: "/web"}, "svc/webx", false},
		{router.StringMatcher{Kind: router.StringContains, Value: "dc1"}, "ns/default/dc/dc1/svc", true},
		{router.StringMatcher{Kind: router.StringContains, Value: "DC1", IgnoreCase: true}, "dc/dc1", true},
		{router.StringMatcher{Kind: router.StringContains, Value: "x"}, "abc", false},
		{router.StringMatcher{Kind: router.StringRegex, Regex: regexp.MustCompile("svc/(web|api)")}, "svc/api", true},
		{router.StringMatcher{Kind: router.StringRegex, Regex: regexp.MustCompile("svc/(web|api)")}, "x/svc/api", false},
		{router.StringMatcher{Kind: router.StringRegex, Regex: regexp.MustCompile("^(?:svc/.*)$")}, "svc/api", true},
	} {
		sm, err := compileString("s", &tc.m)
		if err != nil {
			t.Fatal(err)
		}
		if got := sm.match(tc.in); got != tc.match {
			t.Errorf("%+v on %q: %v, want %v", tc.m, tc.in, got, tc.match)
		}
	}
}

func TestPeerIdentity(t *testing.T) {
	for _, tc := range []struct {
		st   *tls.ConnectionState
		want string
	}{
		{nil, ""},
		{&tls.ConnectionState{}, ""},
		{peer([]string{webID, apiID}, []string{"web.internal"}, "web"), webID},
		{peer(nil, []string{"db.internal"}, "db"), "db.internal"},
		{peer(nil, nil, "legacy"), "CN=legacy,O=Mesh"},
	} {
		if got := PeerIdentity(tc.st); got != tc.want {
			t.Errorf("PeerIdentity = %q, want %q", got, tc.want)
		}
	}
	if s := Allow.String() + Deny.String() + Action(9).String(); s != "ALLOWDENYAction(9)" {
		t.Errorf("Action names: %s", s)
	}
}

func TestAddrPortAndErrors(t *testing.T) {
	for _, tc := range []struct {
		a    net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 80}, "10.0.0.1:80"},
		{&net.UDPAddr{IP: net.ParseIP("::1"), Port: 443}, "[::1]:443"},
		{&net.UnixAddr{Name: "/tmp/s", Net: "unix"}, "invalid AddrPort"},
		{nil, "invalid AddrPort"},
	} {
		if got := addrPort(tc.a).String(); got != tc.want {
			t.Errorf("addrPort(%v) = %s, want %s", tc.a, got, tc.want)
		}
	}
	cause := errors.New("cause")
	err := &ConfigError{Field: "f", Msg: "bad", Err: cause}
	if !errors.Is(err, cause) || err.Error() != "f: bad: cause" {
		t.Errorf("ConfigError: %v", err)
	}
	e, _ := NewEngine(&Rules{Action: Deny}, false)
	if e.Action() != Deny {
		t.Errorf("Action() = %s", e.Action())
	}
	if KindSourceIP.String() != "source_ip" || Kind(50).String() != "Kind(50)" {
		t.Error("kind names")
	}
}
