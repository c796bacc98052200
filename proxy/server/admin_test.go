package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func adminGet(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAdminAPI(t *testing.T) {
	up := backend(t, echo("a"))
	p := startProxy(t, bs{Admin: true, VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up)}.String())
	base := "http://" + p.admin
	if p.admin == "" {
		t.Fatal("no admin address")
	}
	// Some traffic so stats and clusters have numbers.
	for i := 0; i < 5; i++ {
		resp, err := h1Client().Get("http://" + p.addr["ingress"] + "/")
		must(t, err)
		resp.Body.Close()
	}
	if code, body := adminGet(t, "GET", base+"/ready"); code != 200 || !strings.Contains(body, "LIVE") {
		t.Errorf("/ready: %d %q", code, body)
	}
	code, body := adminGet(t, "GET", base+"/stats/prometheus")
	for _, want := range []string{
		`outrigger_downstream_rq_total{code_class="2xx",listener="ingress"} 5`,
		`outrigger_downstream_cx_total{listener="ingress"} `,
		`outrigger_upstream_rq_total{cluster="app"} 5`,
		`outrigger_upstream_rq_duration_seconds_count{cluster="app"} 5`,
		`outrigger_upstream_rq_duration_seconds_bucket{cluster="app",le="+Inf"} 5`,
		`outrigger_upstream_cx_total{cluster="app"} `,
		`outrigger_upstream_rq_error_total{cluster="app",kind="reset"} 0`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/stats/prometheus: %d, no %q in\n%s", code, want, grepLines(body, "outrigger_"))
		}
	}
	code, body = adminGet(t, "GET", base+"/config_dump")
	var dump map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &dump) != nil || !strings.Contains(body, `"ingress"`) {
		t.Errorf("/config_dump: %d %.300s", code, body)
	}
	code, body = adminGet(t, "GET", base+"/clusters")
	if code != 200 || !strings.Contains(body, "app::"+up+"::") {
		t.Errorf("/clusters: %d %q", code, body)
	}
	if code, _ := adminGet(t, "GET", base+"/quitquitquit"); code != 405 {
		t.Errorf("GET /quitquitquit: %d, want 405", code)
	}
	if code, _ := adminGet(t, "POST", base+"/logging?level=debug"); code != 200 {
		t.Errorf("POST /logging: %d", code)
	}
	if code, _ := adminGet(t, "POST", base+"/drain_listeners"); code != 200 {
		t.Errorf("POST /drain_listeners: %d", code)
	}
	waitFor(t, 5*time.Second, "/ready 503 while draining", func() bool {
		code, _ := adminGet(t, "GET", base+"/ready")
		return code == 503
	})
	if code, _ := adminGet(t, "POST", base+"/quitquitquit"); code != 200 {
		t.Errorf("POST /quitquitquit: %d", code)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("Run after quit: %v", err)
		}
		p.cancel()
		p.cancel = nil
	case <-time.After(10 * time.Second):
		t.Errorf("server still running after /quitquitquit")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
