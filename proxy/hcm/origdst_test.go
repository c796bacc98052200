package hcm

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/outrigger-mesh/outrigger/proxy/forward"
	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// origUpstream is an ORIGINAL_DST cluster stand-in that records the
// original destination it was asked to pick (the real cluster and the
// listener's restoring are tested in proxy/cluster and, in a network
// namespace, proxy/origdst).
type origUpstream struct {
	forward.Upstream
	uses bool
	got  netip.AddrPort
}

func (u *origUpstream) UsesOriginalDst() bool { return u.uses }
func (u *origUpstream) Pick(r *lb.Request) (*lb.Host, error) {
	if r != nil {
		u.got = r.OriginalDst
	}
	return nil, errors.New("no host in this test")
}

type oneUpstream struct{ u forward.Upstream }

func (o oneUpstream) Upstream(string) (forward.Upstream, bool) { return o.u, true }

// A request routed to an ORIGINAL_DST cluster carries the connection's
// local address (the original destination the listener restored);
// other clusters are not given one.
func TestOriginalDstToCluster(t *testing.T) {
	table, err := router.New(&router.Config{VirtualHosts: []router.VirtualHost{{
		Name: "all", Domains: []string{"*"},
		Routes: []router.Route{{Match: router.Match{Prefix: "/"}, Forward: &router.ForwardAction{Cluster: "passthrough"}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, uses := range []bool{true, false} {
		up := &origUpstream{uses: uses}
		h := New(Config{}, table, Deps{Clusters: oneUpstream{up}})
		r := httptest.NewRequest("GET", "/", nil)
		local := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 8080}
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, local))
		h.ServeHTTP(httptest.NewRecorder(), r)
		want := netip.AddrPort{}
		if uses {
			want = netip.MustParseAddrPort("10.1.2.3:8080")
		}
		if up.got != want {
			t.Errorf("UsesOriginalDst=%v: picked with %v, want %v", uses, up.got, want)
		}
	}
}
