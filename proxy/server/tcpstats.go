package server

import (
	"maps"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/outrigger-mesh/outrigger/proxy/tcpproxy"
)

// tcpStats holds the TCP proxies' counters by stat_prefix, as Envoy roots
// them at tcp.<stat_prefix>.: filters sharing a prefix share the counters,
// and the counters outlive the listener updates that rebuild the filters.
// It is also the Prometheus collector that exports them, labelled by
// stat_prefix (configured names, so the cardinality is the config's).
type tcpStats struct {
	mu       sync.Mutex
	byPrefix map[string]*tcpproxy.Stats
}

func newTCPStats() *tcpStats { return &tcpStats{byPrefix: map[string]*tcpproxy.Stats{}} }

// stats returns the counters of prefix, creating them on first use.
func (t *tcpStats) stats(prefix string) *tcpproxy.Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.byPrefix[prefix]
	if st == nil {
		st = new(tcpproxy.Stats)
		t.byPrefix[prefix] = st
	}
	return st
}

// TCPProxyStats reads the TCP proxies' counters: stat_prefix -> Envoy stat
// name (without "tcp.<stat_prefix>.") -> value.
func (s *Server) TCPProxyStats() map[string]map[string]uint64 {
	s.tcp.mu.Lock()
	defer s.tcp.mu.Unlock()
	out := make(map[string]map[string]uint64, len(s.tcp.byPrefix))
	for p, st := range s.tcp.byPrefix {
		out[p] = st.Snapshot()
	}
	return out
}

func tcpDesc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("outrigger_tcp_"+name, help, []string{"stat_prefix"}, nil)
}

var (
	descTCPCx          = tcpDesc("downstream_cx_total", "Connections handled by TCP proxies.")
	descTCPCxActive    = tcpDesc("downstream_cx_active", "TCP proxy connections open.")
	descTCPNoRoute     = tcpDesc("downstream_cx_no_route_total", "TCP proxy connections closed because their cluster is not defined.")
	descTCPRx          = tcpDesc("downstream_cx_rx_bytes_total", "Bytes read from TCP proxy downstreams.")
	descTCPTx          = tcpDesc("downstream_cx_tx_bytes_total", "Bytes written to TCP proxy downstreams.")
	descTCPIdle        = tcpDesc("idle_timeout_total", "TCP proxy connections closed by idle_timeout.")
	descTCPNoneHealthy = tcpDesc("upstream_cx_none_healthy_total", "TCP proxy connections closed because the cluster had no host to pick.")
	descTCPAttempts    = tcpDesc("upstream_cx_connect_attempts_exceeded_total", "TCP proxy connections closed after max_connect_attempts failed connects.")
)

func (t *tcpStats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descTCPCx, descTCPCxActive, descTCPNoRoute, descTCPRx, descTCPTx, descTCPIdle, descTCPNoneHealthy, descTCPAttempts} {
		ch <- d
	}
}

func (t *tcpStats) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	prefixes := slices.Sorted(maps.Keys(t.byPrefix))
	all := make([]*tcpproxy.Stats, len(prefixes))
	for i, p := range prefixes {
		all[i] = t.byPrefix[p]
	}
	t.mu.Unlock()
	counter := func(d *prometheus.Desc, v uint64, prefix string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), prefix)
	}
	for i, st := range all {
		p := prefixes[i]
		counter(descTCPCx, st.CxTotal.Load(), p)
		ch <- prometheus.MustNewConstMetric(descTCPCxActive, prometheus.GaugeValue, float64(max(st.CxActive.Load(), 0)), p)
		counter(descTCPNoRoute, st.CxNoRoute.Load(), p)
		counter(descTCPRx, st.RxBytes.Load(), p)
		counter(descTCPTx, st.TxBytes.Load(), p)
		counter(descTCPIdle, st.IdleTimeout.Load(), p)
		counter(descTCPNoneHealthy, st.NoneHealthy.Load(), p)
		counter(descTCPAttempts, st.ConnectAttemptsExceeded.Load(), p)
	}
}
