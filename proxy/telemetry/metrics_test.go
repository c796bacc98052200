package telemetry

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// scrape serves the registry with promhttp on loopback and returns the
// text exposition.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(promhttp.HandlerFor(m.Gatherer(), promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape status %d: %s", resp.StatusCode, body)
	}
	return string(body)
}

func TestMetricsExposition(t *testing.T) {
	m := NewMetrics()
	l := m.Listener("ingress")
	l.RecordRequest(200, 3*time.Millisecond)
	l.RecordRequest(204, 40*time.Second) // beyond the last bucket
	l.RecordRequest(503, time.Millisecond)
	l.RecordRequest(0, time.Millisecond) // nothing sent: no class, duration observed

	m.SetSources(func() []DownstreamCounts {
		return []DownstreamCounts{{Listener: "ingress", CxTotal: 2, CxActive: 1, RqSmugglingRejected: 3, RqHeadersTooLarge: 4,
			CxFiltered: 5, Filters: map[string]uint64{"rbac.denied": 6, "fault.active_faults": 7}}}
	}, func() []UpstreamCounts {
		rqTime := make([]uint64, len(LatencyBuckets)+1)
		for i := range rqTime {
			rqTime[i] = 3 // all three within 100 µs
		}
		return []UpstreamCounts{{Cluster: "backend", RqTotal: 3, RqActive: 1, Rq5xx: 1, RqReset: 1, CxTotal: 2, CxActive: -1, CxConnectFail: 1,
			RqTimeBuckets: rqTime, RqTimeSum: 150 * time.Microsecond}}
	})
	m.SetServerState(StateLive)
	m.ConfigUpdate(true)
	m.ConfigUpdate(false)
	m.ConfigUpdate(true)

	text := scrape(t, m)
	if strings.Contains(text, "active_faults") {
		t.Error("a gauge among the filter counters was exported as a counter")
	}
	want := []string{
		`outrigger_downstream_rq_total{code_class="2xx",listener="ingress"} 2`,
		`outrigger_downstream_rq_total{code_class="5xx",listener="ingress"} 1`,
		`outrigger_downstream_rq_total{code_class="1xx",listener="ingress"} 0`,
		`outrigger_downstream_rq_duration_seconds_count{listener="ingress"} 4`,
		`outrigger_downstream_rq_duration_seconds_bucket{listener="ingress",le="0.0001"} 0`,
		`outrigger_downstream_rq_duration_seconds_bucket{listener="ingress",le="0.005"} 3`,
		`outrigger_downstream_rq_duration_seconds_bucket{listener="ingress",le="30"} 3`,
		`outrigger_downstream_rq_duration_seconds_bucket{listener="ingress",le="+Inf"} 4`,
		`outrigger_downstream_cx_total{listener="ingress"} 2`,
		`outrigger_downstream_cx_active{listener="ingress"} 1`,
		`outrigger_downstream_rq_rejected_total{listener="ingress",reason="framing"} 3`,
		`outrigger_downstream_rq_rejected_total{listener="ingress",reason="headers_too_large"} 4`,
		`outrigger_downstream_cx_rejected_total{listener="ingress"} 0`,
		`outrigger_downstream_cx_filtered_total{listener="ingress"} 5`,
		`outrigger_listener_filter_total{listener="ingress",stat="rbac.denied"} 6`,
		`outrigger_upstream_rq_total{cluster="backend"} 3`,
		`outrigger_upstream_rq_duration_seconds_bucket{cluster="backend",le="0.0001"} 3`,
		`outrigger_upstream_rq_duration_seconds_bucket{cluster="backend",le="+Inf"} 3`,
		`outrigger_upstream_rq_duration_seconds_sum{cluster="backend"} 0.00015`,
		`outrigger_upstream_rq_5xx_total{cluster="backend"} 1`,
		`outrigger_upstream_rq_error_total{cluster="backend",kind="reset"} 1`,
		`outrigger_upstream_rq_error_total{cluster="backend",kind="timeout"} 0`,
		`outrigger_upstream_rq_error_total{cluster="backend",kind="connect_failure"} 0`,
		`outrigger_upstream_rq_active{cluster="backend"} 1`,
		`outrigger_upstream_cx_total{cluster="backend"} 2`,
		`outrigger_upstream_cx_active{cluster="backend"} 0`, // a transient negative reads as 0
		`outrigger_upstream_cx_connect_fail_total{cluster="backend"} 1`,
		`outrigger_server_live 1`,
		`outrigger_server_state 0`,
		`outrigger_config_update_total{result="accepted"} 2`,
		`outrigger_config_update_total{result="rejected"} 1`,
		`go_goroutines `,
		`process_cpu_seconds_total `,
		`# TYPE outrigger_downstream_rq_duration_seconds histogram`,
	}
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("scrape lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("scrape:\n%s", text)
	}
}

func TestMetricsServerState(t *testing.T) {
	tests := []struct {
		state    ServerState
		wantLive string
		wantName string
	}{
		{StatePreInitializing, "outrigger_server_live 0", "PRE_INITIALIZING"},
		{StateLive, "outrigger_server_live 1", "LIVE"},
		{StateDraining, "outrigger_server_live 0", "DRAINING"},
	}
	m := NewMetrics()
	if text := scrape(t, m); !strings.Contains(text, "outrigger_server_state 2") {
		t.Errorf("a new server should be pre-initializing")
	}
	for _, tt := range tests {
		t.Run(tt.wantName, func(t *testing.T) {
			m.SetServerState(tt.state)
			text := scrape(t, m)
			if !strings.Contains(text, tt.wantLive) {
				t.Errorf("scrape lacks %q", tt.wantLive)
			}
			if tt.state.String() != tt.wantName {
				t.Errorf("String() = %q, want %q", tt.state.String(), tt.wantName)
			}
		})
	}
}

func TestMetricsHandlesSurviveAndRetain(t *testing.T) {
	m := NewMetrics()
	a := m.Listener("a")
	if m.Listener("a") != a {
		t.Fatal("Listener returned a new handle for a known name")
	}
	a.RecordRequest(200, time.Millisecond)
	m.Listener("b").RecordRequest(200, time.Millisecond)

	// A config update keeps a, drops b.
	m.RetainListeners([]string{"a", "new"})
	if m.Listener("a") != a {
		t.Error("a retained listener lost its handle")
	}
	text := scrape(t, m)
	for _, gone := range []string{`listener="b"`} {
		if strings.Contains(text, gone) {
			t.Errorf("series with %s still exported after Retain", gone)
		}
	}
	for _, kept := range []string{
		`outrigger_downstream_rq_total{code_class="2xx",listener="a"} 1`,
	} {
		if !strings.Contains(text, kept) {
			t.Errorf("scrape lacks retained %q", kept)
		}
	}
	// A name that comes back starts from zero.
	if m.Listener("b") == nil || strings.Contains(scrape(t, m), `outrigger_downstream_rq_total{code_class="2xx",listener="b"} 1`) {
		t.Error("a re-added listener kept its old count")
	}
}

func TestRecordingDoesNotAllocate(t *testing.T) {
	m := NewMetrics()
	l := m.Listener("l")
	n := testing.AllocsPerRun(1000, func() { l.RecordRequest(200, 2*time.Millisecond) })
	if n != 0 {
		t.Errorf("recording a request allocates %v times, want 0", n)
	}
}

func BenchmarkRecordRequest(b *testing.B) {
	m := NewMetrics()
	l := m.Listener("l")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.RecordRequest(200, 2*time.Millisecond)
		}
	})
}
