package telemetry

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DownstreamCounts are one listener's connection counters, as the listener
// keeps them.
type DownstreamCounts struct {
	Listener            string
	CxTotal             uint64
	CxActive            int64
	CxRejected          uint64 // no filter chain matched
	RqSmugglingRejected uint64 // 400 for ambiguous HTTP/1.1 framing
	RqHeadersTooLarge   uint64 // 431
	RqHeaderTimeouts    uint64 // request_headers_timeout
	CxFiltered          uint64 // closed by a network filter (RBAC, rate limit)
	// Filters are the HTTP and network filters' counters by Envoy's
	// statistic name (rbac.denied, fault.aborts_injected, ...).
	Filters map[string]uint64
}

// UpstreamCounts are one cluster's counters, as the cluster keeps them.
type UpstreamCounts struct {
	Cluster       string
	RqTotal       uint64
	RqActive      int64
	Rq5xx         uint64
	RqConnectFail uint64
	RqReset       uint64
	RqTimeout     uint64
	RqCanceled    uint64
	CxTotal       uint64
	CxActive      int64
	CxConnectFail uint64

	// RqTimeBuckets are the cumulative counts of upstream request times
	// per bound of LatencyBuckets, then the total (+Inf); RqTimeSum their
	// sum. Empty: no histogram.
	RqTimeBuckets []uint64
	RqTimeSum     time.Duration

	// Resilience: retries and circuit-breaker overflows.
	RqRetry           uint64
	RqRetrySuccess    uint64
	RqRetryOverflow   uint64
	RqPendingOverflow uint64
	CxOverflow        uint64

	// Outlier detection, when configured (Outlier true).
	Outlier           bool
	EjectionsActive   uint64
	EjectionsEnforced uint64
	EjectionsOverflow uint64
	// Active health checks, when configured (HealthChecked true).
	HealthChecked                              bool
	HCAttempt, HCSuccess, HCFailure, HCHealthy uint64
}

// SetSources names the functions that read the listeners' and clusters'
// counters at scrape time. Either may be nil.
func (m *Metrics) SetSources(down func() []DownstreamCounts, up func() []UpstreamCounts) {
	m.sources.mu.Lock()
	m.sources.down, m.sources.up = down, up
	m.sources.mu.Unlock()
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

var (
	descDownCx         = desc("downstream_cx_total", "Downstream connections accepted.", "listener")
	descDownCxActive   = desc("downstream_cx_active", "Downstream connections open.", "listener")
	descDownCxRejected = desc("downstream_cx_rejected_total", "Downstream connections closed because no filter chain matched.", "listener")
	descDownCxFiltered = desc("downstream_cx_filtered_total", "Downstream connections closed by a network filter (RBAC, local rate limit).", "listener")
	descFilterStat     = desc("listener_filter_total", "Filter counters by Envoy statistic name (rbac.denied, jwt_authn.allowed, fault.aborts_injected, ...), summed over the listener's chains.", "listener", "stat")
	descDownRqRejected = desc("downstream_rq_rejected_total", "Downstream requests refused by the listener, by reason.", "listener", "reason")

	descUpRq       = desc("upstream_rq_total", "Upstream requests sent.", "cluster")
	descUpRqActive = desc("upstream_rq_active", "Upstream requests in flight.", "cluster")
	descUpRq5xx    = desc("upstream_rq_5xx_total", "Upstream responses with a 5xx status.", "cluster")
	descUpRqTime   = desc("upstream_rq_duration_seconds", "Upstream request time (Envoy's upstream_rq_time): from sending the request to the end of its response or its failure, per attempt.", "cluster")
	descUpRqErr    = desc("upstream_rq_error_total", "Upstream requests that ended without a whole response, by kind.", "cluster", "kind")
	descUpCx       = desc("upstream_cx_total", "Upstream connections opened.", "cluster")
	descUpCxActive = desc("upstream_cx_active", "Upstream connections open.", "cluster")
	descUpCxFail   = desc("upstream_cx_connect_fail_total", "Upstream connection attempts that failed.", "cluster")

	descUpRetry         = desc("upstream_rq_retry_total", "Retries admitted by max_retries and the retry budget (counted when scheduled; one whose original answers during the backoff is never sent).", "cluster")
	descUpRetrySuccess  = desc("upstream_rq_retry_success_total", "Retries that succeeded.", "cluster")
	descUpRetryOverflow = desc("upstream_rq_retry_overflow_total", "Retries refused by max_retries or the retry budget.", "cluster")
	descUpPendingOver   = desc("upstream_rq_pending_overflow_total", "Requests refused by max_requests or max_pending_requests (503 UO).", "cluster")
	descUpCxOverflow    = desc("upstream_cx_overflow_total", "Times max_connections was reached and a request had to queue.", "cluster")

	descEjActive   = desc("outlier_ejections_active", "Hosts ejected by outlier detection now.", "cluster")
	descEjEnforced = desc("outlier_ejections_enforced_total", "Ejections done by outlier detection.", "cluster")
	descEjOverflow = desc("outlier_ejections_overflow_total", "Ejections refused by max_ejection_percent.", "cluster")
	descHCAttempt  = desc("health_check_attempt_total", "Active health checks started.", "cluster")
	descHCSuccess  = desc("health_check_success_total", "Active health checks passed.", "cluster")
	descHCFailure  = desc("health_check_failure_total", "Active health checks failed (network failures included).", "cluster")
	descHCHealthy  = desc("health_check_healthy", "Hosts passing every active health check.", "cluster")
)

// sourceCollector turns the sources' counts into metrics when scraped, so
// the hot path counts each thing once (in the building block's atomics).
type sourceCollector struct {
	mu   sync.Mutex
	down func() []DownstreamCounts
	up   func() []UpstreamCounts
}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDownCx, descDownCxActive, descDownCxRejected, descDownCxFiltered, descFilterStat, descDownRqRejected,
		descUpRq, descUpRqActive, descUpRq5xx, descUpRqTime, descUpRqErr, descUpCx, descUpCxActive, descUpCxFail,
		descUpRetry, descUpRetrySuccess, descUpRetryOverflow, descUpPendingOver, descUpCxOverflow,
		descEjActive, descEjEnforced, descEjOverflow, descHCAttempt, descHCSuccess, descHCFailure, descHCHealthy} {
		ch <- d
	}
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	down, up := c.down, c.up
	c.mu.Unlock()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(max(v, 0)), labels...)
	}
	if down != nil {
		for _, d := range down() {
			counter(descDownCx, d.CxTotal, d.Listener)
			gauge(descDownCxActive, d.CxActive, d.Listener)
			counter(descDownCxRejected, d.CxRejected, d.Listener)
			counter(descDownCxFiltered, d.CxFiltered, d.Listener)
			for _, name := range slices.Sorted(maps.Keys(d.Filters)) {
				if strings.HasSuffix(name, "active_faults") {
					continue // a gauge, not a count
				}
				counter(descFilterStat, d.Filters[name], d.Listener, name)
			}
			counter(descDownRqRejected, d.RqSmugglingRejected, d.Listener, "framing")
			counter(descDownRqRejected, d.RqHeadersTooLarge, d.Listener, "headers_too_large")
			counter(descDownRqRejected, d.RqHeaderTimeouts, d.Listener, "header_timeout")
		}
	}
	if up != nil {
		for _, u := range up() {
			counter(descUpRq, u.RqTotal, u.Cluster)
			gauge(descUpRqActive, u.RqActive, u.Cluster)
			counter(descUpRq5xx, u.Rq5xx, u.Cluster)
			if n := len(u.RqTimeBuckets); n == len(LatencyBuckets)+1 {
				buckets := make(map[float64]uint64, len(LatencyBuckets))
				for i, le := range LatencyBuckets {
					buckets[le] = u.RqTimeBuckets[i]
				}
				ch <- prometheus.MustNewConstHistogram(descUpRqTime, u.RqTimeBuckets[n-1], u.RqTimeSum.Seconds(), buckets, u.Cluster)
			}
			counter(descUpRqErr, u.RqConnectFail, u.Cluster, "connect_failure")
			counter(descUpRqErr, u.RqReset, u.Cluster, "reset")
			counter(descUpRqErr, u.RqTimeout, u.Cluster, "timeout")
			counter(descUpRqErr, u.RqCanceled, u.Cluster, "canceled")
			counter(descUpCx, u.CxTotal, u.Cluster)
			gauge(descUpCxActive, u.CxActive, u.Cluster)
			counter(descUpCxFail, u.CxConnectFail, u.Cluster)
			counter(descUpRetry, u.RqRetry, u.Cluster)
			counter(descUpRetrySuccess, u.RqRetrySuccess, u.Cluster)
			counter(descUpRetryOverflow, u.RqRetryOverflow, u.Cluster)
			counter(descUpPendingOver, u.RqPendingOverflow, u.Cluster)
			counter(descUpCxOverflow, u.CxOverflow, u.Cluster)
			if u.Outlier {
				gauge(descEjActive, int64(u.EjectionsActive), u.Cluster)
				counter(descEjEnforced, u.EjectionsEnforced, u.Cluster)
				counter(descEjOverflow, u.EjectionsOverflow, u.Cluster)
			}
			if u.HealthChecked {
				counter(descHCAttempt, u.HCAttempt, u.Cluster)
				counter(descHCSuccess, u.HCSuccess, u.Cluster)
				counter(descHCFailure, u.HCFailure, u.Cluster)
				gauge(descHCHealthy, int64(u.HCHealthy), u.Cluster)
			}
		}
	}
}

// XDSType is one subscribed xDS type's state, as the xDS client keeps it.
type XDSType struct {
	// Type is the short type name (listener, route, cluster, endpoint,
	// secret).
	Type               string
	Version            string
	Accepted, Rejected uint64
}

var (
	descXDSResponses = desc("xds_responses_total", "xDS responses per type, by result: accepted (ACKed) or rejected (NACKed, the last good configuration kept).", "type", "result")
	descXDSVersion   = desc("xds_version_info", "1 for the version_info in force per xDS type (delta streams: the last system_version_info, often empty).", "type", "version")
)

// xdsCollector reads the xDS client's state at scrape time.
type xdsCollector struct {
	mu   sync.Mutex
	read func() []XDSType
}

func (c *xdsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descXDSResponses
	ch <- descXDSVersion
}

func (c *xdsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	read := c.read
	c.mu.Unlock()
	if read == nil {
		return
	}
	for _, t := range read() {
		ch <- prometheus.MustNewConstMetric(descXDSResponses, prometheus.CounterValue, float64(t.Accepted), t.Type, "accepted")
		ch <- prometheus.MustNewConstMetric(descXDSResponses, prometheus.CounterValue, float64(t.Rejected), t.Type, "rejected")
		ch <- prometheus.MustNewConstMetric(descXDSVersion, prometheus.GaugeValue, 1, t.Type, t.Version)
	}
}

// SetXDSSource names the function that reads the xDS client's per-type
// state at scrape time (nil: no xDS metrics, a static bootstrap).
func (m *Metrics) SetXDSSource(read func() []XDSType) {
	m.xds.mu.Lock()
	m.xds.read = read
	m.xds.mu.Unlock()
}
