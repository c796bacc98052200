package router

import (
	"fmt"
	"net/http"
	"regexp"
	"testing"
)

// benchConfig is a table of 50 virtual hosts with 20 routes each, mixing
// every path specifier and header matchers, with the catch-all last.
func benchConfig() *Config {
	cfg := &Config{Name: "bench"}
	for i := 0; i < 50; i++ {
		vh := VirtualHost{
			Name:    fmt.Sprintf("svc-%d", i),
			Domains: []string{fmt.Sprintf("svc-%d.example.com", i), fmt.Sprintf("svc-%d.example.com:8080", i), fmt.Sprintf("*.svc-%d.example.org", i)},
		}
		for j := 0; j < 20; j++ {
			rt := Route{Name: fmt.Sprintf("r%d", j), Forward: fwd(fmt.Sprintf("c-%d-%d", i, j))}
			switch {
			case j < 6:
				rt.Match.Prefix = fmt.Sprintf("/api/v%d/", j)
			case j < 12:
				rt.Match.Path = fmt.Sprintf("/exact/%d", j)
			case j < 17:
				rt.Match.Prefix = "/h/"
				rt.Match.Headers = []HeaderMatcher{
					{Name: "x-tenant", String: &StringMatcher{Kind: StringExact, Value: fmt.Sprintf("t%d", j)}},
					{Name: "x-debug", Present: ptr(false)},
				}
			case j == 17:
				rt.Match.Regex = regexp.MustCompile(`/items/[0-9]+`)
			case j == 18:
				rt.Match.PathSeparatedPrefix = "/sep"
			default:
				rt.Match.Prefix = "/"
			}
			vh.Routes = append(vh.Routes, rt)
		}
		cfg.VirtualHosts = append(cfg.VirtualHosts, vh)
	}
	return cfg
}

type benchCase struct {
	name      string
	r         *http.Request
	wantRoute string // "" for no match
	// zeroAlloc: Match must not allocate for this request.
	zeroAlloc bool
}

func benchCases(t testing.TB) []benchCase {
	return []benchCase{
		{"exact domain first prefix", req(t, "GET", "http://svc-7.example.com/api/v0/users"), "r0", true},
		{"exact domain late prefix", req(t, "GET", "http://svc-49.example.com/api/v5/users"), "r5", true},
		{"exact path", req(t, "GET", "http://svc-7.example.com/exact/11?x=1"), "r11", true},
		{"header match", req(t, "GET", "http://svc-7.example.com/h/x", "X-Tenant", "t16"), "r16", true},
		{"port domain", req(t, "GET", "http://svc-7.example.com:8080/api/v1/"), "r1", true},
		{"port stripped", req(t, "GET", "http://svc-7.example.com:9999/api/v1/"), "r1", true},
		{"wildcard domain", req(t, "GET", "http://a.svc-30.example.org/exact/6"), "r6", true},
		{"path separated prefix", req(t, "GET", "http://svc-1.example.com/sep/x"), "r18", true},
		{"catch-all after all misses", req(t, "GET", "http://svc-1.example.com/zzz", "X-Tenant", "none"), "r19", true},
		{"no virtual host", req(t, "GET", "http://unknown.net/"), "", true},
		{"regex", req(t, "GET", "http://svc-1.example.com/items/42"), "r17", false},
	}
}

func TestBenchTableRoutes(t *testing.T) {
	tbl := newTable(t, benchConfig())
	for _, bc := range benchCases(t) {
		t.Run(bc.name, func(t *testing.T) {
			rt, _ := tbl.Match(bc.r)
			got := ""
			if rt != nil {
				got = rt.Name
			}
			if got != bc.wantRoute {
				t.Errorf("route %q, want %q", got, bc.wantRoute)
			}
		})
	}
}

// TestMatchZeroAlloc holds the hot-path promise as a test, not only as a
// benchmark figure.
func TestMatchZeroAlloc(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	tbl := newTable(t, benchConfig())
	for _, bc := range benchCases(t) {
		if !bc.zeroAlloc {
			continue
		}
		t.Run(bc.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(200, func() { tbl.Match(bc.r) }); n != 0 {
				t.Errorf("Match allocated %.1f times per call, want 0", n)
			}
		})
	}
}

func BenchmarkMatch(b *testing.B) {
	tbl := newTable(b, benchConfig())
	for _, bc := range benchCases(b) {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				tbl.Match(bc.r)
			}
		})
	}
}

func BenchmarkPickCluster(b *testing.B) {
	a := &ForwardAction{TotalWeight: 100}
	for i := 0; i < 4; i++ {
		a.WeightedClusters = append(a.WeightedClusters, WeightedCluster{Name: fmt.Sprint(i), Weight: 25})
	}
	b.ReportAllocs()
	var n uint32
	for b.Loop() {
		a.PickCluster(n % 100)
		n++
	}
}
