package consul

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// waitLimit bounds every wait for a Mesh; far above what any change takes.
const waitLimit = 15 * time.Second

// testOptions are short enough that no test waits long on Consul.
func testOptions(log hclog.Logger) Options {
	return Options{
		Logger:         log,
		WaitTime:       2 * time.Second,
		RequestTimeout: 2 * time.Second,
		Debounce:       20 * time.Millisecond,
		SettleTimeout:  5 * time.Second,
		BackoffMin:     50 * time.Millisecond,
		BackoffMax:     400 * time.Millisecond,
	}
}

// logBuffer is a goroutine-safe log sink that also echoes to the test.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// count is how many log lines contain s.
func (b *logBuffer) count(s string) int { return strings.Count(b.String(), s) }

func newTestLogger(t *testing.T) (hclog.Logger, *logBuffer) {
	buf := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("watcher log:\n%s", buf.String())
		}
	})
	return hclog.New(&hclog.LoggerOptions{Name: "consul", Level: hclog.Trace, Output: buf}), buf
}

// recorder collects published meshes and checks the publish contract:
// never concurrent, Index never decreasing, a published Mesh never changed
// afterwards.
type recorder struct {
	t       *testing.T
	busy    atomic.Bool
	mu      sync.Mutex
	meshes  []*model.Mesh
	frozen  [][]byte // JSON of each mesh when published
	wake    chan struct{}
	publish func(*model.Mesh)
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{t: t, wake: make(chan struct{}, 1)}
	r.publish = func(m *model.Mesh) {
		if !r.busy.CompareAndSwap(false, true) {
			t.Error("publish called concurrently")
		}
		defer r.busy.Store(false)
		b, err := json.Marshal(m)
		if err != nil {
			t.Errorf("marshal mesh: %v", err)
		}
		r.mu.Lock()
		if n := len(r.meshes); n > 0 && r.meshes[n-1].Index > m.Index {
			t.Errorf("Index went back from %d to %d", r.meshes[n-1].Index, m.Index)
		}
		r.meshes = append(r.meshes, m)
		r.frozen = append(r.frozen, b)
		r.mu.Unlock()
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	t.Cleanup(r.checkFrozen)
	return r
}

// checkFrozen fails if any published Mesh changed after it was published.
func (r *recorder) checkFrozen() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, m := range r.meshes {
		b, _ := json.Marshal(m)
		if !bytes.Equal(b, r.frozen[i]) {
			r.t.Errorf("published mesh %d (index %d) was changed after publishing", i, m.Index)
		}
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.meshes)
}

// snapshot returns every mesh published so far.
func (r *recorder) snapshot() []*model.Mesh {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*model.Mesh(nil), r.meshes...)
}

func (r *recorder) last() *model.Mesh {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.meshes) == 0 {
		return nil
	}
	return r.meshes[len(r.meshes)-1]
}

// waitFor returns the first latest Mesh that satisfies cond, failing after
// waitLimit.
func (r *recorder) waitFor(desc string, cond func(*model.Mesh) bool) *model.Mesh {
	r.t.Helper()
	return r.waitWithin(waitLimit, desc, cond)
}

// waitWithin is waitFor with its own limit.
func (r *recorder) waitWithin(limit time.Duration, desc string, cond func(*model.Mesh) bool) *model.Mesh {
	r.t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		if m := r.last(); m != nil && cond(m) {
			return m
		}
		select {
		case <-r.wake:
		case <-deadline.C:
			r.t.Fatalf("no published mesh %s within %v; last: %s", desc, limit, describe(r.last()))
		}
	}
}

// describe summarises a mesh for failure messages.
func describe(m *model.Mesh) string {
	if m == nil {
		return "none"
	}
	var b strings.Builder
	b.WriteString("services:")
	for _, name := range sortedKeys(m.Services) {
		s := m.Services[name]
		b.WriteString(" " + name + "(")
		for _, e := range s.Instances {
			b.WriteString(e.Service.ID + " ")
		}
		b.WriteString("|")
		for _, e := range s.Sidecars {
			b.WriteString(" " + e.Service.ID)
		}
		b.WriteString(")")
	}
	b.WriteString(" proxies: " + strings.Join(sortedKeys(m.Proxies), ","))
	return b.String()
}

// runWatcher runs w until the test ends and checks that Run returned nil.
func runWatcher(t *testing.T, w *Watcher, r *recorder) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, r.publish) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
		case <-time.After(waitLimit):
			var stacks strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&stacks, 1)
			t.Errorf("Run did not return within %v of cancel; goroutines:\n%s", waitLimit, stacks.String())
		}
	}
	t.Cleanup(stop)
	return stop
}

// newClient is a client with its own transport, so a test can close its
// idle connections.
func newClient(t *testing.T, addr string) (*api.Client, *http.Transport) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	cfg := api.DefaultConfig()
	cfg.Address, cfg.Scheme, cfg.Token = addr, "http", ""
	cfg.HttpClient = &http.Client{Transport: tr}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return c, tr
}

// registerWeb registers a "web" instance with a passing TTL check named
// "ttl-<id>" and a sidecar whose only check aliases the instance.
func registerWeb(t *testing.T, c *api.Client, id, version string, port int, upstreams ...api.Upstream) {
	t.Helper()
	reg := &api.AgentServiceRegistration{
		ID: id, Name: "web", Port: port, Address: "127.0.0.1",
		Meta:  map[string]string{"version": version},
		Check: &api.AgentServiceCheck{CheckID: "ttl-" + id, TTL: "10m", Status: api.HealthPassing},
		Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
			Proxy:  &api.AgentServiceConnectProxyConfig{Upstreams: upstreams},
			Checks: api.AgentServiceChecks{{Name: "alias", AliasService: id}},
		}},
	}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
}

func setEntry(t *testing.T, c *api.Client, e api.ConfigEntry) {
	t.Helper()
	if ok, _, err := c.ConfigEntries().Set(e, nil); err != nil || !ok {
		t.Fatalf("set %s %s: %v, %v", e.GetKind(), e.GetName(), ok, err)
	}
}

func deleteEntry(t *testing.T, c *api.Client, kind, name string) {
	t.Helper()
	if _, err := c.ConfigEntries().Delete(kind, name, nil); err != nil {
		t.Fatalf("delete %s %s: %v", kind, name, err)
	}
}

// ids lists the service IDs of entries.
func ids(entries []*api.ServiceEntry) []string {
	out := []string{}
	for _, e := range entries {
		out = append(out, e.Service.ID)
	}
	return out
}
