package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/outrigger-mesh/outrigger/bench/loadgen"
	"github.com/outrigger-mesh/outrigger/bench/report"
	"github.com/outrigger-mesh/outrigger/bench/targets"
)

// profileOutrigger starts a fresh one-hop outrigger with OUTRIGGER_PPROF set
// and takes a CPU profile and an allocation profile under closed-loop small
// HTTP/1.1 load. The proxy stays a separate process: profiling it in-process
// would measure a different program.
func profileOutrigger(ctx context.Context, cfg *Config) *report.Profile {
	p := &report.Profile{}
	if cfg.OutriggerBin == "" {
		p.Err = "no outrigger binary"
		return p
	}
	ports, err := targets.FreePorts(1)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	pprofAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	t, err := targets.StartOutrigger(ctx, filepath.Join(cfg.TmpDir, "profile"), cfg.Upstream,
		targets.OutriggerOptions{Binary: cfg.OutriggerBin, Hops: 1, PprofAddr: pprofAddr})
	if err != nil {
		p.Err = firstLine(err)
		return p
	}
	defer t.Close()
	base := "http://" + pprofAddr + "/debug/pprof/"
	if err := targets.WaitReady(ctx, t.Procs[0], []string{pprofAddr}, 3*time.Second); err != nil {
		p.Err = fmt.Sprintf("outrigger does not serve pprof on OUTRIGGER_PPROF=%s: the binary needs that hook "+
			"(net/http/pprof on the given loopback address)", pprofAddr)
		return p
	}
	if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
		p.Err = err.Error()
		return p
	}

	sc := QuickScenarios()[0]
	client, err := loadgen.NewClient(sc.loadTarget(t.Endpoints.HTTP1))
	if err != nil {
		p.Err = err.Error()
		return p
	}
	defer client.Close()
	// Warm up so pools and buffers exist before counting allocations.
	if _, err := loadgen.Run(ctx, client, loadgen.Options{Mode: loadgen.ClosedLoop, Duration: time.Second, Workers: sc.Workers}); err != nil {
		p.Err = err.Error()
		return p
	}
	mallocsBefore, err := mallocs(ctx, base)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	const seconds = 8
	var res *loadgen.Result
	var loadErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		res, loadErr = loadgen.Run(ctx, client, loadgen.Options{Mode: loadgen.ClosedLoop, Duration: (seconds + 1) * time.Second, Workers: sc.Workers})
	})
	p.CPUPath = filepath.Join(cfg.ProfileDir, "outrigger-cpu.pprof")
	cpuErr := fetch(ctx, base+"profile?seconds="+strconv.Itoa(seconds), p.CPUPath, (seconds+10)*time.Second)
	wg.Wait()
	if loadErr != nil || cpuErr != nil {
		p.Err = fmt.Sprintf("load: %v; cpu profile: %v", loadErr, cpuErr)
		return p
	}
	mallocsAfter, err := mallocs(ctx, base)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	p.AllocsPath = filepath.Join(cfg.ProfileDir, "outrigger-allocs.pprof")
	if err := fetch(ctx, base+"allocs", p.AllocsPath, 10*time.Second); err != nil {
		p.Err = err.Error()
		return p
	}
	p.Requests = res.OK + res.Errors
	if p.Requests > 0 {
		p.AllocsPerRequest = float64(mallocsAfter-mallocsBefore) / float64(p.Requests)
	}
	return p
}

func fetch(ctx context.Context, url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetch %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	return f.Close()
}

// mallocs reads runtime.MemStats.Mallocs from the text allocs profile.
func mallocs(ctx context.Context, base string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"allocs?debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("pprof allocs: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, fmt.Errorf("pprof allocs: %w", err)
	}
	return ParseMallocs(body)
}

// ParseMallocs finds "# Mallocs = N" in a debug=1 heap or allocs profile.
func ParseMallocs(b []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("# Mallocs = ")); ok {
			return strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		}
	}
	return 0, fmt.Errorf("pprof allocs: no \"# Mallocs\" line")
}

// defaultProfileSeconds is how long a --profile-target CPU profile runs.
const defaultProfileSeconds = 10

// profileLastHop starts a fresh copy of the outrigger target name with
// pprof on the proxy nearest the backend (the server sidecar of a two-hop
// target) and profiles it under sc's open-loop load at its reference rate:
// the load the latency figures are taken at, not a saturating one.
func profileLastHop(ctx context.Context, cfg *Config, name string, sc Scenario) report.Profile {
	o := outriggerOptions(name, cfg.OutriggerBin)
	o.PprofHop = o.Hops
	proxy := "the proxy"
	if o.Hops == 2 {
		proxy = "server sidecar (hop 2)"
	}
	rate := sc.RefRate()
	profileSeconds := cfg.ProfileSeconds
	p := report.Profile{Target: name, Proxy: proxy,
		Load: fmt.Sprintf("%s open loop at %s req/s for %d s", sc.Name, strconv.FormatFloat(rate, 'f', -1, 64), profileSeconds)}
	switch {
	case cfg.OutriggerBin == "":
		p.Err = "no outrigger binary"
		return p
	case rate <= 0:
		p.Err = fmt.Sprintf("scenario %s has no open-loop rate", sc.Name)
		return p
	}
	ports, err := targets.FreePorts(1)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	o.PprofAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	t, err := targets.StartOutrigger(ctx, filepath.Join(cfg.TmpDir, "profile-"+name), cfg.Upstream, o)
	if err != nil {
		p.Err = firstLine(err)
		return p
	}
	defer t.Close()
	base := "http://" + o.PprofAddr + "/debug/pprof/"
	if err := targets.WaitReady(ctx, t.Procs[o.PprofHop-1], []string{o.PprofAddr}, 3*time.Second); err != nil {
		p.Err = fmt.Sprintf("outrigger does not serve pprof on OUTRIGGER_PPROF=%s", o.PprofAddr)
		return p
	}
	if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
		p.Err = err.Error()
		return p
	}
	client, err := loadgen.NewClient(sc.loadTarget(sc.endpoint(t.Endpoints)))
	if err != nil {
		p.Err = err.Error()
		return p
	}
	defer client.Close()
	if _, err := loadgen.Run(ctx, client, loadgen.Options{Mode: loadgen.ClosedLoop, Duration: time.Second, Workers: sc.Workers}); err != nil {
		p.Err = "warm-up: " + err.Error()
		return p
	}
	mallocsBefore, err := mallocs(ctx, base)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	var res *loadgen.Result
	var loadErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		res, loadErr = loadgen.Run(ctx, client, loadgen.Options{Mode: loadgen.OpenLoop, Rate: rate, Duration: time.Duration(profileSeconds+1) * time.Second, Workers: sc.Workers})
	})
	p.CPUPath = filepath.Join(cfg.ProfileDir, name+"-hop"+strconv.Itoa(o.PprofHop)+"-cpu.pprof")
	cpuErr := fetch(ctx, base+"profile?seconds="+strconv.Itoa(profileSeconds), p.CPUPath, time.Duration(profileSeconds+10)*time.Second)
	wg.Wait()
	if loadErr != nil || cpuErr != nil {
		p.Err = fmt.Sprintf("load: %v; cpu profile: %v", loadErr, cpuErr)
		return p
	}
	mallocsAfter, err := mallocs(ctx, base)
	if err != nil {
		p.Err = err.Error()
		return p
	}
	p.AllocsPath = filepath.Join(cfg.ProfileDir, name+"-hop"+strconv.Itoa(o.PprofHop)+"-allocs.pprof")
	if err := fetch(ctx, base+"allocs", p.AllocsPath, 10*time.Second); err != nil {
		p.Err = err.Error()
		return p
	}
	p.Requests = res.OK + res.Errors
	if p.Requests > 0 {
		p.AllocsPerRequest = float64(mallocsAfter-mallocsBefore) / float64(p.Requests)
	}
	return p
}
