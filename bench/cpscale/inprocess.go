package cpscale

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/outrigger-mesh/outrigger/bench/procstat"
	"github.com/outrigger-mesh/outrigger/controlplane/consul"
	"github.com/outrigger-mesh/outrigger/controlplane/model"
	"github.com/outrigger-mesh/outrigger/controlplane/server"
)

// controlPlane is what a case needs of the control plane under test: the
// outrigger-cp process, or (to profile its heap) its packages run inside
// the bench.
type controlPlane interface {
	xdsAddr() string
	pid() int
	sample(ctx context.Context) (Sample, error)
	translations() ([]Translation, error)
	exited() <-chan struct{}
	logTail() string
	// profile writes a heap profile named name, if this control plane
	// can.
	profile(name string) (string, error)
	stop() error
}

func (cp *ControlPlane) xdsAddr() string                            { return cp.XDSAddr }
func (cp *ControlPlane) pid() int                                   { return cp.PID() }
func (cp *ControlPlane) sample(ctx context.Context) (Sample, error) { return cp.Sample(ctx) }
func (cp *ControlPlane) translations() ([]Translation, error)       { return cp.Translations() }
func (cp *ControlPlane) exited() <-chan struct{}                    { return cp.Exited() }
func (cp *ControlPlane) logTail() string                            { return cp.LogTail() }
func (cp *ControlPlane) stop() error                                { return cp.Stop() }
func (cp *ControlPlane) profile(string) (string, error) {
	return "", errors.New("outrigger-cp serves no net/http/pprof: heap profiles need --in-process")
}

// inProcess runs controlplane/consul's watcher into controlplane/server
// inside the bench, wired as outrigger-cp's serve does, so that its heap
// can be profiled. The streams' own allocations share the heap: read the
// profiles by stack.
type inProcess struct {
	addr    string
	reg     *prometheus.Registry
	logPath string
	logFile *os.File
	dir     string
	cancel  context.CancelFunc
	done    chan struct{}
	errMu   sync.Mutex
	err     error
}

func startInProcess(ctx context.Context, consulAddr, dir, name string) (*inProcess, error) {
	cfg := api.DefaultConfig()
	cfg.Address, cfg.Scheme, cfg.Token, cfg.TokenFile = consulAddr, "http", "", ""
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("cpscale: consul client for %s: %w", consulAddr, err)
	}
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("cpscale: %w", err)
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "outrigger-cp", Level: hclog.Debug, JSONFormat: true, Output: f})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cpscale: listen for xDS: %w", err)
	}
	p := &inProcess{addr: lis.Addr().String(), reg: prometheus.NewRegistry(), logPath: logPath, logFile: f, dir: dir, done: make(chan struct{})}
	srv := server.New(server.Options{Logger: log.Named("xds"), Registry: p.reg})
	w := consul.NewWatcher(client, consul.Options{Logger: log.Named("consul")})
	rctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	var wg sync.WaitGroup
	wg.Go(func() {
		p.fail(w.Run(rctx, func(m *model.Mesh) { srv.Update(m) }))
	})
	wg.Go(func() { p.fail(srv.Run(rctx, lis)) })
	go func() {
		wg.Wait()
		close(p.done)
	}()
	readyCtx, rcancel := context.WithTimeout(ctx, cpReadyTimeout)
	defer rcancel()
	for !srv.Ready() {
		select {
		case <-readyCtx.Done():
			_ = p.stop()
			return nil, fmt.Errorf("cpscale: in-process control plane got no mesh from Consul: %w", readyCtx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return p, nil
}

func (p *inProcess) fail(err error) {
	if err == nil {
		return
	}
	p.errMu.Lock()
	p.err = errors.Join(p.err, err)
	p.errMu.Unlock()
}

func (p *inProcess) xdsAddr() string         { return p.addr }
func (p *inProcess) pid() int                { return os.Getpid() }
func (p *inProcess) exited() <-chan struct{} { return p.done }
func (p *inProcess) logTail() string {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if p.err != nil {
		return p.err.Error()
	}
	return ""
}

// sample collects garbage first (the bench owns this process, so it may)
// and reads the runtime's statistics: LiveHeap is then exact, and
// includes the bench's own streams.
func (p *inProcess) sample(context.Context) (Sample, error) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	mem, err := procstat.Default.ReadMemory(os.Getpid())
	if err != nil {
		return Sample{}, err
	}
	fams, err := p.reg.Gather()
	if err != nil {
		return Sample{}, fmt.Errorf("cpscale: in-process metrics: %w", err)
	}
	m := map[string]float64{}
	for _, f := range fams {
		sum := 0.0
		for _, x := range f.GetMetric() {
			sum += value(f.GetType(), x)
		}
		m[f.GetName()] = sum
	}
	m[metricHeapInuse] = float64(ms.HeapInuse)
	m[metricStackInuse] = float64(ms.StackInuse)
	m[metricGoroutines] = float64(runtime.NumGoroutine())
	return Sample{RSS: mem.RSS, Metrics: m, GCs: []GCCycle{{N: int(ms.NumGC), At: time.Now(), Live: int64(ms.HeapAlloc)}}}, nil
}

func (p *inProcess) translations() ([]Translation, error) {
	f, err := os.Open(p.logPath)
	if err != nil {
		return nil, fmt.Errorf("cpscale: %w", err)
	}
	defer f.Close()
	return parseTranslations(f)
}

// profile collects garbage and writes dir/heap-<name>.pb.gz.
func (p *inProcess) profile(name string) (string, error) {
	runtime.GC()
	path := filepath.Join(p.dir, "heap-"+name+".pb.gz")
	f, err := os.Create(path)
	if err != nil {
		return "", fmt.Errorf("cpscale: %w", err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return "", fmt.Errorf("cpscale: heap profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("cpscale: %w", err)
	}
	return path, nil
}

func (p *inProcess) stop() error {
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(cpStopGrace):
		return errors.New("cpscale: in-process control plane did not stop")
	}
	p.logFile.Close()
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// startCPUProfile profiles this process's CPU into path until stop.
func startCPUProfile(path string) (stop func(), _ string, _ error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, "", fmt.Errorf("cpscale: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, "", fmt.Errorf("cpscale: CPU profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, path, nil
}
