package tailbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/targets"
)

// clusterName is the one cluster of every bootstrap; the metrics are read
// under this label.
const clusterName = "tail"

const (
	proxyReadyTimeout = 20 * time.Second
	proxyStopGrace    = 5 * time.Second
)

// bootstrap is the Envoy v3 bootstrap of every proxy row: one HTTP/1.1
// listener, one route to a STATIC ROUND_ROBIN cluster over the three
// backends; only the route's retry and hedge policies differ between rows.
// No outlier detection and no health checks, so the slow backend keeps its
// third of the first tries and only the policies under test act on it.
var bootstrapTemplate = template.Must(template.New("bootstrap").Parse(`# written by outrigger-tailbench
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: {{.AdminPort}} }
static_resources:
  listeners:
  - name: tail
    address:
      socket_address: { address: 127.0.0.1, port_value: {{.ListenPort}} }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: tail
          codec_type: HTTP1
          route_config:
            name: tail
            virtual_hosts:
            - name: tail
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route:
                  cluster: ` + clusterName + `
{{.RoutePolicy}}          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: ` + clusterName + `
    type: STATIC
    lb_policy: ROUND_ROBIN
    connect_timeout: 1s
    load_assignment:
      cluster_name: ` + clusterName + `
      endpoints:
      - lb_endpoints:
{{- range .Backends}}
        - endpoint: { address: { socket_address: { address: {{.Host}}, port_value: {{.Port}} } } }
{{- end}}
`))

type hostPort struct{ Host, Port string }

// renderBootstrap writes the bootstrap for one setup; routePolicy is the
// YAML under the route action (policyYAML), unindented.
func renderBootstrap(adminPort, listenPort int, backends []string, routePolicy string) (string, error) {
	var hps []hostPort
	for _, a := range backends {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			return "", fmt.Errorf("tailbench: backend address %q: %w", a, err)
		}
		hps = append(hps, hostPort{h, p})
	}
	var b strings.Builder
	err := bootstrapTemplate.Execute(&b, struct {
		AdminPort, ListenPort int
		RoutePolicy           string
		Backends              []hostPort
	}{adminPort, listenPort, indent(routePolicy, 18), hps})
	if err != nil {
		return "", fmt.Errorf("tailbench: render bootstrap: %w", err)
	}
	return b.String(), nil
}

// indent prefixes every non-empty line of s with n spaces.
func indent(s string, n int) string {
	if s == "" {
		return ""
	}
	pad := strings.Repeat(" ", n)
	var b strings.Builder
	for line := range strings.Lines(s) {
		if strings.TrimSpace(line) != "" {
			b.WriteString(pad)
		}
		b.WriteString(line)
	}
	return b.String()
}

// yamlDuration renders d as a protobuf JSON Duration ("0.025s").
func yamlDuration(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// policyYAML is the route action's policy for a setup, as it appears under
// `route:` in the bootstrap (and in the report).
func policyYAML(s Setup, c Config) string {
	if s != SetupRetry && s != SetupHedge {
		return ""
	}
	var b strings.Builder
	b.WriteString("retry_policy:\n")
	b.WriteString("  retry_on: \"5xx,reset\"\n")
	fmt.Fprintf(&b, "  num_retries: %d\n", c.NumRetries)
	fmt.Fprintf(&b, "  per_try_timeout: %s\n", yamlDuration(c.PerTryTimeout))
	if c.BackoffBase > 0 {
		fmt.Fprintf(&b, "  retry_back_off: { base_interval: %s }\n", yamlDuration(c.BackoffBase))
	}
	b.WriteString("  retry_host_predicate:\n")
	b.WriteString("  - name: envoy.retry_host_predicates.previous_hosts\n")
	b.WriteString("    typed_config:\n")
	b.WriteString("      \"@type\": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate\n")
	b.WriteString("  host_selection_retry_max_attempts: 3\n")
	if s == SetupHedge {
		b.WriteString("hedge_policy: { hedge_on_per_try_timeout: true }\n")
	}
	return b.String()
}

// proxy is one outrigger child process.
type proxy struct {
	proc   *targets.Process
	listen string
	admin  string
	http   *http.Client
}

// startProxy writes the bootstrap into dir and runs bin on it with
// GOMAXPROCS=1 (as the main bench runs it), waiting for the admin's /ready.
func startProxy(ctx context.Context, bin, dir, name string, backends []string, routePolicy string) (*proxy, error) {
	ports, err := targets.FreePorts(2)
	if err != nil {
		return nil, err
	}
	conf, err := renderBootstrap(ports[0], ports[1], backends, routePolicy)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, name+".yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, fmt.Errorf("tailbench: write bootstrap: %w", err)
	}
	argv := []string{bin, "-c", path, "--log-level", "warn", "--drain-time-s", "1"}
	p, err := targets.StartProcess(name, argv, []string{"GOMAXPROCS=1"}, filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	px := &proxy{
		proc:   p,
		admin:  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		listen: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		http:   &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}},
	}
	if err := px.waitReady(ctx); err != nil {
		_ = px.stop()
		return nil, err
	}
	return px, nil
}

// waitReady polls until both ports accept and /ready answers 200, the
// process exits or the timeout passes.
func (px *proxy) waitReady(ctx context.Context) error {
	if err := targets.WaitReady(ctx, px.proc, []string{px.admin, px.listen}, proxyReadyTimeout); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, proxyReadyTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		status, err := px.get(ctx, "/ready")
		if err == nil && status == http.StatusOK {
			return nil
		}
		select {
		case <-px.proc.Done():
			return fmt.Errorf("%w: %s before it was ready\n%s", targets.ErrExited, px.proc.Name, px.proc.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("tailbench: %s: /ready not 200 after %v (last: status %d, %v): %w\n%s",
				px.proc.Name, proxyReadyTimeout, status, err, ctx.Err(), px.proc.LogTail())
		case <-tick.C:
		}
	}
}

func (px *proxy) get(ctx context.Context, path string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+px.admin+path, nil)
	if err != nil {
		return 0, err
	}
	resp, err := px.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// alive reports an error naming the proxy if it has exited.
func (px *proxy) alive() error {
	select {
	case <-px.proc.Done():
		return fmt.Errorf("%w: %s during the run\n%s", targets.ErrExited, px.proc.Name, px.proc.LogTail())
	default:
		return nil
	}
}

// stop ends the process (SIGTERM, then SIGKILL after the grace).
func (px *proxy) stop() error {
	px.http.CloseIdleConnections()
	return px.proc.Stop(proxyStopGrace)
}

// UpstreamStats are the proxy's counters for the bench cluster.
type UpstreamStats struct {
	// Attempts is upstream_rq_total: every try sent, first or not.
	Attempts float64
	// Retries is upstream_rq_retry_total (hedges included); RetryOverflow
	// the retries the budget or max_retries refused.
	Retries       float64
	RetryOverflow float64
	// Timeouts and Canceled are upstream_rq_error_total of those kinds:
	// tries cut by the per-try timeout, and hedged tries that lost.
	Timeouts float64
	Canceled float64
}

// Sub is the growth from before to s.
func (s UpstreamStats) Sub(before UpstreamStats) UpstreamStats {
	return UpstreamStats{
		Attempts:      s.Attempts - before.Attempts,
		Retries:       s.Retries - before.Retries,
		RetryOverflow: s.RetryOverflow - before.RetryOverflow,
		Timeouts:      s.Timeouts - before.Timeouts,
		Canceled:      s.Canceled - before.Canceled,
	}
}

// upstreamStats scrapes /stats/prometheus.
func (px *proxy) upstreamStats(ctx context.Context) (UpstreamStats, error) {
	return scrapeUpstreamStats(ctx, px.http, "http://"+px.admin+"/stats/prometheus")
}

func scrapeUpstreamStats(ctx context.Context, c *http.Client, url string) (UpstreamStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return UpstreamStats{}, fmt.Errorf("tailbench: scrape %s: %w", url, err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return UpstreamStats{}, fmt.Errorf("tailbench: scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return UpstreamStats{}, fmt.Errorf("tailbench: scrape %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return UpstreamStats{}, fmt.Errorf("tailbench: scrape %s: status %s", url, resp.Status)
	}
	return parseUpstreamStats(string(text), clusterName)
}

// parseUpstreamStats reads the counters of one cluster from Prometheus text.
// A counter that is missing is an error: a renamed metric must not read as
// zero retries.
func parseUpstreamStats(text, cluster string) (UpstreamStats, error) {
	type key struct{ name, kind string }
	want := map[key]*float64{}
	var s UpstreamStats
	want[key{"outrigger_upstream_rq_total", ""}] = &s.Attempts
	want[key{"outrigger_upstream_rq_retry_total", ""}] = &s.Retries
	want[key{"outrigger_upstream_rq_retry_overflow_total", ""}] = &s.RetryOverflow
	want[key{"outrigger_upstream_rq_error_total", "timeout"}] = &s.Timeouts
	want[key{"outrigger_upstream_rq_error_total", "canceled"}] = &s.Canceled
	found := map[key]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, labels, value, err := parseSample(line)
		if err != nil {
			return UpstreamStats{}, err
		}
		if labels["cluster"] != cluster {
			continue
		}
		k := key{name, labels["kind"]}
		if dst, ok := want[k]; ok {
			*dst = value
			found[k] = true
		}
	}
	if err := sc.Err(); err != nil {
		return UpstreamStats{}, fmt.Errorf("tailbench: read metrics: %w", err)
	}
	var missing []string
	for k := range want {
		if !found[k] {
			n := fmt.Sprintf("%s{cluster=%q", k.name, cluster)
			if k.kind != "" {
				n += fmt.Sprintf(",kind=%q", k.kind)
			}
			missing = append(missing, n+"}")
		}
	}
	if len(missing) > 0 {
		return UpstreamStats{}, fmt.Errorf("tailbench: metrics lack %s", strings.Join(slices.Sorted(slices.Values(missing)), ", "))
	}
	return s, nil
}

var errBadSample = errors.New("tailbench: malformed metric line")

// parseSample splits `name{k="v",...} value [timestamp]`. Label values in
// the proxy's metrics hold no escaped quotes or commas; a line that does
// not parse is an error, not skipped.
func parseSample(line string) (name string, labels map[string]string, value float64, err error) {
	rest := line
	if i := strings.IndexByte(line, '{'); i >= 0 {
		j := strings.LastIndexByte(line, '}')
		if j < i {
			return "", nil, 0, fmt.Errorf("%w: %q", errBadSample, line)
		}
		name, rest = line[:i], strings.TrimSpace(line[j+1:])
		labels = map[string]string{}
		if body := line[i+1 : j]; body != "" {
			for pair := range strings.SplitSeq(body, ",") {
				k, v, ok := strings.Cut(pair, "=")
				if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
					return "", nil, 0, fmt.Errorf("%w: label %q in %q", errBadSample, pair, line)
				}
				labels[strings.TrimSpace(k)] = v[1 : len(v)-1]
			}
		}
	} else {
		var ok bool
		name, rest, ok = strings.Cut(line, " ")
		if !ok {
			return "", nil, 0, fmt.Errorf("%w: %q", errBadSample, line)
		}
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return "", nil, 0, fmt.Errorf("%w: no value in %q", errBadSample, line)
	}
	value, err = strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return "", nil, 0, fmt.Errorf("%w: value in %q: %v", errBadSample, line, err)
	}
	return name, labels, value, nil
}

// binaryVersion asks bin for --version (best effort, for the report).
func binaryVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
}

// BuildOutrigger builds ./proxy/cmd/outrigger of the repository at root into
// dir and returns the binary's path.
func BuildOutrigger(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "outrigger")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./proxy/cmd/outrigger")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("tailbench: go build outrigger in %s: %w\n%s", root, err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}
