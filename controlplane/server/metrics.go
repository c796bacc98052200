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

// metrics are the server's Prometheus series. Per-type counters are resolved
// once, so a request costs no label lookup.
type metrics struct {
	streams        prometheus.Gauge
	requests       [numTypes]prometheus.Counter
	acks           [numTypes]prometheus.Counter
	nacks          [numTypes]prometheus.Counter
	pushes         [numTypes]prometheus.Counter
	consulUp       prometheus.Gauge
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
	}
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "xds_requests_total",
		Help: "Discovery requests received, by resource type."}, []string{"type"})
	acks := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "xds_acks_total",
		Help: "Responses accepted by clients (ACK), by resource type."}, []string{"type"})
	nacks := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "xds_nacks_total",
		Help: "Responses rejected by clients (NACK, a request with error_detail), by resource type."}, []string{"type"})
	pushes := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "xds_pushes_total",
		Help: "Discovery responses sent, by resource type."}, []string{"type"})
	for t := range numTypes {
		m.requests[t] = requests.WithLabelValues(t.String())
		m.acks[t] = acks.WithLabelValues(t.String())
		m.nacks[t] = nacks.WithLabelValues(t.String())
		m.pushes[t] = pushes.WithLabelValues(t.String())
	}
	reg.MustRegister(m.streams, m.consulUp, m.proxies, m.groups, m.translateErrs, m.meshIndex, m.rejectedStream,
		requests, acks, nacks, pushes)
	return m
}
