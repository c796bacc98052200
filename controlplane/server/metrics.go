package server

import (
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "outrigger_cp"

// typeIndex numbers the resource types the metrics and the status know by
// name; every other type URL a client sends is "other", so a label never
// takes a value a client chose.
type typeIndex int

const (
	typeListener typeIndex = iota
	typeRoute
	typeCluster
	typeEndpoint
	typeSecret
	typeOther
	numTypes
)

var typeNames = [numTypes]string{"listener", "route", "cluster", "endpoint", "secret", "other"}

// typeURLs are the type URLs of the known types ("" for other).
var typeURLs = [numTypes]string{resource.ListenerType, resource.RouteType, resource.ClusterType,
	resource.EndpointType, resource.SecretType, ""}

// typeOf maps a type URL to its index.
func typeOf(typeURL string) typeIndex {
	switch typeURL {
	case resource.ListenerType:
		return typeListener
	case resource.RouteType:
		return typeRoute
	case resource.ClusterType:
		return typeCluster
	case resource.EndpointType:
		return typeEndpoint
	case resource.SecretType:
		return typeSecret
	}
	return typeOther
}

func (t typeIndex) String() string { return typeNames[t] }

// agentIndex numbers the kinds of xDS client, told apart by
// node.user_agent_name.
type agentIndex int

const (
	agentOutrigger agentIndex = iota // our sidecar, "outrigger"
	agentEnvoy                       // Envoy, "envoy"
	agentGRPC                        // proxyless gRPC, "gRPC Go", "gRPC C++", ...
	agentOther
	numAgents
)

var agentNames = [numAgents]string{"outrigger", "envoy", "grpc", "other"}

func (a agentIndex) String() string { return agentNames[a] }

// modeIndex is the xDS protocol variant of a stream.
type modeIndex int

const (
	modeSotW modeIndex = iota
	modeDelta
	numModes
)

var modeNames = [numModes]string{"sotw", "delta"}

func (m modeIndex) String() string { return modeNames[m] }

// ConsulWatches are the values of the watch label of
// outrigger_cp_consul_watch_errors_total: the Consul queries the watcher
// runs, per-name queries folded into their kind ("health/connect" for
// /v1/health/connect/<name>). Anything else counts as "other".
var ConsulWatches = []string{
	"agent/self",
	"catalog/services",
	"catalog/service",
	"health/service",
	"health/connect",
	"config/service-defaults",
	"config/service-router",
	"config/service-splitter",
	"config/service-resolver",
	"config/service-intentions",
	"config/proxy-defaults",
	"config/ingress-gateway",
	"config/jwt-provider",
	"connect/ca/roots",
	"agent/connect/ca/roots",
	"connect/intentions",
	"agent/connect/ca/leaf",
	"status/leader",
	"other",
}

// PushLatencyBuckets are the bounds, in seconds, of
// outrigger_cp_xds_push_latency_seconds: from a loopback round trip to a
// proxy that takes half a minute to apply a change.
var PushLatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// metrics are the server's Prometheus series. Labelled series are resolved
// once, so a request costs no label lookup, and every label value comes
// from a fixed set.
type metrics struct {
	streams        prometheus.Gauge
	requests       [numTypes]prometheus.Counter
	acks           [numTypes]prometheus.Counter
	nacks          [numTypes]prometheus.Counter
	pushes         [numTypes]prometheus.Counter
	pushLatency    [numTypes]prometheus.Observer
	connected      [numAgents][numModes]prometheus.Gauge
	consulUp       prometheus.Gauge
	consulErrs     map[string]prometheus.Counter
	proxies        prometheus.Gauge
	groups         prometheus.Gauge
	translateErrs  prometheus.Counter
	meshIndex      prometheus.Gauge
	rejectedStream prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "xds_streams",
			Help: "Open xDS streams (state of the world and delta)."}),
		consulUp: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "consul_up",
			Help: "1 when the last query to Consul succeeded."}),
		proxies: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "proxies",
			Help: "Connect proxies registered in Consul in the last mesh."}),
		groups: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "snapshot_groups",
			Help: "Distinct proxy configurations: proxies with identical output share one snapshot."}),
		translateErrs: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "translate_errors_total",
			Help: "Translations that failed (a proxy's or the proxyless set's); the previous configuration stays."}),
		meshIndex: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "mesh_index",
			Help: "Consul raft index of the last mesh translated."}),
		rejectedStream: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "xds_rejected_streams_total",
			Help: "Streams closed because their node is not a registered proxy nor a proxyless gRPC client."}),
		consulErrs: make(map[string]prometheus.Counter, len(ConsulWatches)),
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "xds_requests_total",
		Help: "Discovery requests received, by resource type."}, []string{"type"})
	acks := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "xds_acks_total",
		Help: "Responses accepted by clients (ACK), by resource type."}, []string{"type"})
	nacks := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "xds_nacks_total",
		Help: "Responses rejected by clients (NACK, a request with error_detail), by resource type."}, []string{"type"})
	pushes := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "xds_pushes_total",
		Help: "Discovery responses sent, by resource type."}, []string{"type"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "xds_push_latency_seconds",
		Help: "From the start of the Update that changed a connected client's configuration (right after Consul " +
			"answered with the change) to the client's ACK of that version, by resource type.",
		Buckets: PushLatencyBuckets}, []string{"type"})
	connected := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "connected_proxies",
		Help: "Connected xDS clients, by type (outrigger, envoy, grpc, other; from node.user_agent_name) " +
			"and xDS mode of their first stream (sotw, delta)."}, []string{"type", "mode"})
	consulErrs := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "consul_watch_errors_total",
		Help: "Consul queries that failed (no answer, or an error status), by watch kind."}, []string{"watch"})
	for t := range numTypes {
		m.requests[t] = requests.WithLabelValues(t.String())
		m.acks[t] = acks.WithLabelValues(t.String())
		m.nacks[t] = nacks.WithLabelValues(t.String())
		m.pushes[t] = pushes.WithLabelValues(t.String())
		m.pushLatency[t] = latency.WithLabelValues(t.String())
	}
	for a := range numAgents {
		for md := range numModes {
			m.connected[a][md] = connected.WithLabelValues(a.String(), md.String())
		}
	}
	for _, w := range ConsulWatches {
		m.consulErrs[w] = consulErrs.WithLabelValues(w)
	}
	reg.MustRegister(m.streams, m.consulUp, m.proxies, m.groups, m.translateErrs, m.meshIndex, m.rejectedStream,
		requests, acks, nacks, pushes, latency, connected, consulErrs)
	return m
}
