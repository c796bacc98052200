package consul

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

func TestNextIndex(t *testing.T) {
	for _, tc := range []struct {
		name            string
		prev, got, want uint64
	}{
		{"first answer", 0, 17, 17},
		{"unchanged", 17, 17, 17},
		{"grew", 17, 40, 40},
		{"went backwards: reset to a non-blocking query", 40, 12, 0},
		{"zero is never blocked on", 0, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextIndex(tc.prev, tc.got); got != tc.want {
				t.Errorf("nextIndex(%d, %d) = %d, want %d", tc.prev, tc.got, got, tc.want)
			}
		})
	}
}

func TestBackoffDoublesWithJitterUpToMax(t *testing.T) {
	w := NewWatcher(nil, Options{BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})
	for _, tc := range []struct {
		failures int
		base     time.Duration
	}{
		{1, 100 * time.Millisecond}, {2, 200 * time.Millisecond}, {3, 400 * time.Millisecond},
		{4, 800 * time.Millisecond}, {5, time.Second}, {1000, time.Second},
	} {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := w.backoff(tc.failures)
			if d < tc.base/2 || d > tc.base {
				t.Fatalf("backoff(%d) = %v, want within [%v, %v]", tc.failures, d, tc.base/2, tc.base)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Errorf("backoff(%d) always %v: no jitter", tc.failures, w.backoff(tc.failures))
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{BackoffMin: time.Minute, BackoffMax: time.Second}.withDefaults()
	if o.Logger == nil || o.WaitTime != DefaultWaitTime || o.RequestTimeout != DefaultRequestTimeout ||
		o.Debounce != DefaultDebounce || o.SettleTimeout != DefaultSettleTimeout {
		t.Errorf("defaults not applied: %+v", o)
	}
	if o.BackoffMax != time.Minute {
		t.Errorf("BackoffMax = %v below BackoffMin %v, want raised to it", o.BackoffMax, o.BackoffMin)
	}
}

func TestCompareEntriesToleratesMissingParts(t *testing.T) {
	a := &api.ServiceEntry{Node: &api.Node{Node: "a"}, Service: &api.AgentService{ID: "x"}}
	if compareEntries(&api.ServiceEntry{}, a) >= 0 || compareEntries(a, &api.ServiceEntry{}) <= 0 || compareEntries(a, a) != 0 {
		t.Error("entries without node or service do not sort first")
	}
}

func TestConnStateTransitions(t *testing.T) {
	log, logs := newTestLogger(t)
	var ups []bool
	o := testOptions(log)
	o.OnUp = func(up bool) { ups = append(ups, up) }
	w := NewWatcher(nil, o)
	c := &w.conn
	errDown := errors.New("connection refused")

	t0 := time.Now()
	c.failed(t0, errDown) // down before ever up: logged, Up() was already false
	c.failed(t0, errDown)
	if w.Up() || len(ups) != 0 || logs.count("consul unavailable") != 1 {
		t.Fatalf("Up %v, OnUp %v, %d outage logs; want false, none, 1", w.Up(), ups, logs.count("consul unavailable"))
	}
	c.succeeded(t0) // sent before the outage was noticed: proves nothing
	if w.Up() {
		t.Fatal("a stale answer ended the outage")
	}
	c.succeeded(time.Now())
	c.succeeded(time.Now())
	if !w.Up() || len(ups) != 1 || !ups[0] {
		t.Fatalf("Up %v, OnUp %v after an answer; want true, [true]", w.Up(), ups)
	}
	c.failed(t0, errDown) // sent before Consul came back
	if !w.Up() {
		t.Fatal("a stale failure started an outage")
	}
	later := time.Now()
	c.failed(later, errDown)
	c.failed(later, errDown)
	if w.Up() || len(ups) != 2 || ups[1] || logs.count("consul unavailable") != 2 {
		t.Fatalf("Up %v, OnUp %v, %d outage logs; want false, [true false], 2", w.Up(), ups, logs.count("consul unavailable"))
	}
	c.succeeded(time.Now())
	if !w.Up() || len(ups) != 3 || logs.count("consul answers again") != 2 {
		t.Fatalf("Up %v, OnUp %v, %d recovery logs", w.Up(), ups, logs.count("consul answers again"))
	}
}

func TestOutageClassification(t *testing.T) {
	// Nothing listens on port 1: the leader probe fails.
	cfg := api.DefaultConfig()
	cfg.Address = "127.0.0.1:1"
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(client, Options{RequestTimeout: time.Second})
	ctx := context.Background()
	query, backbone := &watch{name: "health/connect/web"}, &watch{name: "catalog/services", backbone: true}
	for _, tc := range []struct {
		name string
		wt   *watch
		err  error
		want bool
	}{
		{"no answer", query, errors.New("dial tcp: connection refused"), true},
		{"refused query", query, api.StatusError{Code: 400, Body: "bad filter"}, false},
		{"forbidden query", query, api.StatusError{Code: 403, Body: "ACL not found"}, false},
		{"backbone refused", backbone, api.StatusError{Code: 403, Body: "ACL not found"}, true},
		{"500 and no leader", query, api.StatusError{Code: 500, Body: "No cluster leader"}, true},
		{"429 and no leader", query, api.StatusError{Code: 429, Body: "rate limited"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := w.conn.outage(ctx, tc.wt, tc.err); got != tc.want {
				t.Errorf("outage(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	// One probe answers for probeTTL.
	at := w.conn.probeAt
	w.conn.outage(ctx, query, api.StatusError{Code: 500})
	if w.conn.probeAt != at {
		t.Error("a second failure within probeTTL probed again")
	}
}

// publishHarness drives publishLoop over a hand-filled state, on synctest's
// fake clock.
type publishHarness struct {
	t         *testing.T
	w         *Watcher
	mu        sync.Mutex
	published []*model.Mesh
}

// meshes returns what has been published so far.
func (h *publishHarness) meshes() []*model.Mesh {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.published)
}

func newPublishHarness(t *testing.T, o Options) *publishHarness {
	h := &publishHarness{t: t, w: NewWatcher(nil, o)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.w.publishLoop(ctx, func(m *model.Mesh) {
			h.mu.Lock()
			h.published = append(h.published, m)
			h.mu.Unlock()
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return h
}

// change edits the state as a watch would and wakes the publisher.
func (h *publishHarness) change(f func(s *state)) {
	h.w.mu.Lock()
	f(&h.w.st)
	h.w.mu.Unlock()
	h.w.notify()
}

// after lets d of fake time pass and everything settle.
func (h *publishHarness) after(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func webName(id string) *nameState {
	return &nameState{entries: []*catalogEntry{{CatalogService: api.CatalogService{Node: "n1", ServiceID: id, ServiceName: "web"}}}}
}

func TestPublishWaitsForTheServiceList(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, logs := newTestLogger(t)
		o := testOptions(log)
		h := newPublishHarness(t, o)
		h.change(func(s *state) { s.datacenter = "dc1" })
		h.after(3 * o.SettleTimeout)
		if len(h.meshes()) != 0 {
			t.Fatalf("published %d meshes without the catalog service list", len(h.meshes()))
		}
		if n := logs.count("no catalog service list from Consul yet"); n != 1 {
			t.Errorf("missing list logged %d times, want once", n)
		}
		start := time.Now()
		h.change(func(s *state) { s.servicesFetched = true; s.names["web"] = webName("web-1") })
		h.after(o.Debounce)
		if len(h.meshes()) != 1 || h.meshes()[0].Datacenter != "dc1" || h.meshes()[0].Services["web"] == nil {
			t.Fatalf("published %d meshes once the list came, want one with dc1 and web", len(h.meshes()))
		}
		if d := time.Since(start); d != o.Debounce {
			t.Errorf("published %v after the list, want after Debounce %v", d, o.Debounce)
		}
	})
}

func TestPublishWaitsForPendingWatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, logs := newTestLogger(t)
		o := testOptions(log)
		h := newPublishHarness(t, o)
		health := &watch{name: "health/service/web"}
		h.change(func(s *state) {
			s.servicesFetched = true
			s.names["web"] = webName("web-1")
			s.watches[health] = struct{}{}
		})
		h.after(o.SettleTimeout / 2)
		if len(h.meshes()) != 0 {
			t.Fatal("published while a watch had not answered")
		}
		start := time.Now()
		h.change(func(s *state) { health.fetched = true })
		h.after(o.Debounce)
		if len(h.meshes()) != 1 {
			t.Fatalf("published %d meshes when the last watch answered, want 1", len(h.meshes()))
		}
		if d := time.Since(start); d != o.Debounce {
			t.Errorf("published %v after the last answer, want %v", d, o.Debounce)
		}

		// A new watch that never answers holds a change back SettleTimeout.
		catalog := &watch{name: "catalog/service/api"}
		start = time.Now()
		h.change(func(s *state) {
			s.names["api"] = &nameState{catalog: catalog}
			s.trustDomain = "td.consul"
			s.watches[catalog] = struct{}{}
		})
		h.after(o.SettleTimeout - time.Millisecond)
		if len(h.meshes()) != 1 {
			t.Fatal("published before SettleTimeout while a watch had not answered")
		}
		h.after(time.Millisecond)
		if len(h.meshes()) != 2 || time.Since(start) != o.SettleTimeout {
			t.Fatalf("%d meshes at %v, want the second at SettleTimeout %v", len(h.meshes()), time.Since(start), o.SettleTimeout)
		}
		if n := logs.count(`publishing before every watch has answered: pending=["catalog/service/api"]`); n != 1 {
			t.Errorf("the late watch was logged %d times, want once:\n%s", n, logs.String())
		}
	})
}

func TestPublishCoalescesAndSkipsUnchanged(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, _ := newTestLogger(t)
		o := testOptions(log)
		h := newPublishHarness(t, o)
		h.change(func(s *state) { s.servicesFetched = true; s.maxIndex = 5 })
		h.after(o.Debounce)
		if len(h.meshes()) != 1 || h.meshes()[0].Index != 5 {
			t.Fatalf("first publish: %d meshes", len(h.meshes()))
		}

		// A burst within the debounce window is one publish, at Debounce
		// after its first change.
		for i := range 20 {
			h.change(func(s *state) {
				s.names["web"] = webName("web-" + string(rune('a'+i)))
				s.maxIndex = uint64(10 + i)
			})
			time.Sleep(o.Debounce / 40)
		}
		h.after(o.Debounce)
		if len(h.meshes()) != 2 {
			t.Fatalf("a burst of 20 changes gave %d publishes, want 1", len(h.meshes())-1)
		}
		if m := h.meshes()[1]; m.Index != 29 || m.Services["web"] == nil {
			t.Errorf("burst publish has index %d, want the last 29", m.Index)
		}

		// A new index with the same content is no new Mesh.
		h.change(func(s *state) { s.maxIndex = 99 })
		h.after(o.Debounce)
		if len(h.meshes()) != 2 {
			t.Error("published a mesh that differs only in Index")
		}
	})
}

func TestBuildCopiesWhatLaterChangesTouch(t *testing.T) {
	s := newState()
	s.servicesFetched = true
	ns := webName("web-1")
	ns.instances = []*api.ServiceEntry{{Service: &api.AgentService{ID: "web-1"}}}
	ns.sidecars = []*api.ServiceEntry{{Service: &api.AgentService{ID: "web-1-sidecar-proxy"}}}
	s.names["web"] = ns
	s.entries[api.ServiceResolver] = map[string]api.ConfigEntry{"web": &api.ServiceResolverConfigEntry{
		Kind: api.ServiceResolver, Name: "web", Subsets: map[string]api.ServiceResolverSubset{"all": {}, "v1": {Filter: "x"}}}}
	m := s.build()
	web := m.Services["web"]
	if len(web.Subsets["all"]) != 1 || web.Subsets["v1"] != nil {
		t.Fatalf("subsets = %v; want all = the sidecars, v1 = nil until its watch answers", web.Subsets)
	}
	web.Instances[0] = nil // a consumer scribbling on its copy
	if ns.instances[0] == nil {
		t.Fatal("a Mesh shares the watcher's instance slice")
	}
	web.Subsets["all"][0] = nil
	if ns.sidecars[0] == nil {
		t.Fatal("a Mesh shares the watcher's sidecar slice through a subset")
	}
	storeSorted(&ns.instances, []*api.ServiceEntry{})
	if m2 := s.build(); len(m2.Services["web"].Instances) != 0 || len(web.Instances) != 1 {
		t.Fatal("a later answer changed an earlier Mesh")
	}
}

func TestWarnsOnceAboutManyConnections(t *testing.T) {
	log, logs := newTestLogger(t)
	cfg := api.DefaultConfig()
	cfg.Address = "127.0.0.1:1" // nothing answers: the watches just retry
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := NewWatcher(client, testOptions(log))
	w.connWarn = 3 // the top-level watches alone are more
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func(*model.Mesh) { t.Error("published with Consul unreachable") }) }()
	waitUntil(t, "the watches failing", func() bool { return w.failedQueries() >= 8 })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if n := logs.count("many concurrent blocking queries"); n != 1 {
		t.Errorf("connection warning logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestLeafApplyKeepsGoodCertificate(t *testing.T) {
	ls := &leafState{}
	good := &api.LeafCert{SerialNumber: "1", CertPEM: "cert", PrivateKeyPEM: "key"}
	if !ls.apply(good) || ls.cert != good {
		t.Fatal("first certificate not stored")
	}
	for _, bad := range []*api.LeafCert{nil, {SerialNumber: "2"}, {SerialNumber: "3", CertPEM: "cert"}, {SerialNumber: "4", PrivateKeyPEM: "key"}} {
		if ls.apply(bad) || ls.cert != good {
			t.Errorf("answer %+v replaced the good certificate", bad)
		}
	}
	if ls.apply(&api.LeafCert{SerialNumber: "1", CertPEM: "cert", PrivateKeyPEM: "key"}) {
		t.Error("an equal certificate counted as a change")
	}
	if !ls.apply(&api.LeafCert{SerialNumber: "5", CertPEM: "cert2", PrivateKeyPEM: "key2"}) || ls.cert.SerialNumber != "5" {
		t.Error("a renewed certificate was not stored")
	}
}

// TestAgentSelfDefaultPolicy reads the ACL default policy the way a
// Consul agent with ACLs on reports it (the dev agent of the integration
// tests only has "allow"), and warns when it cannot.
func TestAgentSelfDefaultPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		allow      bool
		warns      bool
	}{
		{"allow", `{"Config":{"Datacenter":"dc9"},"DebugConfig":{"ACLResolverSettings":{"ACLDefaultPolicy":"allow"}}}`, true, false},
		{"deny", `{"Config":{"Datacenter":"dc9"},"DebugConfig":{"ACLResolverSettings":{"ACLDefaultPolicy":"deny"}}}`, false, false},
		{"missing", `{"Config":{"Datacenter":"dc9"}}`, false, true},
		{"unknown", `{"Config":{"Datacenter":"dc9"},"DebugConfig":{"ACLResolverSettings":{"ACLDefaultPolicy":"extend-cache"}}}`, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/agent/self" {
					http.NotFound(w, r)
					return
				}
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c, _ := newClient(t, strings.TrimPrefix(srv.URL, "http://"))
			log, logs := newTestLogger(t)
			w := NewWatcher(c, testOptions(log))
			self, _, err := w.fetchSelf((&api.QueryOptions{}).WithContext(context.Background()))
			if err != nil {
				t.Fatal(err)
			}
			w.mu.Lock()
			changed := w.applySelf(self)
			st := w.st
			w.mu.Unlock()
			if !changed || st.datacenter != "dc9" || st.defaultAllow != tc.allow {
				t.Errorf("changed %v, datacenter %q, default allow %v; want dc9 and %v", changed, st.datacenter, st.defaultAllow, tc.allow)
			}
			if warned := logs.count("cannot read the agent's ACL default policy") == 1; warned != tc.warns {
				t.Errorf("warned %v, want %v:\n%s", warned, tc.warns, logs.String())
			}
		})
	}
}
