package cluster

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
)

// Stats are a cluster's counters, named after Envoy's upstream_* stats.
type Stats struct {
	RqTotal           atomic.Uint64 // upstream_rq_total
	RqActive          atomic.Int64  // upstream_rq_active
	RqCompleted       atomic.Uint64 // upstream_rq_completed: a response, body to the end
	Rq5xx             atomic.Uint64 // upstream_rq_5xx
	RqConnectFail     atomic.Uint64 // requests that found no connection (503, UF)
	RqReset           atomic.Uint64 // upstream_rq_rx_reset (502, UC)
	RqTimeout         atomic.Uint64 // upstream_rq_timeout (504, UT)
	RqCanceled        atomic.Uint64 // upstream_rq_tx_reset: the downstream left (DC)
	CxTotal           atomic.Uint64 // upstream_cx_total
	CxActive          atomic.Int64  // upstream_cx_active
	CxConnectFail     atomic.Uint64 // upstream_cx_connect_fail
	CxConnectTimeout  atomic.Uint64 // upstream_cx_connect_timeout
	RqRetry           atomic.Uint64 // upstream_rq_retry
	RqRetrySuccess    atomic.Uint64 // upstream_rq_retry_success
	RqRetryOverflow   atomic.Uint64 // upstream_rq_retry_overflow
	RqRetryActive     atomic.Int64  // retries in flight (the budget's numerator)
	RqPendingOverflow atomic.Uint64 // upstream_rq_pending_overflow: max_requests/max_pending_requests full
	CxOverflow        atomic.Uint64 // upstream_cx_overflow
	// RqTime: upstream_rq_time, from sending a request to the end of its
	// response or its failure.
	RqTime RqTime
}

// StatsSnapshot is Stats read at one moment, with Envoy's stat names.
type StatsSnapshot map[string]uint64

// Snapshot reads the counters under their Envoy names (without the
// "cluster.<name>." prefix).
func (s *Stats) Snapshot() StatsSnapshot {
	return StatsSnapshot{
		"upstream_rq_total":            s.RqTotal.Load(),
		"upstream_rq_active":           uint64(max(s.RqActive.Load(), 0)),
		"upstream_rq_completed":        s.RqCompleted.Load(),
		"upstream_rq_5xx":              s.Rq5xx.Load(),
		"upstream_rq_connect_fail":     s.RqConnectFail.Load(),
		"upstream_rq_rx_reset":         s.RqReset.Load(),
		"upstream_rq_timeout":          s.RqTimeout.Load(),
		"upstream_rq_tx_reset":         s.RqCanceled.Load(),
		"upstream_cx_total":            s.CxTotal.Load(),
		"upstream_cx_active":           uint64(max(s.CxActive.Load(), 0)),
		"upstream_cx_connect_fail":     s.CxConnectFail.Load(),
		"upstream_cx_connect_timeout":  s.CxConnectTimeout.Load(),
		"upstream_rq_retry":            s.RqRetry.Load(),
		"upstream_rq_retry_success":    s.RqRetrySuccess.Load(),
		"upstream_rq_retry_overflow":   s.RqRetryOverflow.Load(),
		"upstream_rq_pending_overflow": s.RqPendingOverflow.Load(),
		"upstream_cx_overflow":         s.CxOverflow.Load(),
	}
}

// HostSnapshot is one host for the admin /clusters page.
type HostSnapshot struct {
	Address       string
	Hostname      string
	Weight        uint32
	Health        string // "healthy" or Envoy's "/failed_..." flags
	CxActive      int64
	CxConnectFail uint64
	CxTotal       uint64
	RqActive      int64
	RqError       uint64
	RqSuccess     uint64
	RqTimeout     uint64
	RqTotal       uint64

	Priority uint32
	Locality string // "region/zone/sub_zone", "" for none
	// Outlier detection: -1 when not computed, as Envoy prints them.
	SuccessRate            float64
	LocalOriginSuccessRate float64
	Ejections              uint32
	// ActiveHC is the last active health check failure, "" when none.
	LastHCFailure string
}

// Snapshot is a cluster for the admin /clusters page.
type Snapshot struct {
	Name      string
	Discovery Discovery
	Stats     StatsSnapshot
	Hosts     []HostSnapshot
}

// Snapshot reads the cluster's hosts and counters.
func (c *Cluster) Snapshot() Snapshot {
	s := Snapshot{Name: c.name, Discovery: c.cfg.Load().Discovery, Stats: c.stats.Snapshot()}
	hosts := c.Hosts()
	s.Hosts = make([]HostSnapshot, len(hosts))
	od, hc := c.outlier.Load(), c.hc.Load()
	if od != nil {
		st := od.Stats()
		for k, v := range st.Map() {
			s.Stats["outlier_detection."+k] = v
		}
	}
	if hc != nil {
		for k, v := range hc.Stats().Map() {
			s.Stats[k] = v
		}
	}
	for i, h := range hosts {
		s.Hosts[i] = HostSnapshot{
			Address:       h.Address,
			Hostname:      h.Hostname,
			Weight:        h.Weight(),
			Health:        h.HealthString(),
			CxActive:      h.Stats.CxActive.Load(),
			CxConnectFail: h.Stats.CxConnectFail.Load(),
			CxTotal:       h.Stats.CxTotal.Load(),
			RqActive:      h.Stats.RqActive.Load(),
			RqError:       h.Stats.RqError.Load(),
			RqSuccess:     h.Stats.RqSuccess.Load(),
			RqTimeout:     h.Stats.RqTimeout.Load(),
			RqTotal:       h.Stats.RqTotal.Load(),

			Priority:               h.Priority,
			Locality:               h.Locality,
			SuccessRate:            -1,
			LocalOriginSuccessRate: -1,
		}
		if od != nil {
			info := od.Host(h)
			s.Hosts[i].SuccessRate = info.SuccessRate
			s.Hosts[i].LocalOriginSuccessRate = info.LocalOriginSuccessRate
			s.Hosts[i].Ejections = info.EjectionCount
		}
		if hc != nil {
			s.Hosts[i].LastHCFailure = hc.Host(h).LastFailure
		}
	}
	return s
}

// WriteText writes the snapshot in the text format of Envoy's admin
// /clusters: one "cluster::host::stat::value" line per host stat.
func (s *Snapshot) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	line := func(parts ...string) {
		for i, p := range parts {
			if i > 0 {
				bw.WriteString("::")
			}
			bw.WriteString(p)
		}
		bw.WriteByte('\n')
	}
	i := func(v int64) string { return strconv.FormatInt(v, 10) }
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	line(s.Name, "observability_name", s.Name)
	for _, h := range s.Hosts {
		a := h.Address
		line(s.Name, a, "cx_active", i(h.CxActive))
		line(s.Name, a, "cx_connect_fail", u(h.CxConnectFail))
		line(s.Name, a, "cx_total", u(h.CxTotal))
		line(s.Name, a, "rq_active", i(h.RqActive))
		line(s.Name, a, "rq_error", u(h.RqError))
		line(s.Name, a, "rq_success", u(h.RqSuccess))
		line(s.Name, a, "rq_timeout", u(h.RqTimeout))
		line(s.Name, a, "rq_total", u(h.RqTotal))
		line(s.Name, a, "hostname", h.Hostname)
		line(s.Name, a, "health_flags", h.Health)
		line(s.Name, a, "weight", u(uint64(h.Weight)))
		region, zone, subZone := splitLocality(h.Locality)
		line(s.Name, a, "region", region)
		line(s.Name, a, "zone", zone)
		line(s.Name, a, "sub_zone", subZone)
		line(s.Name, a, "canary", "false")
		line(s.Name, a, "priority", u(uint64(h.Priority)))
		line(s.Name, a, "success_rate", rate(h.SuccessRate))
		line(s.Name, a, "local_origin_success_rate", rate(h.LocalOriginSuccessRate))
		if h.Ejections > 0 {
			line(s.Name, a, "outlier_ejections", u(uint64(h.Ejections)))
		}
		if h.LastHCFailure != "" {
			line(s.Name, a, "last_hc_failure", h.LastHCFailure)
		}
	}
	return bw.Flush()
}

// splitLocality undoes Endpoint.Locality's "region/zone/sub_zone".
func splitLocality(l string) (region, zone, subZone string) {
	region, rest, _ := strings.Cut(l, "/")
	zone, subZone, _ = strings.Cut(rest, "/")
	return region, zone, subZone
}

// rate prints a success rate as Envoy does: -1 when not computed.
func rate(v float64) string {
	if v < 0 {
		return "-1"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// WriteText writes every cluster, sorted by name, in the text format of
// Envoy's admin /clusters.
func (m *Manager) WriteText(w io.Writer) error {
	for _, c := range m.Clusters() {
		s := c.Snapshot()
		if err := s.WriteText(w); err != nil {
			return err
		}
	}
	return nil
}
