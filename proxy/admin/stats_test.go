package admin

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// /stats lists every sample as text, filters by name and hides zeros on
// request; a bad filter is a 400.
func TestStatsText(t *testing.T) {
	b := newFakeBackend()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "outrigger_test_seconds", Help: "h"}, []string{"listener"})
	b.registry.MustRegister(h)
	h.WithLabelValues("ingress").Observe(0.5)
	z := prometheus.NewGauge(prometheus.GaugeOpts{Name: "outrigger_zero", Help: "z"})
	b.registry.MustRegister(z)
	base := startServer(t, b)

	code, hdr, body := do(t, "GET", base+"/stats")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("/stats: %d %v", code, hdr)
	}
	want := "outrigger_test_seconds_count{listener=\"ingress\"}: 1\noutrigger_test_seconds_sum{listener=\"ingress\"}: 0.5\noutrigger_test_total: 7\noutrigger_zero: 0\n"
	if body != want {
		t.Errorf("/stats:\n%s\nwant:\n%s", body, want)
	}
	if _, _, body := do(t, "GET", base+"/stats?filter=_total$&usedonly"); body != "outrigger_test_total: 7\n" {
		t.Errorf("filtered: %q", body)
	}
	if _, _, body := do(t, "GET", base+"/stats?usedonly"); strings.Contains(body, "outrigger_zero") {
		t.Errorf("usedonly kept a zero: %q", body)
	}
	if code, _, _ := do(t, "GET", base+"/stats?filter=("); code != 400 {
		t.Errorf("bad filter: %d, want 400", code)
	}
}
