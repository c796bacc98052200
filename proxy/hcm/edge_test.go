package hcm

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// At the edge (use_remote_address) an external client's x-envoy-*
// steering headers are dropped and its address recorded; an internal one
// keeps them and is marked internal.
func TestEdgeSanitizing(t *testing.T) {
	table, err := router.New(&router.Config{VirtualHosts: []router.VirtualHost{{
		Name: "all", Domains: []string{"*"},
		Routes: []router.Route{{Match: router.Match{Prefix: "/"}, Direct: &router.DirectResponse{Status: 200}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	var got http.Header
	spy := spyFilter(func(r *http.Request) { got = r.Header.Clone() })
	cfg := Config{
		UseRemoteAddress:  true,
		InternalAddresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
		Filters:           []Filter{{HTTP: spy}},
	}
	h := New(cfg, table, Deps{Clusters: noClusters{}})
	for _, tc := range []struct {
		remote   string
		internal bool
	}{
		{"192.0.2.7:4000", false},
		{"10.1.2.3:4000", true},
		{"[::ffff:10.1.2.3]:4000", true},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		r.Header.Set("X-Envoy-Retry-On", "5xx")
		r.Header.Set("X-Envoy-Upstream-Rq-Timeout-Ms", "1")
		r.Header.Set("X-Envoy-Internal", "true")
		r.Header.Set("X-Envoy-Force-Trace", "1")
		h.ServeHTTP(httptest.NewRecorder(), r)
		if tc.internal {
			if got.Get("X-Envoy-Retry-On") != "5xx" || got.Get("X-Envoy-Internal") != "true" || got.Get("X-Envoy-External-Address") != "" {
				t.Errorf("%s internal: headers %v", tc.remote, got)
			}
			continue
		}
		for _, k := range []string{"X-Envoy-Retry-On", "X-Envoy-Upstream-Rq-Timeout-Ms", "X-Envoy-Internal", "X-Envoy-Force-Trace"} {
			if got.Get(k) != "" {
				t.Errorf("%s external: %s kept", tc.remote, k)
			}
		}
		if got.Get("X-Envoy-External-Address") != "192.0.2.7" {
			t.Errorf("%s external: x-envoy-external-address %q", tc.remote, got.Get("X-Envoy-External-Address"))
		}
	}
}

// spyFilter is an HTTPFilter that shows the request as the router gets it.
type spyFilter func(*http.Request)

func (f spyFilter) Decode(_ http.ResponseWriter, r *http.Request, _ *FilterInput) Verdict {
	f(r)
	return Verdict{}
}
