package telemetry

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "outrigger"

// LatencyBuckets are the histogram bounds, in seconds, for request
// durations: 100 µs (a loopback hop) up to 30 s (a long upstream timeout).
var LatencyBuckets = []float64{
	0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005,
	0.01, 0.025, 0.05,
	0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30,
}

// codeClasses is indexed by status/100; index 0 is unused so the hot path
// needs no subtraction or bounds juggling beyond one range check.
var codeClasses = [6]string{"", "1xx", "2xx", "3xx", "4xx", "5xx"}

// ServerState mirrors Envoy's server.state gauge values.
type ServerState int

// Server states, numbered as Envoy numbers them.
const (
	StateLive            ServerState = 0
	StateDraining        ServerState = 1
	StatePreInitializing ServerState = 2
	StateInitializing    ServerState = 3
)

// String returns Envoy's name for the state, as /ready prints it.
func (s ServerState) String() string {
	switch s {
	case StateLive:
		return "LIVE"
	case StateDraining:
		return "DRAINING"
	case StatePreInitializing:
		return "PRE_INITIALIZING"
	case StateInitializing:
		return "INITIALIZING"
	}
	return "UNKNOWN"
}

// Metrics owns the proxy's Prometheus registry. Per-request metrics
// (downstream requests by code class and their duration) are recorded
// through handles resolved once per listener name, with no label lookup
// and no allocation. Connection and upstream counters are not counted twice:
// the listeners and clusters keep them in atomics, and a collector reads
// them when the registry is scraped (see SetSources).
type Metrics struct {
	reg *prometheus.Registry

	downRq       *prometheus.CounterVec
	downDuration *prometheus.HistogramVec

	serverLive   prometheus.Gauge
	serverState  prometheus.Gauge
	configUpdate *prometheus.CounterVec
	configOK     prometheus.Counter
	configNACK   prometheus.Counter

	sources sourceCollector
	xds     xdsCollector

	mu        sync.Mutex
	listeners map[string]*ListenerStats
}

// NewMetrics builds a registry with the proxy's metrics and the Go runtime
// and process collectors. The server starts in StatePreInitializing.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		downRq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "downstream_rq_total",
			Help: "Downstream requests completed, by listener and response code class.",
		}, []string{"listener", "code_class"}),
		downDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "downstream_rq_duration_seconds",
			Help:    "Downstream request duration from first byte received to last byte sent.",
			Buckets: LatencyBuckets,
		}, []string{"listener"}),
		serverLive: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "server_live",
			Help: "1 when the server is live (serving with its first config applied), else 0.",
		}),
		serverState: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "server_state",
			Help: "Server state: 0 live, 1 draining, 2 pre-initializing, 3 initializing.",
		}),
		configUpdate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "config_update_total",
			Help: "Configuration updates, by result (accepted or rejected).",
		}, []string{"result"}),
		listeners: make(map[string]*ListenerStats),
	}
	m.reg.MustRegister(
		m.downRq, m.downDuration,
		m.serverLive, m.serverState, m.configUpdate,
		&m.sources,
		&m.xds,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	// Both results exist from the start so a rate() over them works before the first rejection.
	m.configOK = m.configUpdate.WithLabelValues("accepted")
	m.configNACK = m.configUpdate.WithLabelValues("rejected")
	m.SetServerState(StatePreInitializing)
	return m
}

// Registry is the registry to serve on /stats/prometheus; components with
// their own collectors may register them here.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Gatherer is the registry as the admin server consumes it.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// SetServerState records the lifecycle state; server_live follows it.
func (m *Metrics) SetServerState(s ServerState) {
	m.serverState.Set(float64(s))
	if s == StateLive {
		m.serverLive.Set(1)
	} else {
		m.serverLive.Set(0)
	}
}

// ConfigUpdate counts one configuration update, accepted or rejected.
func (m *Metrics) ConfigUpdate(accepted bool) {
	if accepted {
		m.configOK.Inc()
	} else {
		m.configNACK.Inc()
	}
}

// Listener returns the handles for the named listener, creating them on
// first use. The same name returns the same handles until RetainListeners
// drops it, so counters survive a config update that keeps the name.
func (m *Metrics) Listener(name string) *ListenerStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.listeners[name]; ok {
		return s
	}
	s := &ListenerStats{duration: m.downDuration.WithLabelValues(name)}
	for i := 1; i < len(codeClasses); i++ {
		s.rq[i] = m.downRq.WithLabelValues(name, codeClasses[i])
	}
	m.listeners[name] = s
	return s
}

// RetainListeners deletes the series of every listener not in names. Call
// it after a config update with the names now in force. Handles held for a
// removed listener keep working but are no longer exported; if the name
// comes back, it starts from zero.
func (m *Metrics) RetainListeners(names []string) {
	keep := toSet(names)
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.listeners {
		if _, ok := keep[name]; ok {
			continue
		}
		delete(m.listeners, name)
		for i := 1; i < len(codeClasses); i++ {
			m.downRq.DeleteLabelValues(name, codeClasses[i])
		}
		m.downDuration.DeleteLabelValues(name)
	}
}

func toSet(names []string) map[string]struct{} {
	set := make(map[string]struct{}, len(names))
	for _, n := range names {
		set[n] = struct{}{}
	}
	return set
}
