package rbac

import (
	"net/http/httptest"
	"regexp"
	"testing"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// BenchmarkDecode: an intentions-shaped filter (one ALLOW policy per
// source service, matched by a SPIFFE regex, plus an L7 one on path and
// method) deciding an allowed request.
func BenchmarkDecode(b *testing.B) {
	spiffe := func(svc string) Rule {
		return Rule{Kind: KindAuthenticated, String: &router.StringMatcher{Kind: router.StringRegex,
			Regex: regexp.MustCompile(`spiffe://[^/]+/ns/default/dc/[^/]+/svc/` + svc)}}
	}
	rules := &Rules{Action: Allow}
	for _, svc := range []string{"billing", "cart", "search", "web"} {
		rules.Policies = append(rules.Policies, Policy{Name: "consul-intentions-layer4-" + svc, Permissions: []Rule{any_()}, Principals: []Rule{spiffe(svc)}})
	}
	rules.Policies = append(rules.Policies, Policy{Name: "consul-intentions-layer7-0",
		Permissions: []Rule{{Kind: KindAnd, Rules: []Rule{
			{Kind: KindURLPath, String: prefix("/api/")},
			{Kind: KindHeader, Header: &router.HeaderMatcher{Name: ":method", String: exact("GET")}},
		}}},
		Principals: []Rule{spiffe("admin")}})
	f, err := NewHTTPFilter("rbac", HTTPConfig{Rules: rules})
	if err != nil {
		b.Fatal(err)
	}
	r := httpReq("GET", "/api/items", peer([]string{webID}, nil, "web"), false)
	in := route("r", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if v := f.Decode(w, r, in); v.Stopped() {
			b.Fatal("denied")
		}
	}
}
