package router

import (
	"regexp"
	"testing"
)

func TestPickClusterSingle(t *testing.T) {
	a := &ForwardAction{Cluster: "only"}
	for _, n := range []uint32{0, 1, 1<<32 - 1} {
		if name, wc := a.PickCluster(n); name != "only" || wc != nil {
			t.Errorf("PickCluster(%d) = %q, %v", n, name, wc)
		}
	}
}

// TestPickClusterDistribution walks the whole domain [0, TotalWeight): each
// leg must own exactly its weight, in order, and a zero weight nothing.
func TestPickClusterDistribution(t *testing.T) {
	tests := []struct {
		name    string
		weights []uint32
	}{
		{"even", []uint32{50, 50}},
		{"uneven with zero", []uint32{10, 0, 30, 60}},
		{"leading zero", []uint32{0, 1, 2}},
		{"trailing zero", []uint32{3, 0}},
		{"single leg", []uint32{7}},
		{"many", []uint32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &ForwardAction{}
			var total uint32
			for i, w := range tt.weights {
				a.WeightedClusters = append(a.WeightedClusters, WeightedCluster{Name: string(rune('a' + i)), Weight: w})
				total += w
			}
			a.TotalWeight = total
			tbl := newTable(t, &Config{VirtualHosts: []VirtualHost{{Domains: []string{"*"}, Routes: []Route{{Forward: a}}}}})
			rt, _ := tbl.Match(req(t, "GET", "/"))
			a = rt.Forward

			counts := make(map[string]uint32)
			prev := -1
			for n := uint32(0); n < total; n++ {
				name, wc := a.PickCluster(n)
				if wc == nil || wc.Name != name {
					t.Fatalf("PickCluster(%d) = %q, %v", n, name, wc)
				}
				i := int(name[0] - 'a')
				if i < prev {
					t.Fatalf("PickCluster(%d) went back to leg %d after %d: ranges must be consecutive", n, i, prev)
				}
				prev = i
				counts[name]++
			}
			for i, w := range tt.weights {
				name := string(rune('a' + i))
				if counts[name] != w {
					t.Errorf("leg %s picked %d times, want its weight %d", name, counts[name], w)
				}
			}
			// Values past the domain wrap around rather than favouring a leg.
			for n := uint32(0); n < total; n++ {
				want, _ := a.PickCluster(n)
				if got, _ := a.PickCluster(n + total); got != want {
					t.Fatalf("PickCluster(%d) = %q, want %q (wrap of %d)", n+total, got, want, n)
				}
			}
		})
	}
}

func TestPickClusterLargeWeights(t *testing.T) {
	a := &ForwardAction{
		WeightedClusters: []WeightedCluster{{Name: "a", Weight: 1}, {Name: "b", Weight: 1<<32 - 2}},
		TotalWeight:      1<<32 - 1,
	}
	if _, err := New(&Config{VirtualHosts: []VirtualHost{{Domains: []string{"*"}, Routes: []Route{{Forward: a}}}}}); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[uint32]string{0: "a", 1: "b", 1<<32 - 2: "b", 1<<32 - 1: "a"} {
		if got, _ := a.PickCluster(n); got != want {
			t.Errorf("PickCluster(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestRewritePath(t *testing.T) {
	rr := func(pattern, sub string) *RegexRewrite {
		return &RegexRewrite{Pattern: regexp.MustCompile(pattern), Substitution: sub}
	}
	tests := []struct {
		name  string
		match Match
		fwd   ForwardAction
		path  string
		want  string
	}{
		{"prefix", Match{Prefix: "/foo"}, ForwardAction{PrefixRewrite: "/bar"}, "/foo/x?y=1", "/bar/x?y=1"},
		{"prefix to root", Match{Prefix: "/foo/"}, ForwardAction{PrefixRewrite: "/"}, "/foo/x", "/x"},
		{"empty prefix", Match{}, ForwardAction{PrefixRewrite: "/v1"}, "/x", "/v1/x"},
		{"prefix case-insensitive", Match{Prefix: "/FOO", CaseInsensitive: true}, ForwardAction{PrefixRewrite: "/bar"}, "/foo/x", "/bar/x"},
		{"path replaces all", Match{Path: "/old"}, ForwardAction{PrefixRewrite: "/new"}, "/old?x=1", "/new?x=1"},
		{"path_separated_prefix", Match{PathSeparatedPrefix: "/api"}, ForwardAction{PrefixRewrite: "/v2"}, "/api/x", "/v2/x"},
		{"path_separated_prefix exact", Match{PathSeparatedPrefix: "/api"}, ForwardAction{PrefixRewrite: "/v2"}, "/api", "/v2"},
		{"regex route prefix_rewrite replaces whole path", Match{Regex: regexp.MustCompile(`/v[0-9]/.*`)}, ForwardAction{PrefixRewrite: "/x"}, "/v1/a?q", "/x?q"},
		{"regex_rewrite groups", Match{}, ForwardAction{RegexRewrite: rr(`^/service/([^/]+)(/.*)$`, "${2}/instance/${1}")},
			"/service/foo/v1/api?x=1", "/v1/api/instance/foo?x=1"},
		{"regex_rewrite all matches", Match{}, ForwardAction{RegexRewrite: rr(`one`, "two")}, "/xxx/one/yyy/one/zzz", "/xxx/two/yyy/two/zzz"},
		{"regex_rewrite leaves query", Match{}, ForwardAction{RegexRewrite: rr(`a`, "b")}, "/a?a=a", "/b?a=a"},
		{"no rewrite", Match{Prefix: "/foo"}, ForwardAction{}, "/foo/x?y", "/foo/x?y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.fwd
			f.Cluster = "c"
			rt := &Route{Match: tt.match, Forward: &f}
			if err := checkRoute("", rt); err != nil {
				t.Fatalf("invalid test route: %v", err)
			}
			if got := rt.RewritePath(tt.path); got != tt.want {
				t.Errorf("RewritePath(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
	redirect := &Route{Redirect: &Redirect{}}
	if got := redirect.RewritePath("/a?b"); got != "/a?b" {
		t.Errorf("redirect route rewrote path to %q", got)
	}
}

func TestMatchedPrefix(t *testing.T) {
	tests := []struct {
		name  string
		match Match
		path  string
		want  string
	}{
		{"prefix", Match{Prefix: "/a/"}, "/a/b", "/a/"},
		{"prefix keeps request case", Match{Prefix: "/A/", CaseInsensitive: true}, "/a/b", "/a/"},
		{"path", Match{Path: "/a"}, "/a", "/a"},
		{"regex", Match{Regex: regexp.MustCompile(`/a.*`)}, "/abc", "/abc"},
		{"separated", Match{PathSeparatedPrefix: "/api"}, "/api/x", "/api"},
		{"not matching", Match{Prefix: "/z"}, "/a", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rt := &Route{Match: tt.match}
			if got := rt.MatchedPrefix(tt.path); got != tt.want {
				t.Errorf("MatchedPrefix(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}
