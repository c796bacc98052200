package translate

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

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

// request is what an RBAC decision looks at: the caller's SPIFFE ID and,
// for HTTP, the method, path and headers.
type request struct {
	source  string
	method  string
	path    string
	headers map[string]string
}

func (r request) spiffe() string { return SpiffeID(testTrustDomain, "dc2", r.source) }

// allowedByRBAC evaluates rules the way Envoy's RBAC engine does, for the
// subset of the API the translator emits.
func allowedByRBAC(t *testing.T, rules *rbacv3.RBAC, r request) bool {
	t.Helper()
	matched := false
	for _, p := range rules.GetPolicies() {
		if slices.ContainsFunc(p.GetPrincipals(), func(x *rbacv3.Principal) bool { return principalMatches(t, x, r) }) &&
			slices.ContainsFunc(p.GetPermissions(), func(x *rbacv3.Permission) bool { return permissionMatches(t, x, r) }) {
			matched = true
		}
	}
	if rules.GetAction() == rbacv3.RBAC_ALLOW {
		return matched
	}
	return !matched
}

func principalMatches(t *testing.T, p *rbacv3.Principal, r request) bool {
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		return true
	case *rbacv3.Principal_Authenticated_:
		return stringMatches(t, id.Authenticated.GetPrincipalName(), r.spiffe())
	case *rbacv3.Principal_AndIds:
		for _, x := range id.AndIds.GetIds() {
			if !principalMatches(t, x, r) {
				return false
			}
		}
		return true
	case *rbacv3.Principal_OrIds:
		return slices.ContainsFunc(id.OrIds.GetIds(), func(x *rbacv3.Principal) bool { return principalMatches(t, x, r) })
	case *rbacv3.Principal_NotId:
		return !principalMatches(t, id.NotId, r)
	}
	t.Fatalf("principal %v is outside what the proxy supports", p)
	return false
}

func permissionMatches(t *testing.T, p *rbacv3.Permission, r request) bool {
	switch rule := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		return true
	case *rbacv3.Permission_UrlPath:
		return stringMatches(t, rule.UrlPath.GetPath(), r.path)
	case *rbacv3.Permission_Header:
		return headerMatches(t, rule.Header, r)
	case *rbacv3.Permission_AndRules:
		for _, x := range rule.AndRules.GetRules() {
			if !permissionMatches(t, x, r) {
				return false
			}
		}
		return true
	case *rbacv3.Permission_OrRules:
		return slices.ContainsFunc(rule.OrRules.GetRules(), func(x *rbacv3.Permission) bool { return permissionMatches(t, x, r) })
	case *rbacv3.Permission_NotRule:
		return !permissionMatches(t, rule.NotRule, r)
	}
	t.Fatalf("permission %v is outside what the proxy supports", p)
	return false
}

func headerMatches(t *testing.T, h *routev3.HeaderMatcher, r request) bool {
	v, ok := r.headers[h.GetName()]
	if h.GetName() == ":method" {
		v, ok = r.method, true
	}
	var m bool
	switch spec := h.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_PresentMatch:
		m = ok
	case *routev3.HeaderMatcher_StringMatch:
		m = ok && stringMatches(t, spec.StringMatch, v)
	default:
		t.Fatalf("header matcher %v is not one the translator emits", h)
	}
	return m != h.GetInvertMatch()
}

func stringMatches(t *testing.T, sm *matcherv3.StringMatcher, v string) bool {
	if sm.GetIgnoreCase() {
		v = strings.ToLower(v)
	}
	lower := func(s string) string {
		if sm.GetIgnoreCase() {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return v == lower(p.Exact)
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(v, lower(p.Prefix))
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(v, lower(p.Suffix))
	case *matcherv3.StringMatcher_Contains:
		return strings.Contains(v, lower(p.Contains))
	case *matcherv3.StringMatcher_SafeRegex:
		return fullMatch(t, p.SafeRegex.GetRegex(), v)
	}
	t.Fatalf("string matcher %v is not one the translator emits", sm)
	return false
}

var compiled sync.Map // pattern -> *regexp.Regexp

// fullMatch is Envoy's safe_regex: the whole value must match.
func fullMatch(t *testing.T, pattern, v string) bool {
	re, ok := compiled.Load(pattern)
	if !ok {
		c, err := regexp.Compile(`^(?:` + pattern + `)$`)
		if err != nil {
			t.Fatalf("regex %q: %v", pattern, err)
		}
		re, _ = compiled.LoadOrStore(pattern, c)
	}
	return re.(*regexp.Regexp).MatchString(v)
}

// consulDecision is Consul's documented evaluation, the oracle: the
// intentions for dest by precedence (exact destination first, exact source
// first, then by source name); the first whose source matches decides; an
// L7 one by its first matching permission, and by the default when none
// matches; nothing matching gives the default.
func consulDecision(m *model.Mesh, dest string, http bool, r request) bool {
	type cand struct {
		prec int
		src  *api.SourceIntention
	}
	var cands []cand
	for _, e := range []*api.ServiceIntentionsConfigEntry{m.Intentions[dest], m.Intentions["*"]} {
		if e == nil {
			continue
		}
		for _, s := range e.Sources {
			if !localSource(s) {
				continue
			}
			cands = append(cands, cand{precedence(e.Name != "*", s.Name != "*"), s})
		}
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		if a.prec != b.prec {
			return b.prec - a.prec
		}
		return strings.Compare(a.src.Name, b.src.Name)
	})
	for _, c := range cands {
		if c.src.Name != "*" && c.src.Name != r.source {
			continue
		}
		if len(c.src.Permissions) == 0 {
			return c.src.Action == api.IntentionActionAllow
		}
		if !http {
			return false
		}
		for _, p := range c.src.Permissions {
			if oraclePermission(p.HTTP, r) {
				return p.Action == api.IntentionActionAllow
			}
		}
		return m.IntentionDefaultAllow
	}
	return m.IntentionDefaultAllow
}

func oraclePermission(h *api.IntentionHTTPPermission, r request) bool {
	if h == nil {
		return true
	}
	switch {
	case h.PathExact != "" && r.path != h.PathExact,
		h.PathPrefix != "" && !strings.HasPrefix(r.path, h.PathPrefix),
		h.PathRegex != "" && !fullMatch(nil, h.PathRegex, r.path):
		return false
	}
	for _, hd := range h.Header {
		v, ok := r.headers[hd.Name]
		var m bool
		switch {
		case hd.Present:
			m = ok
		case hd.Exact != "":
			m = ok && v == hd.Exact
		case hd.Prefix != "":
			m = ok && strings.HasPrefix(v, hd.Prefix)
		}
		if m == hd.Invert {
			return false
		}
	}
	return len(h.Methods) == 0 || slices.Contains(h.Methods, r.method)
}

// TestRBACMatchesConsulSemantics generates intention sets and requests and
// checks that the emitted rules decide as Consul's evaluation does, with
// either default, for HTTP and TCP destinations.
func TestRBACMatchesConsulSemantics(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sources := []string{"a", "b", "c", "*"}
	paths := []string{"/", "/x", "/x/y", "/z"}
	methods := []string{"GET", "POST"}
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	action := func() api.IntentionAction {
		if rng.IntN(2) == 0 {
			return api.IntentionActionAllow
		}
		return api.IntentionActionDeny
	}
	randomPermission := func() *api.IntentionPermission {
		h := &api.IntentionHTTPPermission{}
		switch rng.IntN(4) {
		case 0:
			h.PathPrefix = pick([]string{"/x", "/z"})
		case 1:
			h.PathExact = pick(paths)
		case 2:
			h.PathRegex = "/x(/.*)?"
		}
		if rng.IntN(3) == 0 {
			h.Methods = []string{pick(methods)}
		}
		if rng.IntN(4) == 0 {
			h.Header = []api.IntentionHTTPHeaderPermission{{Name: "x-team", Exact: "blue", Invert: rng.IntN(2) == 0}}
		}
		if rng.IntN(6) == 0 {
			h = nil
		}
		return &api.IntentionPermission{Action: action(), HTTP: h}
	}
	randomEntry := func(dest string, l7 bool) *api.ServiceIntentionsConfigEntry {
		e := &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: dest}
		for _, s := range sources {
			if rng.IntN(2) == 0 {
				continue
			}
			src := &api.SourceIntention{Name: s, Type: api.IntentionSourceConsul}
			if l7 && rng.IntN(2) == 0 {
				for range 1 + rng.IntN(3) {
					src.Permissions = append(src.Permissions, randomPermission())
				}
			} else {
				src.Action = action()
			}
			e.Sources = append(e.Sources, src)
		}
		return e
	}
	var requests []request
	for _, s := range []string{"a", "b", "c", "d"} {
		for _, p := range paths {
			for _, meth := range methods {
				for _, team := range []string{"", "blue", "red"} {
					r := request{source: s, method: meth, path: p, headers: map[string]string{}}
					if team != "" {
						r.headers["x-team"] = team
					}
					requests = append(requests, r)
				}
			}
		}
	}
	for i := range 300 {
		http := i%4 != 0
		m := baseMesh()
		m.IntentionDefaultAllow = i%2 == 0
		m.Intentions = map[string]*api.ServiceIntentionsConfigEntry{}
		if rng.IntN(4) != 0 {
			m.Intentions["web"] = randomEntry("web", true)
		}
		if rng.IntN(2) == 0 {
			m.Intentions["*"] = randomEntry("*", true)
		}
		rules, err := rbacRules(m, "web", http)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		for _, r := range requests {
			want := consulDecision(m, "web", http, r)
			if got := allowedByRBAC(t, rules, r); got != want {
				t.Fatalf("case %d (http %v, default allow %v): %s %s %s %v: RBAC allows=%v, Consul allows=%v\nintentions: %s\nrules: %v",
					i, http, m.IntentionDefaultAllow, r.source, r.method, r.path, r.headers, got, want, describe(m), rules)
			}
		}
	}
}

func describe(m *model.Mesh) string {
	var b strings.Builder
	for _, name := range sortedKeys(m.Intentions) {
		for _, s := range m.Intentions[name].Sources {
			fmt.Fprintf(&b, "\n  %s -> %s: %s", s.Name, name, s.Action)
			for _, p := range s.Permissions {
				fmt.Fprintf(&b, " [%s %+v]", p.Action, p.HTTP)
			}
		}
	}
	return b.String()
}

// TestRBACShape pins the structure Consul emits for a few small cases.
func TestRBACShape(t *testing.T) {
	ixns := func(sources ...*api.SourceIntention) map[string]*api.ServiceIntentionsConfigEntry {
		return map[string]*api.ServiceIntentionsConfigEntry{"web": {Kind: api.ServiceIntentions, Name: "web", Sources: sources}}
	}
	allow := func(name string) *api.SourceIntention {
		return &api.SourceIntention{Name: name, Action: api.IntentionActionAllow}
	}
	deny := func(name string) *api.SourceIntention {
		return &api.SourceIntention{Name: name, Action: api.IntentionActionDeny}
	}
	for _, tc := range []struct {
		name         string
		defaultAllow bool
		intentions   map[string]*api.ServiceIntentionsConfigEntry
		action       rbacv3.RBAC_Action
		policies     []string
		l4Principals int
	}{
		{"no intentions, default allow: a deny filter with nothing to deny", true, nil, rbacv3.RBAC_DENY, nil, 0},
		{"no intentions, default deny: an allow filter allowing nothing", false, nil, rbacv3.RBAC_ALLOW, nil, 0},
		{"default allow keeps only denies", true, ixns(allow("a"), deny("b")), rbacv3.RBAC_DENY, []string{l4PolicyName}, 1},
		{"default deny keeps only allows", false, ixns(allow("a"), allow("c"), deny("b")), rbacv3.RBAC_ALLOW, []string{l4PolicyName}, 2},
		{"an L7 intention is its own policy", false, ixns(&api.SourceIntention{Name: "a", Permissions: []*api.IntentionPermission{
			{Action: api.IntentionActionAllow, HTTP: &api.IntentionHTTPPermission{PathPrefix: "/api"}}}}, allow("b")),
			rbacv3.RBAC_ALLOW, []string{l4PolicyName, l7PolicyNamePrefix + "0"}, 1},
		{"an L7 intention whose permissions are all the default is dropped", true, ixns(&api.SourceIntention{Name: "a", Permissions: []*api.IntentionPermission{
			{Action: api.IntentionActionAllow, HTTP: &api.IntentionHTTPPermission{PathPrefix: "/api"}}}}),
			rbacv3.RBAC_DENY, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := baseMesh()
			m.IntentionDefaultAllow, m.Intentions = tc.defaultAllow, tc.intentions
			rules, err := rbacRules(m, "web", true)
			if err != nil {
				t.Fatal(err)
			}
			if rules.GetAction() != tc.action {
				t.Errorf("action %v, want %v", rules.GetAction(), tc.action)
			}
			if got := sortedKeys(rules.GetPolicies()); !slices.Equal(got, tc.policies) {
				t.Errorf("policies %v, want %v", got, tc.policies)
			}
			if got := len(rules.GetPolicies()[l4PolicyName].GetPrincipals()); got != tc.l4Principals {
				t.Errorf("%d L4 principals, want %d", got, tc.l4Principals)
			}
		})
	}
}

func TestSourcePrincipalPattern(t *testing.T) {
	td := "a.b.consul"
	for _, tc := range []struct {
		source, id string
		want       bool
	}{
		{"web", "spiffe://a.b.consul/ns/default/dc/dc1/svc/web", true},
		{"web", "spiffe://a.b.consul/ns/default/dc/dc9/svc/web", true}, // any datacenter, as Consul
		{"web", "spiffe://a.b.consul/ns/default/dc/dc1/svc/web2", false},
		{"web", "spiffe://aXb.consul/ns/default/dc/dc1/svc/web", false}, // the trust domain's dots are literal
		{"web", "spiffe://other.consul/ns/default/dc/dc1/svc/web", false},
		{"web", "spiffe://a.b.consul/ns/other/dc/dc1/svc/web", false},
		{"*", "spiffe://a.b.consul/ns/default/dc/dc1/svc/anything", true},
		{"*", "spiffe://a.b.consul/ns/default/dc/dc1/svc/a/b", false},
		{"*", "spiffe://other.consul/ns/default/dc/dc1/svc/web", false},
	} {
		p := sourcePrincipal(td, tc.source)
		re := regexp.MustCompile(p.GetAuthenticated().GetPrincipalName().GetSafeRegex().GetRegex())
		if got := re.MatchString(tc.id); got != tc.want {
			t.Errorf("source %q vs %s: %v, want %v", tc.source, tc.id, got, tc.want)
		}
	}
}

func TestRBACSkipsSourcesItCannotIdentify(t *testing.T) {
	m := baseMesh()
	m.IntentionDefaultAllow = false
	m.Intentions = map[string]*api.ServiceIntentionsConfigEntry{"web": {Kind: api.ServiceIntentions, Name: "web", Sources: []*api.SourceIntention{
		{Name: "a", Peer: "other-cluster", Action: api.IntentionActionAllow},
		{Name: "b", SamenessGroup: "group", Action: api.IntentionActionAllow},
		{Name: "c", Namespace: "team", Action: api.IntentionActionAllow},
		{Name: "d", Partition: "part", Action: api.IntentionActionAllow},
		{Name: "e", Namespace: "default", Partition: "default", Action: api.IntentionActionAllow},
		nil,
	}}}
	rules, err := rbacRules(m, "web", false)
	if err != nil {
		t.Fatal(err)
	}
	ps := rules.GetPolicies()[l4PolicyName].GetPrincipals()
	if len(ps) != 1 || !strings.Contains(ps[0].GetAuthenticated().GetPrincipalName().GetSafeRegex().GetRegex(), "/svc/e$") {
		t.Errorf("principals %v, want only e's", ps)
	}
}

func TestRBACErrors(t *testing.T) {
	entry := func(src *api.SourceIntention) *api.ServiceIntentionsConfigEntry {
		return &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: "web", Sources: []*api.SourceIntention{src}}
	}
	perm := func(h *api.IntentionHTTPPermission) *api.SourceIntention {
		return &api.SourceIntention{Name: "a", Permissions: []*api.IntentionPermission{{Action: api.IntentionActionAllow, HTTP: h}}}
	}
	jwt := &api.IntentionJWTRequirement{Providers: []*api.IntentionJWTProvider{{Name: "okta"}}}
	for _, tc := range []struct {
		name  string
		entry *api.ServiceIntentionsConfigEntry
		want  string
	}{
		{"JWT on the entry", &api.ServiceIntentionsConfigEntry{Kind: api.ServiceIntentions, Name: "web", JWT: jwt}, "JWT requirements are not supported"},
		{"JWT on a permission", entry(&api.SourceIntention{Name: "a", Permissions: []*api.IntentionPermission{{Action: api.IntentionActionAllow, JWT: jwt}}}),
			`source "a" permission 0: JWT requirements are not supported`},
		{"no source name", entry(&api.SourceIntention{Action: api.IntentionActionAllow}), "source 0 has no name"},
		{"bad action", entry(&api.SourceIntention{Name: "a", Action: "maybe"}), `source "a": action "maybe" is neither allow nor deny`},
		{"bad permission action", entry(&api.SourceIntention{Name: "a", Permissions: []*api.IntentionPermission{{Action: "maybe"}}}),
			`source "a" permission 0: action "maybe"`},
		{"nil permission", entry(&api.SourceIntention{Name: "a", Permissions: []*api.IntentionPermission{nil}}), `source "a" permission 0 is empty`},
		{"two paths", entry(perm(&api.IntentionHTTPPermission{PathExact: "/a", PathPrefix: "/b"})), "set at most one of path_exact, path_prefix, path_regex"},
		{"bad path regex", entry(perm(&api.IntentionHTTPPermission{PathRegex: "/(a"})), "path_regex: error parsing regexp"},
		{"bad header regex", entry(perm(&api.IntentionHTTPPermission{Header: []api.IntentionHTTPHeaderPermission{{Name: "x", Regex: "(a"}}})),
			`header "x": regex: error parsing regexp`},
		{"header without name", entry(perm(&api.IntentionHTTPPermission{Header: []api.IntentionHTTPHeaderPermission{{Exact: "a"}}})),
			"a header condition needs a name"},
		{"header with two conditions", entry(perm(&api.IntentionHTTPPermission{Header: []api.IntentionHTTPHeaderPermission{{Name: "x", Exact: "a", Prefix: "b"}}})),
			"set exactly one of present, exact, prefix, suffix, contains, regex"},
		{"bad method", entry(perm(&api.IntentionHTTPPermission{Methods: []string{"GET|POST"}})), `"GET|POST" is not an HTTP method`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := baseMesh()
			m.Intentions = map[string]*api.ServiceIntentionsConfigEntry{"web": tc.entry}
			_, err := Proxy(m, proxyID)
			var ee *EntryError
			if !errors.As(err, &ee) || ee.Kind != "service-intentions" || ee.Name != "web" {
				t.Fatalf("error %v, want an *EntryError naming service-intentions web", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	// The "*" entry's errors reach every destination.
	m := baseMesh()
	m.Intentions = map[string]*api.ServiceIntentionsConfigEntry{"*": {Kind: api.ServiceIntentions, Name: "*", JWT: jwt}}
	if _, err := Proxy(m, proxyID); err == nil || !strings.Contains(err.Error(), `service-intentions "*"`) {
		t.Errorf("error %v, want the * entry named", err)
	}
}

// TestInboundFilterOrder: the RBAC filter comes before the router (HTTP)
// or the tcp_proxy (TCP), and header conditions carry every matcher kind.
func TestInboundFilterOrder(t *testing.T) {
	m := baseMesh()
	m.Intentions = map[string]*api.ServiceIntentionsConfigEntry{"web": {Kind: api.ServiceIntentions, Name: "web", Sources: []*api.SourceIntention{
		{Name: "a", Permissions: []*api.IntentionPermission{{Action: api.IntentionActionDeny, HTTP: &api.IntentionHTTPPermission{
			Header: []api.IntentionHTTPHeaderPermission{
				{Name: "p", Present: true}, {Name: "s", Suffix: "x"}, {Name: "c", Contains: "y", IgnoreCase: true}, {Name: "r", Regex: "a+"},
			},
		}}}},
	}}}
	r, err := Proxy(m, proxyID)
	if err != nil {
		t.Fatal(err)
	}
	pub := listenerNamed(t, r, publicListenerName)
	h := &hcmv3.HttpConnectionManager{}
	if err := pub.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(h); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range h.GetHttpFilters() {
		names = append(names, f.GetName())
	}
	if !slices.Equal(names, []string{httpRBACFilterName, routerFilterName}) {
		t.Fatalf("http filters %v", names)
	}
	rb := &httprbacv3.RBAC{}
	if err := h.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(rb); err != nil {
		t.Fatal(err)
	}
	perm := rb.GetRules().GetPolicies()[l7PolicyNamePrefix+"0"].GetPermissions()[0]
	if n := len(perm.GetAndRules().GetRules()); n != 4 {
		t.Errorf("%d header conditions, want 4: %v", n, perm)
	}
	if c := perm.GetAndRules().GetRules()[2].GetHeader().GetStringMatch(); c.GetContains() != "y" || !c.GetIgnoreCase() {
		t.Errorf("contains with ignore_case: %v", c)
	}

	m.ProxyDefaults.Config["protocol"] = "tcp"
	r, err = Proxy(m, proxyID)
	if err != nil {
		t.Fatal(err)
	}
	fs := listenerNamed(t, r, publicListenerName).GetFilterChains()[0].GetFilters()
	if len(fs) != 2 || fs[0].GetName() != networkRBACFilterName || fs[1].GetName() != tcpProxyFilterName {
		t.Fatalf("tcp filters %v", fs)
	}
	nr := &netrbacv3.RBAC{}
	if err := fs[0].GetTypedConfig().UnmarshalTo(nr); err != nil {
		t.Fatal(err)
	}
	if nr.GetStatPrefix() != "connect_authz" {
		t.Errorf("stat prefix %q", nr.GetStatPrefix())
	}
	// On a tcp service the L7 intention is a deny (Consul's rule).
	if ps := nr.GetRules().GetPolicies()[l4PolicyName].GetPrincipals(); nr.GetRules().GetAction() != rbacv3.RBAC_DENY || len(ps) != 1 {
		t.Errorf("tcp rules %v, want a's L7 intention as an L4 deny", nr.GetRules())
	}
}

func listenerNamed(t *testing.T, r *Resources, name string) *listenerv3.Listener {
	t.Helper()
	for _, l := range r.Listeners {
		if l.GetName() == name {
			return l
		}
	}
	t.Fatalf("no listener %q", name)
	return nil
}
