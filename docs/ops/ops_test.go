package ops

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"

	"github.com/outrigger-mesh/outrigger/controlplane/server"
	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
)

// exported is every metric name the proxy and the control plane expose,
// read from their registries (histograms with their _bucket, _sum and
// _count series), plus Prometheus' own up.
func exported(t *testing.T) (all map[string]bool, cp []string) {
	t.Helper()
	all = map[string]bool{"up": true}
	add := func(g prometheus.Gatherer, prefix string) {
		fams, err := g.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			name := f.GetName()
			all[name] = true
			switch f.GetType() {
			case dto.MetricType_HISTOGRAM:
				all[name+"_bucket"], all[name+"_sum"], all[name+"_count"] = true, true, true
			case dto.MetricType_SUMMARY:
				all[name+"_sum"], all[name+"_count"] = true, true
			}
			if prefix != "" && strings.HasPrefix(name, prefix) {
				cp = append(cp, name)
			}
		}
	}

	// The proxy: one listener and one cluster with outlier detection and
	// active health checks, so every per-listener and per-cluster series
	// exists.
	m := telemetry.NewMetrics()
	m.Listener("public_listener")
	m.SetSources(
		func() []telemetry.DownstreamCounts {
			return []telemetry.DownstreamCounts{{Listener: "public_listener", Filters: map[string]uint64{"rbac.denied": 0}}}
		},
		func() []telemetry.UpstreamCounts {
			return []telemetry.UpstreamCounts{{Cluster: "web", Outlier: true, HealthChecked: true,
				RqTimeBuckets: make([]uint64, len(telemetry.LatencyBuckets)+1)}}
		})
	m.SetXDSSource(func() []telemetry.XDSType { return []telemetry.XDSType{{Type: "cluster", Version: "1"}} })
	add(m.Registry(), "")

	// The control plane, registered as outrigger-cp's serve registers it.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	server.New(server.Options{Registry: reg})
	add(reg, "outrigger_cp_")
	if len(cp) < 10 {
		t.Fatalf("only %d outrigger_cp_ metrics found: %v", len(cp), cp)
	}
	return all, cp
}

// grafanaVar replaces Grafana's template variables by something PromQL
// accepts: intervals by a duration, anything else (used in label matchers)
// by a plain word.
var grafanaVar = regexp.MustCompile(`\$(\{\w+\}|\w+)`)

func substitute(expr string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(v string) string {
		switch strings.Trim(v, "${}") {
		case "__rate_interval", "__interval", "__range":
			return "5m"
		}
		return "x"
	})
}

// metricNames parses expr and returns the metric names it selects.
func metricNames(t *testing.T, where, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%s: %q does not parse: %v", where, expr, err)
		return nil
	}
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, lm := range vs.LabelMatchers {
			if lm.Name == model.MetricNameLabel {
				name = lm.Value
			}
		}
		if name == "" {
			t.Errorf("%s: %q selects no metric by name", where, vs)
		}
		out = append(out, name)
		return nil
	})
	return out
}

// panel is the part of a Grafana panel the test reads; rows nest panels.
type panel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	GridPos *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// labelValues is Grafana's label_values(selector, label) in a variable query.
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

func TestGrafanaDashboard(t *testing.T) {
	known, cp := exported(t)
	raw, err := os.ReadFile("grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.Title == "" || d.UID == "" || d.SchemaVersion < 30 {
		t.Errorf("dashboard title %q, uid %q, schemaVersion %d", d.Title, d.UID, d.SchemaVersion)
	}
	used := map[string]bool{}
	ids := map[int]bool{}
	graphs := 0
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("panel %q: id %d missing or repeated", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.Title == "" || p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 {
				t.Errorf("panel %d %q has no title or no grid position", p.ID, p.Title)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			graphs++
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no targets", p.Title)
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.RefID == "" {
					t.Errorf("panel %q: a target without expr or refId", p.Title)
				}
				for _, name := range metricNames(t, "panel "+p.Title, substitute(tg.Expr)) {
					used[name] = true
					if !known[name] {
						t.Errorf("panel %q uses %s, which neither the proxy nor the control plane exports", p.Title, name)
					}
				}
			}
		}
	}
	walk(d.Panels)
	if graphs < 15 {
		t.Errorf("%d panels with queries, want the full set (at least 15)", graphs)
	}
	for _, v := range d.Templating.List {
		q, _ := v.Query.(map[string]any)
		s, _ := q["query"].(string)
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(s)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, s)
			continue
		}
		for _, name := range metricNames(t, "variable "+v.Name, substitute(m[1])) {
			if !known[name] {
				t.Errorf("variable %s uses %s, which is not exported", v.Name, name)
			}
		}
	}

	// What an operator needs to see is there.
	for _, name := range []string{
		"outrigger_downstream_rq_total", "outrigger_downstream_rq_duration_seconds_bucket",
		"outrigger_upstream_rq_total", "outrigger_upstream_rq_5xx_total", "outrigger_upstream_rq_error_total",
		"outrigger_health_check_healthy", "outrigger_upstream_rq_pending_overflow_total", "outrigger_upstream_cx_overflow_total",
		"outrigger_outlier_ejections_active", "outrigger_upstream_rq_retry_total", "outrigger_upstream_rq_retry_overflow_total",
		"outrigger_config_update_total", "up",
	} {
		if !used[name] {
			t.Errorf("the dashboard does not show %s", name)
		}
	}
	for _, name := range cp {
		if name == "outrigger_cp_mesh_index" || name == "outrigger_cp_xds_requests_total" {
			continue // raw indexes and request counts: in /metrics, not worth a panel
		}
		if name == "outrigger_cp_xds_push_latency_seconds" {
			name += "_bucket"
		}
		if !used[name] {
			t.Errorf("the dashboard does not show the control plane's %s", name)
		}
	}
}

// rules is the part of a Prometheus rule file the test reads.
type rules struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Record      string            `json:"record"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// templateFuncs stand in for Prometheus' template functions, so that
// annotations can be parsed.
var templateFuncs = template.FuncMap{
	"humanize": fmtAny, "humanize1024": fmtAny, "humanizeDuration": fmtAny, "humanizePercentage": fmtAny,
	"humanizeTimestamp": fmtAny,
}

func fmtAny(any) string { return "" }

func TestAlertRules(t *testing.T) {
	known, _ := exported(t)
	raw, err := os.ReadFile("alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var rf rules
	if err := yaml.UnmarshalStrict(raw, &rf); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("group %q: no name or no rules", g.Name)
		}
		for _, r := range g.Rules {
			if r.Alert == "" {
				t.Errorf("group %s: a rule without alert (record %q)", g.Name, r.Record)
				continue
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts[r.Alert] = true
			for _, name := range metricNames(t, "alert "+r.Alert, r.Expr) {
				if !known[name] {
					t.Errorf("alert %s uses %s, which neither the proxy nor the control plane exports", r.Alert, name)
				}
			}
			if d, err := model.ParseDuration(r.For); err != nil || d == 0 {
				t.Errorf("alert %s: for %q: want a duration above 0 (%v)", r.Alert, r.For, err)
			}
			if s := r.Labels["severity"]; !slices.Contains([]string{"critical", "warning", "info"}, s) {
				t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, s)
			}
			for _, key := range []string{"summary", "description"} {
				text := r.Annotations[key]
				if text == "" {
					t.Errorf("alert %s has no %s", r.Alert, key)
					continue
				}
				// Prometheus defines $labels and $value before expanding.
				tmpl := "{{$labels := .Labels}}{{$value := .Value}}" + text
				if _, err := template.New(r.Alert).Funcs(templateFuncs).Parse(tmpl); err != nil {
					t.Errorf("alert %s: %s does not parse as a template: %v", r.Alert, key, err)
				}
			}
		}
	}
	for _, want := range []string{"OutriggerHighErrorRate", "OutriggerHighLatency", "OutriggerProxiesNACKing",
		"OutriggerConsulDown", "OutriggerControlPlaneDown", "OutriggerControlPlaneAbsent"} {
		if !alerts[want] {
			t.Errorf("no alert %s", want)
		}
	}
}

// TestControlPlaneMetricsDocumented keeps docs/metrics.md and the control
// plane's registry in step: every outrigger_cp_ metric exported is in the
// page, and every one the page names is exported.
func TestControlPlaneMetricsDocumented(t *testing.T) {
	_, cp := exported(t)
	raw, err := os.ReadFile("../metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]bool{}
	for _, m := range regexp.MustCompile("`(outrigger_cp_[a-z_]+)`").FindAllStringSubmatch(string(raw), -1) {
		doc[m[1]] = true
	}
	for _, name := range cp {
		if !doc[name] {
			t.Errorf("%s is exported but not documented in docs/metrics.md", name)
		}
		delete(doc, name)
	}
	for name := range doc {
		t.Errorf("docs/metrics.md documents %s, which the control plane does not export", name)
	}
}

// TestSubstituteAndNames checks the helpers on their own.
func TestSubstituteAndNames(t *testing.T) {
	if got := substitute(`rate(x{job=~"$job", l="${listener}"}[$__rate_interval])`); got != `rate(x{job=~"x", l="x"}[5m])` {
		t.Errorf("substitute: %s", got)
	}
	if names := metricNames(t, "probe", `sum(rate({__name__="a_total"}[5m])) / b`); !slices.Equal(names, []string{"a_total", "b"}) {
		t.Errorf("names: %v", names)
	}
	if _, err := parser.NewParser(parser.Options{}).ParseExpr(`rate(x[5m]`); err == nil {
		t.Error("the parser accepts an unclosed call: the checks above would prove nothing")
	}
}
