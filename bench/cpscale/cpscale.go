// Package cpscale is the control plane's scale bench: it starts a real
// Consul dev agent and outrigger-cp as separate processes, registers a mesh
// of M services and N sidecars, opens N real ADS streams from this process
// (one per simulated sidecar, node.id = its Consul service ID), and
// measures the control plane's memory per connected proxy and the time
// from a Consul write to each proxy's ACK of the configuration carrying it.
//
// One Run is one case: a fresh Consul and control plane, so cases do not
// share state. Everything is bounded by the context's deadline and by
// per-phase timeouts.
package cpscale

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/bench/procstat"
)

// Config is one bench case. Zero durations and counts take the defaults
// of withDefaults.
type Config struct {
	Layout
	// Delta uses incremental xDS instead of state of the world.
	Delta bool
	// StreamsPerConn is how many ADS streams share one gRPC connection; 1
	// is one connection per proxy, as real sidecars do. outrigger-cp allows
	// 16 concurrent streams per connection: more stall.
	StreamsPerConn int
	// Changes is how many Consul changes are measured (cycling through
	// ChangeKinds).
	Changes int
	// MemSamples readings, one a second, are taken of each memory figure;
	// the median is reported.
	MemSamples int
	// OpenConcurrency bounds the streams opening (not yet synced) at once.
	OpenConcurrency int
	// SyncTimeout bounds the wait for every stream's initial config;
	// ChangeTimeout the wait for one change to reach every stream.
	SyncTimeout, ChangeTimeout time.Duration
	// ConsulBin and ControlPlaneBin are the binaries (see ConsulBinary and
	// BuildControlPlane).
	ConsulBin, ControlPlaneBin string
	// Dir holds the agents' data and logs.
	Dir string
	// SkipEmpty skips measuring the control plane on an empty mesh.
	SkipEmpty bool
	// WaitGC is how long a memory reading may wait for the control plane's
	// runtime to run a GC cycle on its own (it forces one every 2 minutes
	// at the latest), so that the live heap is measured after the phase,
	// not during it. 0 takes the last cycle, whenever it ran.
	WaitGC time.Duration
	// InProcess runs the control plane's packages inside the bench
	// instead of the outrigger-cp process, collects garbage before every
	// reading and writes heap profiles into Dir. Memory figures then
	// include the bench's own streams; use it to find where memory goes.
	InProcess bool
	Logger    hclog.Logger
}

// Defaults of Config.
const (
	DefaultStreamsPerConn  = 16
	DefaultChanges         = 5
	DefaultMemSamples      = 5
	DefaultOpenConcurrency = 256
	DefaultSyncTimeout     = 3 * time.Minute
	DefaultChangeTimeout   = time.Minute
)

func (c Config) withDefaults() Config {
	if c.StreamsPerConn <= 0 {
		c.StreamsPerConn = DefaultStreamsPerConn
	}
	if c.Changes < 0 {
		c.Changes = 0
	}
	if c.MemSamples <= 0 {
		c.MemSamples = DefaultMemSamples
	}
	if c.OpenConcurrency <= 0 {
		c.OpenConcurrency = DefaultOpenConcurrency
	}
	if c.SyncTimeout <= 0 {
		c.SyncTimeout = DefaultSyncTimeout
	}
	if c.ChangeTimeout <= 0 {
		c.ChangeTimeout = DefaultChangeTimeout
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return c
}

// Validate checks what Run cannot default.
func (c Config) Validate() error {
	errs := []error{c.Layout.Validate()}
	if c.ConsulBin == "" {
		errs = append(errs, errors.New("no Consul binary"))
	}
	if c.ControlPlaneBin == "" && !c.InProcess {
		errs = append(errs, errors.New("no outrigger-cp binary"))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("no work directory"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cpscale: config: %w", err)
	}
	return nil
}

// Run runs one case. The returned Result holds what was measured even when
// the error is not nil.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg = cfg.withDefaults()
	start := time.Now()
	res := &Result{Proxies: cfg.Proxies, Services: cfg.Services, Upstreams: cfg.Upstreams, HubInstances: cfg.HubInstances,
		Layout: layoutName(cfg.Shared), Mode: modeName(cfg.Delta), InProcess: cfg.InProcess,
		Conns: (cfg.Proxies + cfg.StreamsPerConn - 1) / cfg.StreamsPerConn}
	res.LoadAvg[0] = loadAvg()
	err := run(ctx, cfg, res)
	res.LoadAvg[1] = loadAvg()
	res.pool()
	res.Took = time.Since(start)
	if err != nil {
		res.Error = err.Error()
	}
	return res, err
}

// loadAvg is the 1-minute load average, 0 when unreadable.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func layoutName(shared bool) string {
	if shared {
		return "shared"
	}
	return "pods"
}

func modeName(delta bool) string {
	if delta {
		return "delta"
	}
	return "sotw"
}

func run(ctx context.Context, cfg Config, res *Result) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.Logger
	// Each end of every connection is a descriptor: the bench holds the
	// client ends, the control plane (a child, which inherits the limit)
	// the server ends, or both when it runs in-process.
	need := res.Conns + 1024
	if cfg.InProcess {
		need += res.Conns
	}
	if err := RaiseFileLimit(need); err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("cpscale: %w", err)
	}

	log.Info("starting consul")
	consul, err := StartConsul(ctx, cfg.ConsulBin, cfg.Dir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, consul.Stop()) }()

	startCP := func(name string) (controlPlane, error) {
		if cfg.InProcess {
			return startInProcess(ctx, consul.Addr, cfg.Dir, name)
		}
		return StartControlPlane(ctx, cfg.ControlPlaneBin, consul.Addr, cfg.Dir, name)
	}
	profile := func(cp controlPlane, name string) {
		if !cfg.InProcess {
			return
		}
		if p, err := cp.profile(name); err != nil {
			log.Warn("no heap profile", "error", err)
		} else {
			res.Profiles = append(res.Profiles, p)
		}
	}

	if !cfg.SkipEmpty {
		log.Info("measuring the control plane on an empty mesh")
		cp, err := startCP("cp-empty")
		if err != nil {
			return err
		}
		// Nothing changes in an empty control plane: any GC cycle will do.
		res.Empty, err = sampleMemory(ctx, cp, cfg.MemSamples, time.Time{}, 0)
		err = errors.Join(err, cp.stop())
		if err != nil {
			return err
		}
	}

	log.Info("registering the mesh", "proxies", cfg.Proxies, "services", cfg.Services)
	t := time.Now()
	if err := cfg.Layout.Register(ctx, consul.Client); err != nil {
		return err
	}
	res.RegisterTime = time.Since(t)
	res.Registered = cfg.RegisteredProxies()
	log.Info("registered", "took", res.RegisterTime.Round(time.Millisecond))

	t = time.Now()
	cp, err := startCP("cp")
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, cp.stop()) }()
	if err := waitProxies(ctx, cp, res.Registered); err != nil {
		return err
	}
	res.ReadyTime = time.Since(t)
	log.Info("control plane ready", "took", res.ReadyTime.Round(time.Millisecond))
	if res.Baseline, err = sampleMemory(ctx, cp, cfg.MemSamples, time.Now(), cfg.WaitGC); err != nil {
		return err
	}
	profile(cp, "before")
	if trs, _ := cp.translations(); len(trs) > 0 {
		res.InitialTranslation = &trs[0]
		for i := range trs { // the first with every proxy
			if trs[i].Proxies >= res.Registered {
				res.InitialTranslation = &trs[i]
				break
			}
		}
	}

	pids := []int{cp.pid(), consul.PID(), os.Getpid()}
	cpu0 := readCPU(pids)
	t = time.Now()
	f, err := newFleet(ctx, fleetOptions{addr: cp.xdsAddr(), layout: cfg.Layout, streamsPerConn: cfg.StreamsPerConn,
		delta: cfg.Delta, openConcurrency: cfg.OpenConcurrency})
	if err != nil {
		return err
	}
	defer f.close()
	sctx, cancel := context.WithTimeout(ctx, cfg.SyncTimeout)
	serr := f.waitSynced(sctx)
	cancel()
	res.Synced = int(f.syncedCount.Load())
	if times := f.syncTimes(); len(times) > 0 {
		res.SyncTime = times[len(times)-1].Sub(t)
	}
	res.SyncCPU = readCPU(pids).sub(cpu0)
	res.StreamErrors = f.Errors()
	if serr != nil {
		return serr
	}
	log.Info("every stream synced", "streams", res.Synced, "took", res.SyncTime.Round(time.Millisecond))

	if res.After, err = sampleMemory(ctx, cp, cfg.MemSamples, time.Now(), cfg.WaitGC); err != nil {
		return err
	}
	profile(cp, "after")
	if s, err := cp.sample(ctx); err == nil {
		res.Groups = s.Metrics[metricGroups]
	}

	if cfg.InProcess && cfg.Changes > 0 {
		stopCPU, path, err := startCPUProfile(filepath.Join(cfg.Dir, "cpu-changes.pb.gz"))
		if err != nil {
			log.Warn("no CPU profile", "error", err)
		} else {
			res.Profiles = append(res.Profiles, path)
			defer stopCPU()
		}
	}
	for i, ch := range Changes(cfg.Changes) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		cr := measureChange(ctx, cfg, f, cp, consul, pids, ch)
		res.Changes = append(res.Changes, cr)
		log.Info("change measured", "n", i+1, "kind", ch.Kind, "got", cr.Got, "streams", cr.Streams,
			"p50", cr.Latency.P50, "p99", cr.Latency.P99, "max", cr.Latency.Max)
		if cr.Error != "" {
			return fmt.Errorf("cpscale: change %d (%s): %s", i+1, ch.Kind, cr.Error)
		}
	}
	profile(cp, "changes")
	if s, err := cp.sample(ctx); err == nil {
		res.NACKs = s.Metrics[metricNACKs]
	}
	res.StreamErrors = f.Errors()
	return nil
}

// changePause separates changes so that each starts from a quiet control
// plane (its debounce and any trailing publish done).
const changePause = 500 * time.Millisecond

// measureChange writes ch and waits until every running stream has ACKed a
// response showing it.
func measureChange(ctx context.Context, cfg Config, f *fleet, cp controlPlane, consul *Consul, pids []int, ch *Change) *ChangeResult {
	cr := &ChangeResult{Kind: ch.Kind, Detail: ch.Detail, Streams: int(f.alive.Load())}
	select {
	case <-ctx.Done():
		cr.Error = ctx.Err().Error()
		return cr
	case <-time.After(changePause):
	}
	tr := f.track(ch)
	cpu0 := readCPU(pids)
	t0 := time.Now()
	err := ch.apply(ctx, consul.Client)
	t1 := time.Now()
	cr.Write = t1.Sub(t0)
	if err != nil {
		f.current.CompareAndSwap(tr, nil)
		cr.Error = err.Error()
		return cr
	}
	wctx, cancel := context.WithTimeout(ctx, cfg.ChangeTimeout)
	f.waitChange(wctx, tr)
	timedOut := wctx.Err() != nil
	cancel()
	t2 := time.Now()
	cr.CPU = readCPU(pids).sub(cpu0)
	for i := range tr.acks {
		if ns := tr.acks[i].Load(); ns != 0 {
			cr.latencies = append(cr.latencies, time.Unix(0, ns).Sub(t1))
		}
	}
	cr.Got = len(cr.latencies)
	cr.Latency = summarize(append([]time.Duration(nil), cr.latencies...))
	if trs, err := cp.translations(); err == nil {
		for _, x := range trs {
			if !x.At.Before(t0) && !x.At.After(t2) {
				cr.Translations = append(cr.Translations, x)
			}
		}
	}
	if timedOut && cr.Got < cr.Streams {
		cr.Error = fmt.Sprintf("%d of %d streams showed the change within %v", cr.Got, cr.Streams, cfg.ChangeTimeout)
	}
	return cr
}

// waitProxies polls the control plane's metrics until its mesh holds want
// proxies.
func waitProxies(ctx context.Context, cp controlPlane, want int) error {
	ctx, cancel := context.WithTimeout(ctx, cpReadyTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var got float64
	for {
		s, err := cp.sample(ctx)
		if err == nil {
			got = s.Metrics[metricProxies]
			if int(got) >= want {
				return nil
			}
		}
		select {
		case <-cp.exited():
			return fmt.Errorf("cpscale: the control plane exited:\n%s", cp.logTail())
		case <-ctx.Done():
			return fmt.Errorf("cpscale: the control plane has %v of %d proxies in its mesh: %w", got, want, ctx.Err())
		case <-tick.C:
		}
	}
}

// sampleMemory takes n readings a second apart and keeps the medians.
// The live heap comes from the first GC cycle that started at or after
// since, waiting up to waitGC for one.
func sampleMemory(ctx context.Context, cp controlPlane, n int, since time.Time, waitGC time.Duration) (Memory, error) {
	var rss, heap, stack, gr []float64
	var gcs []GCCycle
	for i := range n {
		if i > 0 {
			select {
			case <-ctx.Done():
				return Memory{}, ctx.Err()
			case <-time.After(time.Second):
			}
		}
		s, err := cp.sample(ctx)
		if err != nil {
			return Memory{}, err
		}
		rss = append(rss, float64(s.RSS))
		heap = append(heap, s.Metrics[metricHeapInuse])
		stack = append(stack, s.Metrics[metricStackInuse])
		gr = append(gr, s.Metrics[metricGoroutines])
		gcs = s.GCs
	}
	m := Memory{RSS: median(rss), HeapInuse: median(heap), StackInuse: median(stack), Goroutines: median(gr), Samples: n}
	deadline := time.Now().Add(waitGC)
	for {
		if gc, ok := firstGCSince(gcs, since); ok {
			m.LiveHeap, m.LiveGC, m.LiveFresh = float64(gc.Live), gc.N, true
			return m, nil
		}
		if !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return Memory{}, ctx.Err()
		case <-time.After(time.Second):
		}
		s, err := cp.sample(ctx)
		if err != nil {
			return Memory{}, err
		}
		gcs = s.GCs
		// A GC cycle shrinks the stacks of goroutines that use little of
		// theirs: once it has run, read them again.
		if _, ok := firstGCSince(gcs, since); ok {
			m.StackInuse, m.Goroutines = s.Metrics[metricStackInuse], s.Metrics[metricGoroutines]
		}
	}
	if len(gcs) > 0 {
		last := gcs[len(gcs)-1]
		m.LiveHeap, m.LiveGC = float64(last.Live), last.N
	}
	return m, nil
}

// firstGCSince returns the first cycle that started at or after t.
func firstGCSince(gcs []GCCycle, t time.Time) (GCCycle, bool) {
	for _, gc := range gcs {
		if !gc.At.Before(t) {
			return gc, true
		}
	}
	return GCCycle{}, false
}

// readCPU reads the CPU time of the control plane, Consul and this
// process; unreadable ones count zero.
func readCPU(pids []int) CPU {
	get := func(pid int) time.Duration {
		st, err := procstat.Default.ReadStat(pid)
		if err != nil {
			return 0
		}
		return st.CPU
	}
	return CPU{ControlPlane: get(pids[0]), Consul: get(pids[1]), Bench: get(pids[2])}
}

func (c CPU) sub(b CPU) CPU {
	return CPU{ControlPlane: c.ControlPlane - b.ControlPlane, Consul: c.Consul - b.Consul, Bench: c.Bench - b.Bench}
}
