package cpscale

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

var (
	binsOnce         sync.Once
	consulBin, cpBin string
	binsErr          error
	binsDir          string
)

// binaries finds Consul (scripts/install-consul.sh) and builds outrigger-cp
// once per test binary.
func binaries(t *testing.T) (consul, cp string) {
	t.Helper()
	if testing.Short() {
		t.Skip("cpscale: needs a real Consul agent and outrigger-cp; skipped in -short mode")
	}
	binsOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		root, err := RepoRoot(".")
		if err != nil {
			binsErr = err
			return
		}
		if consulBin, binsErr = ConsulBinary(ctx, root); binsErr != nil {
			return
		}
		cpBin, binsErr = BuildControlPlane(ctx, root, binsDir)
	})
	if binsErr != nil {
		t.Fatal(binsErr)
	}
	return consulBin, cpBin
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cpscale-test-")
	if err != nil {
		panic(err)
	}
	binsDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// TestSmoke runs small cases end to end against a real Consul: the
// outrigger-cp process with state-of-the-world streams sharing
// connections, and the in-process control plane with delta streams on a
// connection each. Every change of the cycle must reach every stream.
func TestSmoke(t *testing.T) {
	consul, cp := binaries(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"sotw process", Config{Layout: Layout{Proxies: 20, Services: 2, Upstreams: 2, HubInstances: 2}, StreamsPerConn: 8}},
		{"delta in-process shared", Config{Layout: Layout{Proxies: 10, Services: 2, Upstreams: 1, HubInstances: 1, Shared: true},
			Delta: true, StreamsPerConn: 1, InProcess: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cfg := tc.cfg
			cfg.ConsulBin, cfg.ControlPlaneBin, cfg.Dir = consul, cp, t.TempDir()
			cfg.Changes, cfg.MemSamples, cfg.SkipEmpty = len(ChangeKinds), 1, true
			cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "cpscale", Level: hclog.Warn, Output: testWriter{t}})
			res, err := Run(ctx, cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Synced != cfg.Proxies || res.Registered != cfg.Proxies+cfg.HubInstances {
				t.Errorf("synced %d, registered %d; want %d and %d", res.Synced, res.Registered, cfg.Proxies, cfg.Proxies+cfg.HubInstances)
			}
			if len(res.Changes) != len(ChangeKinds) {
				t.Fatalf("%d changes measured, want %d", len(res.Changes), len(ChangeKinds))
			}
			for i, ch := range res.Changes {
				if ch.Kind != ChangeKinds[i] || ch.Got != cfg.Proxies || ch.Streams != cfg.Proxies || ch.Error != "" {
					t.Errorf("change %d: %+v; want kind %s reaching all %d streams", i+1, ch, ChangeKinds[i], cfg.Proxies)
				}
				if ch.Latency.Count != ch.Got || ch.Latency.Max <= 0 || ch.Latency.P50 > ch.Latency.P99 || ch.Latency.P99 > ch.Latency.Max {
					t.Errorf("change %d: latency %+v is inconsistent", i+1, ch.Latency)
				}
			}
			if lat, got, want := res.AllChanges(); got != want || want != cfg.Proxies*len(ChangeKinds) || lat.Count != got {
				t.Errorf("all changes: %+v, %d/%d", lat, got, want)
			}
			if res.Baseline.RSS <= 0 || res.After.RSS <= 0 || res.After.Goroutines <= res.Baseline.Goroutines {
				t.Errorf("memory before %+v, after %+v: want RSS read and more goroutines with the streams", res.Baseline, res.After)
			}
			wantGroups := float64(cfg.Proxies + cfg.HubInstances)
			if cfg.Shared {
				wantGroups = float64(cfg.Services + cfg.HubInstances)
			}
			if res.Groups != wantGroups {
				t.Errorf("snapshot groups %v, want %v", res.Groups, wantGroups)
			}
			if res.NACKs != 0 || len(res.StreamErrors) != 0 {
				t.Errorf("NACKs %v, stream errors %v", res.NACKs, res.StreamErrors)
			}
			if cfg.InProcess && len(res.Profiles) != 4 {
				t.Errorf("profiles %v, want before, after, changes heap and a CPU profile", res.Profiles)
			}
			var md bytes.Buffer
			rep := &Report{Generated: time.Now(), Commands: []string{"test"}, Cases: []*Result{res}}
			if err := rep.Markdown(&md); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(md.String(), res.Label()) || strings.Contains(md.String(), "stopped with an error") {
				t.Errorf("report:\n%s", md.String())
			}
		})
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
