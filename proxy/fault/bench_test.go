package fault

import (
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

type missCase struct {
	name string
	cfg  *Config
	hdr  map[string]string
	// rand, when set, replaces the filter's source.
	rand func() uint64
}

// alwaysMiss draws like the filter does but returns a value that misses
// every fraction below 999999/1000000, so a "miss" case cannot hit (a hit
// would sleep or write and spoil the measurement).
func alwaysMiss() uint64 {
	_ = rand.Uint64()
	return 999_999
}

func (mc *missCase) filter() *Filter {
	f := New(mc.cfg)
	if mc.rand != nil {
		f.rand = mc.rand
	}
	return f
}

// missCases are requests no fault hits, for each reason one can miss.
func missCases() []missCase {
	abort := &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Percent(100)}
	return []missCase{
		{name: "no faults configured", cfg: &Config{}},
		{name: "other cluster", cfg: &Config{UpstreamCluster: "payments", Abort: abort}},
		{name: "other downstream node", cfg: &Config{DownstreamNodes: []string{"a", "b"}, Abort: abort}, hdr: map[string]string{HeaderDownstreamServiceNode: "c"}},
		{name: "headers do not match", cfg: &Config{Abort: abort, Headers: []router.HeaderMatcher{
			{Name: "x-tenant", String: &router.StringMatcher{Kind: router.StringExact, Value: "acme"}},
			{Name: "x-chaos", String: &router.StringMatcher{Kind: router.StringPrefix, Value: "on"}},
		}}, hdr: map[string]string{"X-Tenant": "acme", "X-Chaos": "off"}},
		{name: "percentages miss", cfg: &Config{
			Delay: &Delay{Fixed: time.Second, Percent: Fraction{1, 1000000}},
			Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Fraction{1, 1000000}},
		}, rand: alwaysMiss},
		{name: "header faults not asked for", cfg: &Config{
			Delay: &Delay{FromHeader: true, Percent: Percent(100)},
			Abort: &Abort{Kind: AbortHeader, Percent: Percent(100)},
		}},
	}
}

func missRequest(hdr map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://svc/api", nil)
	r.Header.Set("User-Agent", "bench")
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return r
}

// A request no fault hits costs no allocation.
func TestMissDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	w := httptest.NewRecorder()
	for _, mc := range missCases() {
		t.Run(mc.name, func(t *testing.T) {
			f := mc.filter()
			r := missRequest(mc.hdr)
			var out Outcome
			n := testing.AllocsPerRun(1000, func() { out = f.Apply(w, r, "orders") })
			if out != (Outcome{}) {
				t.Fatalf("outcome %+v: the case is not a miss", out)
			}
			if n != 0 {
				t.Errorf("Apply allocated %.1f times per call, want 0", n)
			}
		})
	}
}

func BenchmarkApplyMiss(b *testing.B) {
	w := httptest.NewRecorder()
	for _, mc := range missCases() {
		b.Run(mc.name, func(b *testing.B) {
			f := mc.filter()
			r := missRequest(mc.hdr)
			b.ReportAllocs()
			for b.Loop() {
				f.Apply(w, r, "orders")
			}
		})
	}
}

func BenchmarkApplyMissParallel(b *testing.B) {
	f := New(&Config{
		Delay: &Delay{Fixed: time.Second, Percent: Fraction{1, 1000000}},
		Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Fraction{1, 1000000}},
	})
	f.rand = alwaysMiss
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := httptest.NewRecorder()
		r := missRequest(nil)
		for pb.Next() {
			f.Apply(w, r, "orders")
		}
	})
}

// discard is a ResponseWriter that keeps nothing, so the benchmark
// measures the filter's own reply cost.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

func BenchmarkApplyAbort(b *testing.B) {
	f := New(&Config{Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Percent(100)}})
	r := missRequest(nil)
	w := &discard{h: make(http.Header)}
	b.ReportAllocs()
	for b.Loop() {
		f.Apply(w, r, "orders")
	}
}
