package router

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
)

func newTable(t testing.TB, cfg *Config) *Table {
	t.Helper()
	tbl, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return tbl
}

// req builds a server-side request for target with header pairs.
func req(t testing.TB, method, target string, kv ...string) *http.Request {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(kv); i += 2 {
		r.Header.Add(kv[i], kv[i+1])
	}
	return r
}

func fwd(cluster string) *ForwardAction { return &ForwardAction{Cluster: cluster} }

func vhost(name string, domains ...string) VirtualHost {
	return VirtualHost{Name: name, Domains: domains, Routes: []Route{{Name: name, Forward: fwd(name)}}}
}

func TestVirtualHostSelection(t *testing.T) {
	cfg := &Config{Name: "rc", VirtualHosts: []VirtualHost{
		vhost("exact", "example.com", "WWW.Example.com"),
		vhost("exact-port", "example.com:8443"),
		vhost("suffix", "*.example.com"),
		vhost("suffix-long", "*.api.example.com"),
		vhost("suffix-dash", "*-bar.foo.com"),
		vhost("prefix", "foo.*"),
		vhost("prefix-long", "foo.bar.*"),
		vhost("suffix-port", "*:9000"),
		vhost("suffix-host-port", "*.example.com:7000"),
		vhost("ipv6", "[::1]"),
		vhost("default", "*"),
	}}
	tbl := newTable(t, cfg)
	tests := []struct {
		host string
		want string
	}{
		{"example.com", "exact"},
		{"EXAMPLE.COM", "exact"},
		{"www.example.com", "exact"}, // exact beats *.example.com
		{"Www.Example.Com:80", "exact"},
		{"example.com:80", "exact"}, // port ignored when the domain names none
		{"example.com:", "exact"},
		{"example.com:8443", "exact-port"},
		{"a.example.com", "suffix"},
		{"a.b.example.com:1234", "suffix"},
		{"x.api.example.com", "suffix-long"},
		{"api.example.com", "suffix"}, // "*" must stand for at least one character
		{"baz-bar.foo.com", "suffix-dash"},
		{"-bar.foo.com", "default"},
		{"foo.org", "prefix"},
		{"foo.bar.baz", "prefix-long"},
		{"foo.bar.", "prefix"},
		{"foo.", "default"},
		{"other.net:9000", "suffix-port"},
		{"other.net:90000", "default"},
		{"a.example.com:7000", "suffix-host-port"},
		{"[::1]", "ipv6"},
		{"[::1]:8080", "ipv6"},
		{"[::2]:8080", "default"},
		{"unknown.org", "default"},
		{"", "default"},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			r := req(t, "GET", "/")
			r.Host = tt.host
			rt, vh := tbl.Match(r)
			if vh == nil || rt == nil {
				t.Fatalf("no match, want %s", tt.want)
			}
			if vh.Name != tt.want {
				t.Errorf("virtual host %s, want %s", vh.Name, tt.want)
			}
			if got := tbl.VirtualHost(tt.host); got != vh {
				t.Errorf("VirtualHost(%q) disagrees with Match", tt.host)
			}
		})
	}
}

func TestVirtualHostNoDefault(t *testing.T) {
	tbl := newTable(t, &Config{VirtualHosts: []VirtualHost{vhost("a", "a.com")}})
	r := req(t, "GET", "http://b.com/")
	if rt, vh := tbl.Match(r); rt != nil || vh != nil {
		t.Fatalf("got %v %v, want no match", rt, vh)
	}
	empty := newTable(t, &Config{})
	if rt, vh := empty.Match(r); rt != nil || vh != nil {
		t.Fatalf("empty table matched")
	}
}

func TestVirtualHostOnlyDefault(t *testing.T) {
	tbl := newTable(t, &Config{VirtualHosts: []VirtualHost{vhost("any", "*")}})
	for _, host := range []string{"a.com", "B.COM:80", ""} {
		r := req(t, "GET", "/")
		r.Host = host
		if _, vh := tbl.Match(r); vh == nil || vh.Name != "any" {
			t.Errorf("host %q: got %v", host, vh)
		}
	}
}

func TestRouteOrderFirstMatchWins(t *testing.T) {
	tbl := newTable(t, &Config{VirtualHosts: []VirtualHost{{
		Domains: []string{"*"},
		Routes: []Route{
			{Name: "api", Match: Match{Prefix: "/api/"}, Forward: fwd("api")},
			{Name: "api-v2", Match: Match{Prefix: "/api/v2"}, Forward: fwd("never")},
			{Name: "root", Match: Match{Prefix: "/"}, Forward: fwd("root")},
		},
	}}})
	for target, want := range map[string]string{"/api/v2/x": "api", "/apix": "root", "/": "root"} {
		rt, _ := tbl.Match(req(t, "GET", target))
		if rt == nil || rt.Name != want {
			t.Errorf("%s: got %v, want %s", target, rt, want)
		}
	}
	// A virtual host with no matching route gives (nil, vh).
	tbl = newTable(t, &Config{VirtualHosts: []VirtualHost{{
		Name: "vh", Domains: []string{"*"},
		Routes: []Route{{Match: Match{Path: "/only"}, Forward: fwd("c")}},
	}}})
	if rt, vh := tbl.Match(req(t, "GET", "/other")); rt != nil || vh == nil || vh.Name != "vh" {
		t.Errorf("got %v, %v; want nil route and vh", rt, vh)
	}
}

func TestNewDoesNotAliasCallerConfig(t *testing.T) {
	cfg := &Config{
		Headers: HeaderEdits{RequestAdd: []HeaderValue{{Name: "x-lower", Value: "v"}}},
		VirtualHosts: []VirtualHost{{Domains: []string{"*"}, Routes: []Route{{
			Forward: &ForwardAction{WeightedClusters: []WeightedCluster{{Name: "a", Weight: 1}}, TotalWeight: 1},
		}}}},
	}
	tbl := newTable(t, cfg)
	if cfg.Headers.RequestAdd[0].Name != "x-lower" {
		t.Errorf("New changed the caller's header name to %q", cfg.Headers.RequestAdd[0].Name)
	}
	if tbl.Headers().RequestAdd[0].Name != "X-Lower" {
		t.Errorf("table header name %q, want canonical", tbl.Headers().RequestAdd[0].Name)
	}
	cfg.VirtualHosts[0].Routes[0].Forward.WeightedClusters[0].Name = "changed"
	cfg.VirtualHosts[0].Domains[0] = "changed"
	rt, _ := tbl.Match(req(t, "GET", "/"))
	if rt == nil {
		t.Fatal("no route")
	}
	if name, _ := rt.Forward.PickCluster(0); name != "a" {
		t.Errorf("caller's later change reached the table: %q", name)
	}
}

func TestConcurrentMatch(t *testing.T) {
	tbl := newTable(t, benchConfig())
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := req(t, "GET", "http://svc-7.example.com/api/v3/items/1")
			for i := 0; i < 500; i++ {
				if rt, _ := tbl.Match(r); rt == nil {
					t.Error("no route")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestNewValidation(t *testing.T) {
	ok := func() Route { return Route{Match: Match{Prefix: "/"}, Forward: fwd("c")} }
	withRoute := func(rt Route) *Config {
		return &Config{VirtualHosts: []VirtualHost{{Name: "vh", Domains: []string{"*"}, Routes: []Route{rt}}}}
	}
	mutate := func(f func(*Route)) *Config { rt := ok(); f(&rt); return withRoute(rt) }
	yes := true
	tests := []struct {
		name      string
		cfg       *Config
		wantErr   string // substring of the error; "" means success
		wantField string
	}{
		{name: "valid", cfg: withRoute(ok())},
		{name: "nil config", cfg: nil, wantErr: "no route configuration"},
		{name: "no action", cfg: mutate(func(r *Route) { r.Forward = nil }), wantErr: "exactly one of", wantField: "virtual_hosts[0].routes[0]"},
		{name: "two actions", cfg: mutate(func(r *Route) { r.Direct = &DirectResponse{Status: 200} }), wantErr: "(2 are)"},
		{name: "cluster and weighted", cfg: mutate(func(r *Route) {
			r.Forward.WeightedClusters = []WeightedCluster{{Name: "a", Weight: 1}}
			r.Forward.TotalWeight = 1
		}), wantErr: "only one of cluster and weighted_clusters"},
		{name: "no cluster", cfg: mutate(func(r *Route) { r.Forward.Cluster = "" }), wantErr: "one of cluster and weighted_clusters is required"},
		{name: "weights do not sum", cfg: mutate(func(r *Route) {
			r.Forward = &ForwardAction{WeightedClusters: []WeightedCluster{{Name: "a", Weight: 30}, {Name: "b", Weight: 60}}, TotalWeight: 100}
		}), wantErr: "weights sum to 90 but total_weight is 100", wantField: "virtual_hosts[0].routes[0].route.weighted_clusters.total_weight"},
		{name: "weights zero", cfg: mutate(func(r *Route) {
			r.Forward = &ForwardAction{WeightedClusters: []WeightedCluster{{Name: "a"}}}
		}), wantErr: "weights sum to 0"},
		{name: "weighted name missing", cfg: mutate(func(r *Route) {
			r.Forward = &ForwardAction{WeightedClusters: []WeightedCluster{{Name: "a", Weight: 1}, {Weight: 1}}, TotalWeight: 2}
		}), wantField: "virtual_hosts[0].routes[0].route.weighted_clusters.clusters[1].name", wantErr: "required"},
		{name: "weighted cluster headers", cfg: mutate(func(r *Route) {
			r.Forward = &ForwardAction{WeightedClusters: []WeightedCluster{{Name: "a", Weight: 1,
				Headers: HeaderEdits{RequestAdd: []HeaderValue{{Name: "host", Value: "x"}}}}}, TotalWeight: 1}
		}), wantField: "virtual_hosts[0].routes[0].route.weighted_clusters.clusters[0].request_headers_to_add[0].header.key"},
		{name: "both rewrites", cfg: mutate(func(r *Route) {
			r.Forward.PrefixRewrite = "/x"
			r.Forward.RegexRewrite = &RegexRewrite{Pattern: regexp.MustCompile("a")}
		}), wantErr: "prefix_rewrite and regex_rewrite"},
		{name: "regex rewrite without pattern", cfg: mutate(func(r *Route) { r.Forward.RegexRewrite = &RegexRewrite{} }), wantErr: "pattern is required"},
		{name: "both host rewrites", cfg: mutate(func(r *Route) {
			r.Forward.HostRewriteLiteral = "h"
			r.Forward.AutoHostRewrite = true
		}), wantErr: "host_rewrite_literal and auto_host_rewrite"},
		{name: "bad host rewrite", cfg: mutate(func(r *Route) { r.Forward.HostRewriteLiteral = "a b" }), wantField: "virtual_hosts[0].routes[0].route.host_rewrite_literal"},
		{name: "negative timeout", cfg: mutate(func(r *Route) { r.Forward.Timeout = -1 }), wantField: "virtual_hosts[0].routes[0].route.timeout"},
		{name: "direct status", cfg: mutate(func(r *Route) { r.Forward = nil; r.Direct = &DirectResponse{Status: 100} }), wantErr: "outside [200, 599]"},
		{name: "redirect status", cfg: mutate(func(r *Route) { r.Forward = nil; r.Redirect = &Redirect{Status: 304} }), wantField: "virtual_hosts[0].routes[0].redirect.response_code"},
		{name: "redirect default status", cfg: mutate(func(r *Route) { r.Forward = nil; r.Redirect = &Redirect{HTTPSRedirect: true} })},
		{name: "redirect path and prefix", cfg: mutate(func(r *Route) {
			r.Forward = nil
			r.Redirect = &Redirect{PathRedirect: "/a", PrefixRewrite: "/b"}
		}), wantErr: "path_redirect and prefix_rewrite"},
		{name: "redirect scheme and https", cfg: mutate(func(r *Route) {
			r.Forward = nil
			r.Redirect = &Redirect{SchemeRedirect: "https", HTTPSRedirect: true}
		}), wantErr: "scheme_redirect and https_redirect"},
		{name: "redirect bad scheme", cfg: mutate(func(r *Route) { r.Forward = nil; r.Redirect = &Redirect{SchemeRedirect: "ht tp"} }), wantErr: "not a valid URI scheme"},
		{name: "redirect bad port", cfg: mutate(func(r *Route) { r.Forward = nil; r.Redirect = &Redirect{PortRedirect: 70000} }), wantErr: "out of range"},
		{name: "prefix and path", cfg: mutate(func(r *Route) { r.Match = Match{Prefix: "/a", Path: "/b"} }), wantErr: "only one of prefix, path"},
		{name: "prefix with query", cfg: mutate(func(r *Route) { r.Match = Match{Prefix: "/a?b"} }), wantField: "virtual_hosts[0].routes[0].match.prefix"},
		{name: "path with fragment", cfg: mutate(func(r *Route) { r.Match = Match{Path: "/a#b"} }), wantField: "virtual_hosts[0].routes[0].match.path"},
		{name: "separated prefix trailing slash", cfg: mutate(func(r *Route) { r.Match = Match{PathSeparatedPrefix: "/api/"} }), wantField: "virtual_hosts[0].routes[0].match.path_separated_prefix"},
		{name: "separated prefix too short", cfg: mutate(func(r *Route) { r.Match = Match{PathSeparatedPrefix: "/"} }), wantErr: "at least two characters"},
		{name: "header two specifiers", cfg: mutate(func(r *Route) {
			r.Match.Headers = []HeaderMatcher{{Name: "x", Present: &yes, Range: &Int64Range{0, 1}}}
		}), wantField: "virtual_hosts[0].routes[0].match.headers[0]", wantErr: "at most one"},
		{name: "header unknown pseudo", cfg: mutate(func(r *Route) { r.Match.Headers = []HeaderMatcher{{Name: ":protocol"}} }), wantErr: "pseudo-header"},
		{name: "header bad name", cfg: mutate(func(r *Route) { r.Match.Headers = []HeaderMatcher{{Name: "a b"}} }), wantErr: "invalid header name"},
		{name: "header empty name", cfg: mutate(func(r *Route) { r.Match.Headers = []HeaderMatcher{{}} }), wantField: "virtual_hosts[0].routes[0].match.headers[0].name"},
		{name: "string regex kind without regex", cfg: mutate(func(r *Route) {
			r.Match.Headers = []HeaderMatcher{{Name: "x", String: &StringMatcher{Kind: StringRegex}}}
		}), wantField: "virtual_hosts[0].routes[0].match.headers[0].string_match.safe_regex"},
		{name: "string regex with value", cfg: mutate(func(r *Route) {
			r.Match.Headers = []HeaderMatcher{{Name: "x", String: &StringMatcher{Regex: regexp.MustCompile("a"), Value: "a"}}}
		}), wantErr: "cannot also carry"},
		{name: "string regex with other kind", cfg: mutate(func(r *Route) {
			r.Match.Headers = []HeaderMatcher{{Name: "x", String: &StringMatcher{Kind: StringPrefix, Regex: regexp.MustCompile("a")}}}
		}), wantErr: "cannot also be a prefix matcher"},
		{name: "string empty prefix", cfg: mutate(func(r *Route) {
			r.Match.Headers = []HeaderMatcher{{Name: "x", String: &StringMatcher{Kind: StringPrefix}}}
		}), wantField: "virtual_hosts[0].routes[0].match.headers[0].string_match.prefix"},
		{name: "string unknown kind", cfg: mutate(func(r *Route) {
			r.Match.Headers = []HeaderMatcher{{Name: "x", String: &StringMatcher{Kind: 42, Value: "a"}}}
		}), wantErr: "unknown string match kind"},
		{name: "string empty exact ok", cfg: mutate(func(r *Route) {
			r.Match.Headers = []HeaderMatcher{{Name: "x", String: &StringMatcher{Kind: StringExact}}}
		})},
		{name: "query empty name", cfg: mutate(func(r *Route) { r.Match.QueryParams = []QueryParamMatcher{{Present: true}} }), wantField: "virtual_hosts[0].routes[0].match.query_parameters[0].name"},
		{name: "query string and present", cfg: mutate(func(r *Route) {
			r.Match.QueryParams = []QueryParamMatcher{{Name: "q", Present: true, String: &StringMatcher{Value: "a"}}}
		}), wantErr: "only one of string_match and present_match"},
		{name: "add host header", cfg: mutate(func(r *Route) {
			r.Headers.RequestAdd = []HeaderValue{{Name: "Host", Value: "x"}}
		}), wantField: "virtual_hosts[0].routes[0].request_headers_to_add[0].header.key", wantErr: "may not be added"},
		{name: "add authority", cfg: mutate(func(r *Route) { r.Headers.RequestAdd = []HeaderValue{{Name: ":authority", Value: "x"}} }), wantErr: "may not be added"},
		{name: "remove path", cfg: mutate(func(r *Route) { r.Headers.RequestRemove = []string{":path"} }), wantField: "virtual_hosts[0].routes[0].request_headers_to_remove[0]"},
		{name: "response status", cfg: mutate(func(r *Route) { r.Headers.ResponseAdd = []HeaderValue{{Name: ":status", Value: "200"}} }), wantField: "virtual_hosts[0].routes[0].response_headers_to_add[0].header.key"},
		{name: "header value CRLF", cfg: mutate(func(r *Route) { r.Headers.ResponseAdd = []HeaderValue{{Name: "x", Value: "a\r\nb: c"}} }), wantErr: "CR, LF or NUL"},
		{name: "append and absent", cfg: mutate(func(r *Route) {
			r.Headers.RequestAdd = []HeaderValue{{Name: "x", Value: "a", Append: true, AddIfAbsent: true}}
		}), wantErr: "exclusive"},
		{name: "config level edit", cfg: &Config{Headers: HeaderEdits{ResponseRemove: []string{"bad name"}}}, wantField: "response_headers_to_remove[0]"},
		{name: "vhost level edit", cfg: &Config{VirtualHosts: []VirtualHost{{Domains: []string{"*"}, Headers: HeaderEdits{RequestRemove: []string{"host"}}}}}, wantField: "virtual_hosts[0].request_headers_to_remove[0]"},
		{name: "duplicate domain across vhosts", cfg: &Config{VirtualHosts: []VirtualHost{vhost("a", "a.com"), vhost("b", "b.com", "A.com")}},
			wantField: "virtual_hosts[1].domains[1]", wantErr: "also listed at virtual_hosts[0].domains[0]"},
		{name: "duplicate domain within vhost", cfg: &Config{VirtualHosts: []VirtualHost{vhost("a", "*.a.com", "*.a.com")}}, wantErr: "unique"},
		{name: "two default vhosts", cfg: &Config{VirtualHosts: []VirtualHost{vhost("a", "*"), vhost("b", "*")}}, wantErr: "only one virtual host may use the domain \"*\""},
		{name: "empty domain", cfg: &Config{VirtualHosts: []VirtualHost{vhost("a", "")}}, wantErr: "empty domain"},
		{name: "no domains", cfg: &Config{VirtualHosts: []VirtualHost{{Name: "a"}}}, wantField: "virtual_hosts[0].domains"},
		{name: "wildcard in the middle", cfg: &Config{VirtualHosts: []VirtualHost{vhost("a", "a.*.com")}}, wantErr: "first or the last"},
		{name: "wildcard both ends", cfg: &Config{VirtualHosts: []VirtualHost{vhost("a", "*a*")}}, wantErr: "first or the last"},
		{name: "domain with space", cfg: &Config{VirtualHosts: []VirtualHost{vhost("a", "a .com")}}, wantErr: "invalid character"},
		{name: "duplicate vhost name", cfg: &Config{VirtualHosts: []VirtualHost{vhost("a", "a.com"), vhost("a", "b.com")}}, wantField: "virtual_hosts[1].name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tbl, err := New(tt.cfg)
			wantFail := tt.wantErr != "" || tt.wantField != ""
			if !wantFail {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if tbl == nil {
					t.Fatal("nil table")
				}
				return
			}
			if err == nil {
				t.Fatalf("New succeeded, want error %q", tt.wantErr)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not match ErrInvalidConfig", err)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not *ConfigError", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if tt.wantField != "" && ce.Field != tt.wantField {
				t.Errorf("field %q, want %q (error %q)", ce.Field, tt.wantField, err)
			}
		})
	}
}

func TestConfigErrorUnwrapsCause(t *testing.T) {
	cause := errors.New("boom")
	err := error(&ConfigError{Field: "a", Msg: "bad", Err: cause})
	if !errors.Is(err, cause) || !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("errors.Is failed for %v", err)
	}
	if got, want := err.Error(), "a: bad: boom"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
