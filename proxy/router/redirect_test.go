package router

import (
	"net/http"
	"testing"
)

func TestRedirectLocation(t *testing.T) {
	tests := []struct {
		name    string
		rd      Redirect
		host    string
		target  string
		tls     bool
		matched string
		want    string
	}{
		{"https redirect keeps path and query", Redirect{HTTPSRedirect: true}, "example.com", "/foo?x=1", false, "", "https://example.com/foo?x=1"},
		{"https redirect drops default http port", Redirect{HTTPSRedirect: true}, "example.com:80", "/foo", false, "", "https://example.com/foo"},
		{"https redirect keeps other port", Redirect{HTTPSRedirect: true}, "example.com:8080", "/foo", false, "", "https://example.com:8080/foo"},
		{"same scheme keeps :80", Redirect{PathRedirect: "/new"}, "example.com:80", "/old", false, "", "http://example.com:80/new"},
		{"scheme redirect http drops :443", Redirect{SchemeRedirect: "http"}, "example.com:443", "/a", true, "", "http://example.com/a"},
		{"tls keeps https", Redirect{PathRedirect: "/b"}, "example.com", "/a", true, "", "https://example.com/b"},
		{"host redirect", Redirect{HostRedirect: "other.com"}, "example.com:80", "/foo?x=1", false, "", "http://other.com/foo?x=1"},
		{"port redirect replaces port", Redirect{PortRedirect: 8443}, "example.com:80", "/foo", false, "", "http://example.com:8443/foo"},
		{"port redirect adds port", Redirect{PortRedirect: 8443, HTTPSRedirect: true}, "example.com", "/foo", false, "", "https://example.com:8443/foo"},
		{"host and port redirect", Redirect{HostRedirect: "other.com:1", PortRedirect: 2}, "example.com", "/", false, "", "http://other.com:2/"},
		{"path redirect keeps query", Redirect{PathRedirect: "/new"}, "a.com", "/old?bar=1", false, "", "http://a.com/new?bar=1"},
		{"path redirect strip query", Redirect{PathRedirect: "/new", StripQuery: true}, "a.com", "/old?bar=1", false, "", "http://a.com/new"},
		{"path redirect own query wins", Redirect{PathRedirect: "/new?foo=1", StripQuery: true}, "a.com", "/old?bar=1", false, "", "http://a.com/new?foo=1"},
		{"path redirect gets leading slash", Redirect{PathRedirect: "new"}, "a.com", "/old", false, "", "http://a.com/new"},
		{"prefix rewrite", Redirect{PrefixRewrite: "/v2/"}, "a.com", "/v1/items?x=1", false, "/v1/", "http://a.com/v2/items?x=1"},
		{"prefix rewrite strip query", Redirect{PrefixRewrite: "/v2/", StripQuery: true}, "a.com", "/v1/items?x=1", false, "/v1/", "http://a.com/v2/items"},
		{"prefix rewrite to root", Redirect{PrefixRewrite: "/"}, "a.com", "/old/x", false, "/old/", "http://a.com/x"},
		{"strip query only", Redirect{StripQuery: true}, "a.com", "/p?x=1", false, "", "http://a.com/p"},
		{"empty query kept", Redirect{HTTPSRedirect: true}, "a.com", "/p?", false, "", "https://a.com/p?"},
		{"escaped path kept", Redirect{HTTPSRedirect: true}, "a.com", "/a%2Fb", false, "", "https://a.com/a%2Fb"},
		{"ipv6 default port dropped", Redirect{HTTPSRedirect: true}, "[::1]:80", "/foo", false, "", "https://[::1]/foo"},
		{"ipv6 without port", Redirect{HTTPSRedirect: true}, "[::1]", "/foo", false, "", "https://[::1]/foo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkRedirect("", &tt.rd); err != nil {
				t.Fatalf("invalid test redirect: %v", err)
			}
			r := req(t, "GET", tt.target)
			r.Host = tt.host
			if got := tt.rd.Location(r, tt.matched, tt.tls); got != tt.want {
				t.Errorf("Location = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRouteRedirectLocation(t *testing.T) {
	tbl := newTable(t, &Config{VirtualHosts: []VirtualHost{{
		Domains: []string{"*"},
		Routes: []Route{
			{Name: "moved", Match: Match{Prefix: "/OLD/", CaseInsensitive: true}, Redirect: &Redirect{PrefixRewrite: "/new/", Status: 308}},
			{Name: "gone", Match: Match{Path: "/gone"}, Redirect: &Redirect{PrefixRewrite: "/here"}},
			{Name: "fwd", Forward: fwd("c")},
		},
	}}})
	tests := []struct {
		target, want string
		status       int
	}{
		{"http://a.com/old/x?y=1", "http://a.com/new/x?y=1", http.StatusPermanentRedirect},
		{"http://a.com/gone?z", "http://a.com/here?z", http.StatusMovedPermanently},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			r := req(t, "GET", tt.target)
			rt, _ := tbl.Match(r)
			if rt == nil || rt.Redirect == nil {
				t.Fatalf("no redirect route: %v", rt)
			}
			if got := rt.RedirectLocation(r, false); got != tt.want {
				t.Errorf("RedirectLocation = %q, want %q", got, tt.want)
			}
			if got := rt.Redirect.StatusCode(); got != tt.status {
				t.Errorf("StatusCode = %d, want %d", got, tt.status)
			}
		})
	}
	r := req(t, "GET", "http://a.com/other")
	if rt, _ := tbl.Match(r); rt == nil || rt.RedirectLocation(r, false) != "" {
		t.Errorf("forward route gave a redirect location")
	}
}
