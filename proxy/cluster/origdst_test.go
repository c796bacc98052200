package cluster

import (
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/healthcheck"
	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/outlier"
)

// An ORIGINAL_DST cluster sends each request to its original destination:
// hosts are made on first use, counted per host and per cluster, and
// removed once unused for a cleanup interval.
func TestOriginalDstCluster(t *testing.T) {
	a, b := backend(t, "a"), backend(t, "b")
	m := newManager(t)
	update(t, m, Config{Name: "orig", Discovery: OriginalDst, CleanupInterval: 50 * time.Millisecond,
		Thresholds: Thresholds{MaxRequests: 100}})
	c := m.Get("orig")
	select {
	case <-c.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("ORIGINAL_DST cluster never ready")
	}
	if _, err := c.Pick(nil); !errors.Is(err, ErrNoOriginalDst) {
		t.Fatalf("Pick without an original destination: %v, want ErrNoOriginalDst", err)
	}
	if _, err := c.Pick(&lb.Request{}); !errors.Is(err, ErrNoOriginalDst) {
		t.Fatalf("Pick with a zero original destination: %v, want ErrNoOriginalDst", err)
	}

	get := func(dst string) string {
		t.Helper()
		h, err := c.Pick(&lb.Request{OriginalDst: netip.MustParseAddrPort(dst)})
		if err != nil {
			t.Fatal(err)
		}
		if h.Address != dst {
			t.Fatalf("picked %s for original destination %s", h.Address, dst)
		}
		req, _ := http.NewRequest(http.MethodGet, "http://placeholder/", nil)
		resp, err := c.RoundTrip(req, h)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(body)
	}
	if got := get(a); !strings.HasPrefix(got, "a ") {
		t.Errorf("request to %s answered %q", a, got)
	}
	if got := get(b); !strings.HasPrefix(got, "b ") {
		t.Errorf("request to %s answered %q", b, got)
	}
	get(a)
	hosts := c.Hosts()
	if len(hosts) != 2 {
		t.Fatalf("%d hosts, want 2 (one per original destination)", len(hosts))
	}
	byAddr := map[string]*Host{hosts[0].Address: hosts[0], hosts[1].Address: hosts[1]}
	if n := byAddr[a].Stats.RqTotal.Load(); n != 2 {
		t.Errorf("host %s rq_total %d, want 2", a, n)
	}
	if n := byAddr[b].Stats.CxTotal.Load(); n != 1 {
		t.Errorf("host %s cx_total %d, want 1 (the pool's connection counted on the dynamic host)", b, n)
	}
	if st := c.Stats(); st.RqTotal.Load() != 3 || st.CxTotal.Load() != 2 {
		t.Errorf("cluster rq_total %d cx_total %d, want 3 and 2", st.RqTotal.Load(), st.CxTotal.Load())
	}

	// A v4-mapped destination is the same host as its IPv4 form.
	mapped := netip.MustParseAddrPort(a)
	mapped = netip.AddrPortFrom(netip.AddrFrom16(mapped.Addr().As16()), mapped.Port())
	if h, _ := c.Pick(&lb.Request{OriginalDst: mapped}); h != byAddr[a] {
		t.Errorf("v4-mapped %s got another host than %s", mapped, a)
	}

	// The sweep removes what was not picked since the previous sweep; a
	// connection still open to a removed host counts on it until it closes.
	h, _ := c.Pick(&lb.Request{OriginalDst: netip.MustParseAddrPort(b)})
	before, cxBefore := h.Stats.CxActive.Load(), c.Stats().CxActive.Load()
	closed := c.ConnectionOpened(h)
	waitFor(t, "unused hosts to be removed", func() bool { return len(c.Hosts()) == 0 })
	closed()
	if h.Stats.CxActive.Load() != before || c.Stats().CxActive.Load() != cxBefore {
		t.Errorf("cx_active host %d cluster %d after the connection closed, want %d and %d",
			h.Stats.CxActive.Load(), c.Stats().CxActive.Load(), before, cxBefore)
	}
	if h2, _ := c.Pick(&lb.Request{OriginalDst: netip.MustParseAddrPort(b)}); h2 == h {
		t.Error("a removed host came back instead of a new one")
	}

	// Circuit breakers hold per cluster.
	if !c.AdmitConnection() {
		t.Error("AdmitConnection refused with no connection open")
	}
}

// Updating an ORIGINAL_DST cluster keeps its hosts; turning it into a
// STATIC one drops them and balances over the endpoints again.
func TestOriginalDstUpdate(t *testing.T) {
	a := backend(t, "a")
	m := newManager(t)
	cfg := Config{Name: "orig", Discovery: OriginalDst, CleanupInterval: time.Hour}
	update(t, m, cfg)
	c := m.Get("orig")
	h, err := c.Pick(&lb.Request{OriginalDst: netip.MustParseAddrPort(a)})
	if err != nil {
		t.Fatal(err)
	}
	o := c.orig.Load()
	if n := o.sweep(); n != 0 {
		t.Fatalf("sweep removed %d hosts picked since the last one", n)
	}
	if n := o.sweep(); n != 1 {
		t.Fatalf("second sweep removed %d hosts, want the one unused", n)
	}
	if h2, _ := c.Pick(&lb.Request{OriginalDst: netip.MustParseAddrPort(a)}); h2 == h {
		t.Fatal("swept host reused")
	} else {
		h = h2
	}
	cfg.CleanupInterval = 2 * time.Hour
	update(t, m, cfg)
	if hosts := c.Hosts(); len(hosts) != 1 || hosts[0] != h {
		t.Fatalf("hosts after an ORIGINAL_DST update: %v, want the one host kept", hosts)
	}
	update(t, m, Config{Name: "orig", Discovery: Static, Endpoints: []Endpoint{{Address: "127.0.0.1:1"}}})
	got, err := c.Pick(&lb.Request{OriginalDst: netip.MustParseAddrPort(a)})
	if err != nil || got.Address != "127.0.0.1:1" {
		t.Fatalf("STATIC after ORIGINAL_DST picked %v, %v; want the endpoint", got, err)
	}
	update(t, m, Config{Name: "orig", Discovery: OriginalDst})
	if hosts := c.Hosts(); len(hosts) != 0 {
		t.Errorf("ORIGINAL_DST after STATIC starts with %d hosts, want none", len(hosts))
	}
}

func TestOriginalDstValidate(t *testing.T) {
	od := outlier.DefaultConfig()
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "o", Discovery: OriginalDst, Endpoints: []Endpoint{{Address: "127.0.0.1:1"}}}, "takes no endpoints"},
		{Config{Name: "o", Discovery: OriginalDst, HealthChecks: []healthcheck.Config{{}}}, "health checks are not supported"},
		{Config{Name: "o", Discovery: OriginalDst, Outlier: &od}, "outlier detection is not supported"},
		{Config{Name: "o", Discovery: OriginalDst, CleanupInterval: -time.Second}, "negative duration"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.cfg, err, tc.want)
		}
	}
	if s := OriginalDst.String(); s != "ORIGINAL_DST" {
		t.Errorf("String() = %q", s)
	}
}
