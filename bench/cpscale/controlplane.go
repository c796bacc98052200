package cpscale

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/outrigger-mesh/outrigger/bench/procstat"
	"github.com/outrigger-mesh/outrigger/bench/targets"
)

const (
	// cpReadyTimeout bounds the wait for outrigger-cp's /readyz.
	cpReadyTimeout = 5 * time.Minute
	// cpStopGrace is how long outrigger-cp gets to stop before SIGKILL.
	cpStopGrace = 10 * time.Second
)

// BuildControlPlane builds ./controlplane/cmd/outrigger-cp of the
// repository at root into dir and returns the binary's path.
func BuildControlPlane(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "outrigger-cp")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./controlplane/cmd/outrigger-cp")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cpscale: go build outrigger-cp in %s: %w\n%s", root, err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// ControlPlane is outrigger-cp run as a child process, so that its memory
// can be read alone.
type ControlPlane struct {
	// XDSAddr serves ADS; HTTPAddr serves /metrics and /readyz.
	XDSAddr  string
	HTTPAddr string
	proc     *targets.Process
	http     *http.Client
	// started is taken just before the process starts: gctrace times
	// count from the runtime's start, a little later.
	started time.Time
}

// StartControlPlane runs bin against Consul at consulAddr, with its log
// (debug level, JSON: the bench reads "mesh translated" lines from it) in
// dir/name.log, and waits until /readyz answers 200.
func StartControlPlane(ctx context.Context, bin, consulAddr, dir, name string) (*ControlPlane, error) {
	var lastErr error
	for attempt := range startAttempts {
		ports, err := targets.FreePorts(2)
		if err != nil {
			return nil, err
		}
		cp := &ControlPlane{
			XDSAddr:  net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])),
			HTTPAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1])),
			http:     &http.Client{Timeout: 10 * time.Second},
		}
		argv := []string{bin, "-consul-addr", consulAddr, "-xds-addr", cp.XDSAddr, "-http-addr", cp.HTTPAddr,
			"-log-level", "debug", "-log-format", "json"}
		logPath := filepath.Join(dir, fmt.Sprintf("%s-%d.log", name, attempt))
		// gctrace logs each GC cycle's live heap: the bench reads it instead
		// of forcing a collection.
		cp.started = time.Now()
		cp.proc, err = targets.StartProcess("outrigger-cp", argv, []string{"GODEBUG=gctrace=1"}, logPath)
		if err != nil {
			return nil, fmt.Errorf("cpscale: %w", err)
		}
		if lastErr = cp.waitReady(ctx); lastErr == nil {
			return cp, nil
		}
		_ = cp.proc.Stop(cpStopGrace)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// waitReady polls /readyz.
func (cp *ControlPlane) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, cpReadyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		last = cp.get(ctx, "/readyz", io.Discard)
		if last == nil {
			return nil
		}
		select {
		case <-cp.proc.Done():
			return fmt.Errorf("cpscale: outrigger-cp exited before it was ready:\n%s", cp.proc.LogTail())
		case <-ctx.Done():
			return fmt.Errorf("cpscale: outrigger-cp at %s not ready: %w (last: %v)\n%s", cp.HTTPAddr, ctx.Err(), last, cp.proc.LogTail())
		case <-tick.C:
		}
	}
}

// get fetches path from the HTTP address into w; a status other than 200
// is an error.
func (cp *ControlPlane) get(ctx context.Context, path string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+cp.HTTPAddr+path, nil)
	if err != nil {
		return err
	}
	resp, err := cp.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	_, err = io.Copy(w, resp.Body)
	return err
}

// PID is the control plane's process id.
func (cp *ControlPlane) PID() int { return cp.proc.PID() }

// Exited is closed when the process has ended.
func (cp *ControlPlane) Exited() <-chan struct{} { return cp.proc.Done() }

// LogPath is the file holding the control plane's output.
func (cp *ControlPlane) LogPath() string { return cp.proc.LogPath }

// LogTail is the end of its output, for error messages.
func (cp *ControlPlane) LogTail() string { return cp.proc.LogTail() }

// Stop ends the control plane (SIGTERM, then SIGKILL after a grace period).
func (cp *ControlPlane) Stop() error {
	if cp == nil {
		return nil
	}
	return cp.proc.Stop(cpStopGrace)
}

// Sample is one reading of the control plane's memory and state.
type Sample struct {
	// RSS is VmRSS from /proc/PID/status.
	RSS int64
	// CPU is the process's user+system time so far.
	CPU time.Duration
	// Metrics are the /metrics gauges and counters the bench reads, by
	// name (labels summed); absent names are missing.
	Metrics map[string]float64
	// GCs are the garbage collections the runtime has logged, oldest
	// first.
	GCs []GCCycle
}

// Metric names read from /metrics.
const (
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricStackInuse = "go_memstats_stack_inuse_bytes"
	metricGoroutines = "go_goroutines"
	metricStreams    = "outrigger_cp_xds_streams"
	metricGroups     = "outrigger_cp_snapshot_groups"
	metricProxies    = "outrigger_cp_proxies"
	metricMeshIndex  = "outrigger_cp_mesh_index"
	metricNACKs      = "outrigger_cp_xds_nacks_total"
	metricTranslErrs = "outrigger_cp_translate_errors_total"
)

var sampledMetrics = []string{metricHeapInuse, metricStackInuse, metricGoroutines, metricStreams, metricGroups, metricProxies,
	metricMeshIndex, metricNACKs, metricTranslErrs}

// Sample reads RSS and CPU from /proc and the metrics from /metrics.
func (cp *ControlPlane) Sample(ctx context.Context) (Sample, error) {
	pid := cp.PID()
	mem, err := procstat.Default.ReadMemory(pid)
	if err != nil {
		return Sample{}, err
	}
	st, err := procstat.Default.ReadStat(pid)
	if err != nil {
		return Sample{}, err
	}
	var buf bytes.Buffer
	if err := cp.get(ctx, "/metrics", &buf); err != nil {
		return Sample{}, fmt.Errorf("cpscale: outrigger-cp metrics: %w", err)
	}
	m, err := parseMetrics(&buf, sampledMetrics)
	if err != nil {
		return Sample{}, err
	}
	s := Sample{RSS: mem.RSS, CPU: st.CPU, Metrics: m}
	if gcs, err := cp.gcCycles(); err == nil {
		s.GCs = gcs
	}
	return s, nil
}

// GCCycle is one line of the Go runtime's gctrace.
type GCCycle struct {
	// N numbers the cycle; At is when it started.
	N  int
	At time.Time
	// Live is the heap marked live by the cycle (MB resolution: gctrace
	// prints whole megabytes).
	Live int64
}

// gcCycles reads the gctrace lines of the control plane's output.
func (cp *ControlPlane) gcCycles() ([]GCCycle, error) {
	f, err := os.Open(cp.LogPath())
	if err != nil {
		return nil, fmt.Errorf("cpscale: %w", err)
	}
	defer f.Close()
	return parseGCTrace(f, cp.started)
}

// gcLine matches "gc 12 @3.456s 2%: ... 10->12->6 MB, ..." (Go 1.19+).
var gcLine = regexp.MustCompile(`^gc (\d+) @([0-9.]+)s .* (\d+)->(\d+)->(\d+) MB`)

// parseGCTrace reads gctrace lines of a process started at start.
func parseGCTrace(r io.Reader, start time.Time) ([]GCCycle, error) {
	var out []GCCycle
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		m := gcLine.FindSubmatch(sc.Bytes())
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(string(m[1]))
		secs, _ := strconv.ParseFloat(string(m[2]), 64)
		live, _ := strconv.ParseInt(string(m[5]), 10, 64)
		out = append(out, GCCycle{N: n, At: start.Add(time.Duration(secs * float64(time.Second))), Live: live << 20})
	}
	return out, sc.Err()
}

// parseMetrics reads the Prometheus text format and returns the value of
// each wanted family, summed over its series.
func parseMetrics(r io.Reader, want []string) (map[string]float64, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("cpscale: parse /metrics: %w", err)
	}
	out := map[string]float64{}
	for _, name := range want {
		f, ok := fams[name]
		if !ok {
			continue
		}
		sum := 0.0
		for _, m := range f.GetMetric() {
			sum += value(f.GetType(), m)
		}
		out[name] = sum
	}
	return out, nil
}

func value(t dto.MetricType, m *dto.Metric) float64 {
	switch t {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// Translation is one "mesh translated" line of the control plane's log.
type Translation struct {
	At        time.Time
	MeshIndex uint64
	Proxies   int
	Groups    int
	Updated   int // connected nodes handed a new snapshot
	Took      time.Duration
}

// Translations reads the "mesh translated" lines of the control plane's
// JSON log.
func (cp *ControlPlane) Translations() ([]Translation, error) {
	f, err := os.Open(cp.LogPath())
	if err != nil {
		return nil, fmt.Errorf("cpscale: %w", err)
	}
	defer f.Close()
	return parseTranslations(f)
}

func parseTranslations(r io.Reader) ([]Translation, error) {
	var out []Translation
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.Contains(line, []byte(`"mesh translated"`)) {
			continue
		}
		var e struct {
			Timestamp string          `json:"@timestamp"`
			Message   string          `json:"@message"`
			Index     uint64          `json:"mesh_index"`
			Proxies   int             `json:"proxies"`
			Groups    int             `json:"groups"`
			Updated   int             `json:"nodes_updated"`
			Took      json.RawMessage `json:"took"`
		}
		if err := json.Unmarshal(line, &e); err != nil || e.Message != "mesh translated" {
			continue
		}
		at, err := time.Parse(hclog.TimeFormatJSON, e.Timestamp)
		if err != nil {
			return nil, fmt.Errorf("cpscale: log timestamp %q: %w", e.Timestamp, err)
		}
		took, err := parseTook(e.Took)
		if err != nil {
			return nil, err
		}
		out = append(out, Translation{At: at, MeshIndex: e.Index, Proxies: e.Proxies, Groups: e.Groups, Updated: e.Updated, Took: took})
	}
	return out, sc.Err()
}

// parseTook reads a duration that hclog wrote as a string ("1.2ms") or as
// integer nanoseconds.
func parseTook(raw json.RawMessage) (time.Duration, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("cpscale: log took %q: %w", s, err)
		}
		return d, nil
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("cpscale: log took %s: not a duration", raw)
	}
	return time.Duration(n), nil
}
