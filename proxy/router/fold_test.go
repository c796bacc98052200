package router

import (
	"net/http"
	"net/url"
	"testing"
)

// Host names and header names fold case in ASCII only, as in Envoy: the
// Kelvin sign is not "k", and invalid UTF-8 bytes stay distinct.
func TestASCIIOnlyCaseFolding(t *testing.T) {
	tbl := newTable(t, &Config{VirtualHosts: []VirtualHost{
		vhost("k", "k.example.com"),
		vhost("bad", "\xcf"),
		vhost("default", "*"),
	}})
	for host, want := range map[string]string{
		"K.EXAMPLE.COM":        "k",
		"\u212a.example.com":   "default",
		"\xcf":                 "bad",
		"\xad":                 "default",
		"\u212a.EXAMPLE.com:1": "default",
	} {
		_, vh := tbl.Match(&http.Request{Host: host, URL: &url.URL{Path: "/"}})
		if vh == nil || vh.Name != want {
			t.Errorf("host %q: virtual host %v, want %s", host, vh, want)
		}
	}
	_, err := New(&Config{VirtualHosts: []VirtualHost{{Name: "a", Domains: []string{"*"}, Routes: []Route{{
		Match:  Match{Headers: []HeaderMatcher{{Name: "x-\u212a"}}},
		Direct: &DirectResponse{Status: 200},
	}}}}})
	if err == nil {
		t.Error("a header matcher on x-\\u212a (Kelvin sign) was accepted")
	}
	if got := lowerASCII("AbC\u212a\xff"); got != "abc\u212a\xff" {
		t.Errorf("lowerASCII = %q", got)
	}
}
