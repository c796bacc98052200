package cpscale

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/report"
)

// Targets from the issue.
const (
	// TargetLatencyProxies and TargetLatencyP99: with this many proxies, a
	// change reaches the last of them within this (p99).
	TargetLatencyProxies = 1000
	TargetLatencyP99     = time.Second
	// TargetMemoryProxies and TargetMemoryPerProxy: with this many
	// proxies, the control plane needs at most this many bytes per proxy.
	TargetMemoryProxies  = 10000
	TargetMemoryPerProxy = 20000
)

// Report is one invocation of the bench: its cases and where it ran.
type Report struct {
	Generated time.Time     `json:"generated"`
	Took      time.Duration `json:"took_ns"`
	// Commands are the invocations whose cases the report holds (more than
	// one with --append).
	Commands []string       `json:"commands"`
	Machine  report.Machine `json:"machine"`
	Cases    []*Result      `json:"cases"`
	// Notes are things the reader must know (cases skipped for time).
	Notes []string `json:"notes,omitempty"`
}

// Write stores the report as dir/name.md and dir/name.json and returns the
// Markdown file's path.
func (r *Report) Write(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cpscale: %w", err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("cpscale: encode report: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), append(js, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("cpscale: %w", err)
	}
	md := filepath.Join(dir, name+".md")
	f, err := os.Create(md)
	if err != nil {
		return "", fmt.Errorf("cpscale: %w", err)
	}
	if err := r.Markdown(f); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("cpscale: %w", err)
	}
	return md, nil
}

// ReadReport loads a report written by Write (its .json file).
func ReadReport(path string) (*Report, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cpscale: %w", err)
	}
	r := &Report{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("cpscale: report %s: %w", path, err)
	}
	return r, nil
}

// Label names a case in tables.
func (r *Result) Label() string {
	conns := fmt.Sprintf("%d conns", r.Conns)
	if r.Conns == r.Proxies {
		conns = "1 conn/proxy"
	}
	label := fmt.Sprintf("%s N=%d M=%d %s %s", r.Mode, r.Proxies, r.Services, r.Layout, conns)
	if r.InProcess {
		label += " in-process"
	}
	return label
}

// Markdown renders the report.
func (r *Report) Markdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# Outrigger control plane scale bench\n\n")
	fmt.Fprintf(&b, "Generated %s in %s by:\n\n```\n%s\n```\n\n", r.Generated.UTC().Format("2006-01-02 15:04 UTC"),
		r.Took.Round(time.Second), strings.Join(r.Commands, "\n"))

	b.WriteString("## Machine\n\n")
	m := r.Machine
	fmt.Fprintf(&b, "- CPU: %s, `nproc` = %d\n- Kernel: %s; Go: %s\n", orDash(m.CPUModel), m.NProc, orDash(m.Kernel), orDash(m.GoVer))
	b.WriteString("- Consul, outrigger-cp and the bench (every simulated proxy's stream) share these cores: " +
		"latency includes the bench decoding and ACKing every response.\n\n")

	label := caseLabels(r.Cases)
	b.WriteString("## Against the targets\n\n")
	b.WriteString("| target | case | this run | |\n|---|---|---|---|\n")
	rows := 0
	for _, c := range r.Cases {
		if c.Proxies == TargetLatencyProxies && len(c.Changes) > 0 {
			lat, got, want := c.AllChanges()
			ok := lat.P99 <= TargetLatencyP99 && got == want && got > 0
			fmt.Fprintf(&b, "| change → last ACK p99 ≤ %s at %s proxies | %s | p99 %s, max %s (%d/%d ACKs) | %s |\n",
				TargetLatencyP99, thousands(TargetLatencyProxies), label[c], fmtDur(lat.P99), fmtDur(lat.Max), got, want, verdict(ok))
			rows++
		}
		if c.Proxies == TargetMemoryProxies && c.Synced > 0 {
			target := fmt.Sprintf("≤ %s per proxy at %s proxies", fmtKB(TargetMemoryPerProxy), thousands(TargetMemoryProxies))
			if live, ok := c.PerProxyLive(); ok {
				fmt.Fprintf(&b, "| %s: live heap + goroutine stacks, after − before the streams | %s | %s | %s |\n",
					target, label[c], fmtKB(live), verdict(live <= TargetMemoryPerProxy))
			}
			per := c.PerProxyRSS()
			fmt.Fprintf(&b, "| %s: RSS after − before the streams (understated when the baseline still holds a translation's garbage) | %s | %s (heap in use %s) | %s |\n",
				target, label[c], fmtKB(per), fmtKB(c.PerProxyHeap()), verdict(per <= TargetMemoryPerProxy))
			if tot := c.PerProxyTotalRSS(); tot != 0 {
				fmt.Fprintf(&b, "| %s, its configuration included: RSS after the streams − an empty control plane | %s | %s | %s |\n",
					target, label[c], fmtKB(tot), verdict(tot <= TargetMemoryPerProxy))
			}
			rows++
		}
	}
	if rows == 0 {
		fmt.Fprintf(&b, "| (no case ran at %s or %s proxies) | | | |\n", thousands(TargetLatencyProxies), thousands(TargetMemoryProxies))
	}
	b.WriteString("\n")

	b.WriteString("## Memory of outrigger-cp\n\n")
	b.WriteString("Medians of readings one second apart; no GC is forced. *before* = mesh translated, no stream; " +
		"*after* = every stream synced; *empty* = a separate outrigger-cp on a mesh with no service. " +
		"Live heap is what a GC cycle of the control plane's own marked live (`GODEBUG=gctrace=1`, whole MB): " +
		"the first that started after the phase; *stale* marks one that ran during it (no GC since; see `--wait-gc`). " +
		"Goroutine stacks (`go_memstats_stack_inuse_bytes`, not heap) are read after that cycle when the reading waited for it. " +
		"Per proxy = growth / proxies synced; KB = 1,000 bytes.\n\n")
	b.WriteString("| case | synced | snapshot groups | RSS empty / before / after | per proxy: RSS | live heap + stacks | heap in use | RSS over empty (incl. its config) | live heap before → after (GC #) | stacks before → after | goroutines before → after |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.Cases {
		incl := "—"
		if c.Empty.Samples > 0 && c.Synced > 0 {
			incl = fmtKB(c.PerProxyTotalRSS())
		}
		fmt.Fprintf(&b, "| %s | %d/%d | %.0f | %s / %s / %s | %s | %s | %s | %s | %s (%s) → %s (%s) | %s → %s | %.0f → %.0f |\n",
			label[c], c.Synced, c.Proxies, c.Groups, fmtMiB(c.Empty.RSS), fmtMiB(c.Baseline.RSS), fmtMiB(c.After.RSS),
			fmtKBOr(c.PerProxyRSS(), c.Synced), liveCell(c), fmtKBOr(c.PerProxyHeap(), c.Synced), incl,
			fmtMiB(c.Baseline.LiveHeap), gcCell(c.Baseline), fmtMiB(c.After.LiveHeap), gcCell(c.After),
			fmtMiB(c.Baseline.StackInuse), fmtMiB(c.After.StackInuse), c.Baseline.Goroutines, c.After.Goroutines)
	}
	b.WriteString("\n")

	b.WriteString("## Change → ACK\n\n")
	b.WriteString("From the Consul write returning to each stream's ACK of the first response that carries the change " +
		"(recognised by the hub's endpoints or route), over every stream running.\n\n")
	b.WriteString("| case | all changes p50 | p99 | max | ACKs | register | outrigger-cp ready | initial sync (all streams) | sync CPU (cp / consul / bench) |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range r.Cases {
		lat, got, want := c.AllChanges()
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d/%d | %s | %s | %s | %s |\n", label[c], fmtDur(lat.P50), fmtDur(lat.P99), fmtDur(lat.Max),
			got, want, fmtDur(c.RegisterTime), fmtDur(c.ReadyTime), fmtDur(c.SyncTime), fmtCPU(c.SyncCPU))
	}
	b.WriteString("\n")

	for _, c := range r.Cases {
		fmt.Fprintf(&b, "### %s\n\n", label[c])
		fmt.Fprintf(&b, "%d services, %d sidecars (one per instance; each replica has %s), upstreams: %s; hub %s with %d instances; %s over %d gRPC connection(s); %d connect-proxies registered; took %s. ",
			c.Services, c.Proxies, layoutWords(c.Layout), upstreamWords(c.Upstreams), HubService, c.HubInstances,
			modeWords(c.Mode), c.Conns, c.Registered, c.Took.Round(time.Second))
		fmt.Fprintf(&b, "Machine load (1-minute average) at the start and end: %.1f, %.1f.\n\n", c.LoadAvg[0], c.LoadAvg[1])
		if t := c.InitialTranslation; t != nil {
			fmt.Fprintf(&b, "Initial translation of the mesh by outrigger-cp: %s for %d proxies into %d groups.\n\n", fmtDur(t.Took), t.Proxies, t.Groups)
		}
		if len(c.Changes) > 0 {
			b.WriteString("| # | change | ACKs | write | p50 | p99 | max | translations in the window (took) | CPU cp / consul / bench |\n")
			b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
			for i, ch := range c.Changes {
				fmt.Fprintf(&b, "| %d | %s: %s | %d/%d | %s | %s | %s | %s | %s | %s |\n", i+1, ch.Kind, escape(ch.Detail), ch.Got, ch.Streams,
					fmtDur(ch.Write), fmtDur(ch.Latency.P50), fmtDur(ch.Latency.P99), fmtDur(ch.Latency.Max), translationsCell(ch.Translations), fmtCPU(ch.CPU))
			}
			b.WriteString("\n")
		}
		if c.NACKs > 0 {
			fmt.Fprintf(&b, "NACKs counted by outrigger-cp: %.0f.\n\n", c.NACKs)
		}
		if len(c.StreamErrors) > 0 {
			b.WriteString("Streams that ended:\n\n")
			for _, k := range slices.Sorted(maps.Keys(c.StreamErrors)) {
				fmt.Fprintf(&b, "- %d × %s\n", c.StreamErrors[k], escape(k))
			}
			b.WriteString("\n")
		}
		if c.Error != "" {
			fmt.Fprintf(&b, "**The case stopped with an error:** %s\n\n", escape(firstLine(c.Error)))
		}
	}
	if len(r.Notes) > 0 {
		b.WriteString("## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
	b.WriteString("## How it measures\n\n")
	b.WriteString("- Consul v1.16.3 dev agent and `outrigger-cp` are separate processes on loopback; the mesh is registered " +
		"before outrigger-cp starts (nodes and instances through `/v1/txn`, 64 operations each; sidecars through " +
		"`/v1/catalog/register`, because a transaction drops a proxy's upstreams), with `proxy-defaults` protocol http.\n")
	b.WriteString("- Every sidecar is a real ADS stream from the bench (grpc-go, `node.id` = its Consul service ID, " +
		"user agent `" + UserAgent + "`) that subscribes like Envoy: CDS and LDS wildcards, then EDS and RDS for the names " +
		"they reference, and ACKs every response right after decoding it.\n")
	b.WriteString("- Layout *pods*: every replica has its own address (as pods do), so each sidecar's inbound listener differs. " +
		"Layout *shared*: every replica of a service has the same address and ports, so replicas translate identically " +
		"and share a snapshot group.\n")
	b.WriteString("- RSS is VmRSS of the outrigger-cp process; heap in use is its `go_memstats_heap_inuse_bytes`. " +
		"Per proxy = (after − before) / proxies synced.\n")
	b.WriteString("- Changes cycle through: register one more hub instance with its sidecar (EDS), deregister it, " +
		"write a service-splitter on the hub (RDS, and a cluster for the split target), delete it.\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// caseLabels names each case by its Label, numbering repeats of one
// configuration ("…, run 2") so that every heading is distinct.
func caseLabels(cases []*Result) map[*Result]string {
	out := make(map[*Result]string, len(cases))
	seen := map[string]int{}
	for _, c := range cases {
		l := c.Label()
		seen[l]++
		if n := seen[l]; n > 1 {
			l = fmt.Sprintf("%s, run %d", l, n)
		}
		out[c] = l
	}
	return out
}

// liveCell is the live heap + stacks per proxy, or why it is missing.
func liveCell(c *Result) string {
	if c.Synced == 0 {
		return "—"
	}
	v, ok := c.PerProxyLive()
	if !ok {
		return "(stale GC)"
	}
	return fmtKB(v)
}

func gcCell(m Memory) string {
	switch {
	case m.LiveGC == 0:
		return "no GC"
	case m.LiveFresh:
		return fmt.Sprintf("GC %d", m.LiveGC)
	}
	return fmt.Sprintf("GC %d, stale", m.LiveGC)
}

func verdict(ok bool) string {
	if ok {
		return "pass"
	}
	return "**miss**"
}

func layoutWords(l string) string {
	if l == "shared" {
		return "the address of every other replica of its service"
	}
	return "its own address"
}

func upstreamWords(n int) string {
	if n > 1 {
		return "the hub and the next service"
	}
	return "the hub"
}

func modeWords(m string) string {
	if m == "delta" {
		return "incremental (delta) ADS"
	}
	return "state-of-the-world ADS"
}

func translationsCell(ts []Translation) string {
	if len(ts) == 0 {
		return "—"
	}
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmtDur(t.Took)
	}
	return fmt.Sprintf("%d (%s)", len(ts), strings.Join(parts, ", "))
}

func fmtCPU(c CPU) string {
	return fmt.Sprintf("%.2f / %.2f / %.2f s", c.ControlPlane.Seconds(), c.Consul.Seconds(), c.Bench.Seconds())
}

func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "—"
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < 10*time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
}

func fmtMiB(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", v/(1<<20))
}

func fmtKB(v float64) string { return fmt.Sprintf("%.1f KB", v/1000) }

func fmtKBOr(v float64, n int) string {
	if n == 0 {
		return "—"
	}
	return fmtKB(v)
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
