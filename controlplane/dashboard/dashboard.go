// Package dashboard is outrigger-cp's live web page: services with their
// instances and health (from Consul), the connected proxies with their
// ACKed config versions and last NACKs (from the xDS server), and
// per-service request rate, error rate and latency percentiles computed
// from the sidecars' own Prometheus metrics. GET / serves the page (one
// embedded HTML file, no external assets), GET /api/state the JSON it
// polls every second.
//
// A sidecar's metrics are found through the convention that its Consul
// registration carries its admin address in the service meta key
// "outrigger_admin" (host:port); the dashboard scrapes
// http://<admin>/stats/prometheus and reads the inbound listener's
// outrigger_downstream_rq_total and outrigger_downstream_rq_duration_seconds.
package dashboard

import (
	"context"
	_ "embed"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/controlplane/server"
)

// AdminMetaKey is the Consul service meta key on a sidecar registration
// that holds the sidecar's admin address (host:port).
const AdminMetaKey = "outrigger_admin"

// Defaults of Options.
const (
	DefaultRefresh       = time.Second
	DefaultScrapeTimeout = 800 * time.Millisecond
	DefaultWindow        = 10 * time.Second
	DefaultListener      = "public_listener"
)

// catalogTimeout bounds one read of the catalog.
const catalogTimeout = 2 * time.Second

//go:embed assets/index.html
var indexHTML []byte

// Catalog reads the mesh's service instances with their health.
type Catalog interface {
	// Entries returns every registered service instance (connect proxies
	// included) with its node and checks.
	Entries(ctx context.Context) ([]*api.ServiceEntry, error)
}

// Options configure a Dashboard.
type Options struct {
	// Catalog is where services and health come from (ConsulCatalog).
	Catalog Catalog
	// Status is the xDS server's state (server.Server.Status); nil shows
	// no proxies.
	Status func() server.Status
	Logger hclog.Logger
	// Refresh is how long a computed state is served before the next one
	// is built (Consul read and sidecars scraped); default 1 s.
	Refresh time.Duration
	// ScrapeTimeout bounds one sidecar scrape; default 800 ms.
	ScrapeTimeout time.Duration
	// Window is how far back rates look: the rate compares the newest
	// scrape with the oldest one kept within Window; default 10 s.
	Window time.Duration
	// Listener is the sidecar listener whose requests count as the
	// service's traffic; default "public_listener" (the inbound one).
	Listener string
	// Client does the scrapes; default a plain http.Client.
	Client *http.Client
}

// Dashboard serves the page and its state.
type Dashboard struct {
	o Options

	mu      sync.Mutex
	built   time.Time
	state   *State
	history map[string][]timedSample // by sidecar service ID, oldest first
}

// timedSample is a scrape and when it was taken.
type timedSample struct {
	at time.Time
	s  sample
}

// New returns a Dashboard; zero options take their defaults.
func New(o Options) *Dashboard {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Refresh <= 0 {
		o.Refresh = DefaultRefresh
	}
	if o.ScrapeTimeout <= 0 {
		o.ScrapeTimeout = DefaultScrapeTimeout
	}
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Listener == "" {
		o.Listener = DefaultListener
	}
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	return &Dashboard{o: o, history: map[string][]timedSample{}}
}

// Handler serves GET / (the page) and GET /api/state (State as JSON).
func (d *Dashboard) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(indexHTML)
	})
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, r *http.Request) {
		st := d.State(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	})
	return mux
}

// State is the dashboard's view of the mesh at one moment.
type State struct {
	Time time.Time `json:"time"`
	// ConsulError says why the catalog could not be read ("" when it was).
	ConsulError string `json:"consul_error,omitempty"`
	// Ready, MeshIndex are the xDS server's (see server.Status).
	Ready     bool           `json:"ready"`
	MeshIndex uint64         `json:"mesh_index"`
	Services  []ServiceState `json:"services"`
	// Proxies are the connected xDS clients.
	Proxies []server.NodeStatus `json:"proxies"`
	// NACKs are the most recent rejections, oldest first.
	NACKs []server.NACK `json:"nacks"`
	// WindowSeconds is Options.Window.
	WindowSeconds float64 `json:"window_seconds"`
}

// ServiceState is one service: its instances, its sidecars and their traffic.
type ServiceState struct {
	Name      string     `json:"name"`
	Instances []Instance `json:"instances"`
	Sidecars  []Sidecar  `json:"sidecars"`
	// Traffic is measured at the sidecars' inbound listener; nil until
	// two scrapes of at least one sidecar exist.
	Traffic *Traffic `json:"traffic"`
}

// Instance is one registered instance of a service.
type Instance struct {
	ID      string `json:"id"`
	Node    string `json:"node"`
	Address string `json:"address"`
	Port    int    `json:"port"`
	// Health is the aggregate of its checks: passing, warning or critical.
	Health string  `json:"health"`
	Checks []Check `json:"checks"`
}

// Check is one Consul health check.
type Check struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	Output string `json:"output,omitempty"`
}

// Sidecar is one connect proxy in front of a service.
type Sidecar struct {
	Instance
	// Admin is the sidecar's admin address from its AdminMetaKey meta, ""
	// without one.
	Admin string `json:"admin"`
	// Metrics is "ok", "no admin address" (no meta), or "unreachable: ..."
	// with the scrape's error.
	Metrics string `json:"metrics"`
	// Connected is whether a connected xDS node has its ID.
	Connected bool `json:"connected"`
}

// Traffic is a service's inbound requests over the last window.
type Traffic struct {
	// RequestRate is requests per second.
	RequestRate float64 `json:"request_rate"`
	// ErrorRate is the share (0-1) of 5xx answers; 0 without requests.
	ErrorRate float64 `json:"error_rate"`
	// P50 and P99 are latency percentiles in seconds, nil without requests.
	P50 *float64 `json:"p50_seconds"`
	P99 *float64 `json:"p99_seconds"`
	// Requests counts the requests in the window, WindowSeconds its length.
	Requests      float64 `json:"requests"`
	WindowSeconds float64 `json:"window_seconds"`
}

// State returns the current state, built at most once per Refresh.
func (d *Dashboard) State(ctx context.Context) *State {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.state != nil && time.Since(d.built) < d.o.Refresh {
		return d.state
	}
	// The state is shared by every poller: one going away must not cut it short.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), catalogTimeout+d.o.ScrapeTimeout)
	defer cancel()
	d.state = d.build(ctx)
	d.built = time.Now()
	return d.state
}

// build reads Consul, the xDS status and the sidecars. Called with mu held.
func (d *Dashboard) build(ctx context.Context) *State {
	now := time.Now()
	st := &State{Time: now, Services: []ServiceState{}, Proxies: []server.NodeStatus{}, NACKs: []server.NACK{},
		WindowSeconds: d.o.Window.Seconds()}
	if d.o.Status != nil {
		s := d.o.Status()
		st.Ready, st.MeshIndex = s.Ready, s.MeshIndex
		if s.Nodes != nil {
			st.Proxies = s.Nodes
		}
		if s.LastNACKs != nil {
			st.NACKs = s.LastNACKs
		}
	}
	connected := map[string]bool{}
	for _, n := range st.Proxies {
		connected[n.ID] = true
	}
	cctx, cancel := context.WithTimeout(ctx, catalogTimeout)
	entries, err := d.o.Catalog.Entries(cctx)
	cancel()
	if err != nil {
		st.ConsulError = err.Error()
		d.o.Logger.Debug("dashboard: catalog read failed", "error", err)
		return st
	}
	services := map[string]*ServiceState{}
	get := func(name string) *ServiceState {
		if s := services[name]; s != nil {
			return s
		}
		s := &ServiceState{Name: name, Instances: []Instance{}, Sidecars: []Sidecar{}}
		services[name] = s
		return s
	}
	var sidecars []*Sidecar
	owner := map[*Sidecar]string{}
	for _, e := range entries {
		if e == nil || e.Service == nil {
			continue
		}
		inst := instance(e)
		if e.Service.Kind == api.ServiceKindConnectProxy {
			dest := e.Service.Service
			if e.Service.Proxy != nil && e.Service.Proxy.DestinationServiceName != "" {
				dest = e.Service.Proxy.DestinationServiceName
			}
			sc := &Sidecar{Instance: inst, Admin: e.Service.Meta[AdminMetaKey], Connected: connected[inst.ID]}
			sidecars = append(sidecars, sc)
			owner[sc] = dest
			get(dest)
			continue
		}
		if e.Service.Kind != "" {
			continue // gateways are not services of the mesh
		}
		s := get(e.Service.Service)
		s.Instances = append(s.Instances, inst)
	}
	samples := d.scrapeAll(ctx, sidecars)
	live := map[string]bool{}
	deltas := map[string][]rated{}
	for _, sc := range sidecars {
		live[sc.ID] = true
		if r, ok := d.record(sc.ID, samples[sc], now); ok {
			deltas[owner[sc]] = append(deltas[owner[sc]], r)
		}
		s := get(owner[sc])
		s.Sidecars = append(s.Sidecars, *sc)
	}
	for id := range d.history {
		if !live[id] {
			delete(d.history, id)
		}
	}
	for _, s := range services {
		slices.SortFunc(s.Instances, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
		slices.SortFunc(s.Sidecars, func(a, b Sidecar) int { return strings.Compare(a.ID, b.ID) })
		if rs := deltas[s.Name]; len(rs) > 0 {
			s.Traffic = traffic(rs)
		}
		st.Services = append(st.Services, *s)
	}
	slices.SortFunc(st.Services, func(a, b ServiceState) int { return strings.Compare(a.Name, b.Name) })
	return st
}

// instance is the JSON view of a catalog entry.
func instance(e *api.ServiceEntry) Instance {
	inst := Instance{ID: e.Service.ID, Address: e.Service.Address, Port: e.Service.Port,
		Health: e.Checks.AggregatedStatus(), Checks: []Check{}}
	if e.Node != nil {
		inst.Node = e.Node.Node
		if inst.Address == "" {
			inst.Address = e.Node.Address
		}
	}
	for _, c := range e.Checks {
		inst.Checks = append(inst.Checks, Check{Name: c.Name, Status: c.Status, Output: c.Output})
	}
	return inst
}

// scrapeAll scrapes every sidecar with an admin address concurrently,
// each bounded by ScrapeTimeout, and sets each sidecar's Metrics field.
func (d *Dashboard) scrapeAll(ctx context.Context, sidecars []*Sidecar) map[*Sidecar]*sample {
	out := make(map[*Sidecar]*sample, len(sidecars))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, sc := range sidecars {
		if sc.Admin == "" {
			sc.Metrics = "no admin address (meta " + AdminMetaKey + ")"
			continue
		}
		wg.Go(func() {
			s, err := d.scrape(ctx, sc.Admin)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				sc.Metrics = "unreachable: " + err.Error()
				return
			}
			sc.Metrics = "ok"
			out[sc] = &s
		})
	}
	wg.Wait()
	return out
}

// record appends s (nil: the scrape failed, history kept) to id's history,
// drops samples older than the window, and returns the difference between
// the newest and the oldest kept sample.
func (d *Dashboard) record(id string, s *sample, now time.Time) (rated, bool) {
	h := d.history[id]
	if s != nil {
		h = append(h, timedSample{at: now, s: *s})
	}
	// Keep the newest sample older than the window as the rate's base, so
	// a poll every Window still yields a rate.
	for len(h) > 2 && now.Sub(h[1].at) >= d.o.Window {
		h = h[1:]
	}
	d.history[id] = h
	if s == nil || len(h) < 2 {
		return rated{}, false
	}
	first, last := h[0], h[len(h)-1]
	diff, ok := delta(first.s, last.s)
	if !ok {
		// A counter went down: the sidecar restarted; start over.
		d.history[id] = h[len(h)-1:]
		return rated{}, false
	}
	return rated{d: diff, seconds: last.at.Sub(first.at).Seconds()}, true
}

// rated is one sidecar's requests over seconds.
type rated struct {
	d       sample
	seconds float64
}

// traffic sums the sidecars' differences into a service's traffic.
func traffic(rs []rated) *Traffic {
	t := &Traffic{}
	var buckets []bucket
	errs := 0.0
	for _, r := range rs {
		n := r.d.total()
		t.Requests += n
		errs += r.d.byClass["5xx"]
		if r.seconds > 0 {
			t.RequestRate += n / r.seconds
		}
		t.WindowSeconds = max(t.WindowSeconds, r.seconds)
		buckets = append(buckets, r.d.buckets...)
	}
	if t.Requests > 0 {
		t.ErrorRate = errs / t.Requests
	}
	buckets = mergeBuckets(buckets)
	if v, ok := quantile(0.5, buckets); ok {
		t.P50 = &v
	}
	if v, ok := quantile(0.99, buckets); ok {
		t.P99 = &v
	}
	return t
}
