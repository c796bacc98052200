package cluster

import (
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/outlier"
)

// Connections the cluster does not pool itself — the TCP proxy's, one
// upstream connection per downstream one — are still the cluster's: as in
// Envoy they count in its upstream_cx_* statistics and against its
// max_connections circuit breaker, and their connect outcomes feed outlier
// detection. The TCP proxy dials them and reports through these hooks.

// ConnectTimeout is the cluster's connect_timeout (Envoy's default 5s when
// unset): the budget for TCP connect and TLS handshake together.
func (c *Cluster) ConnectTimeout() time.Duration { return c.cfg.Load().connectTimeout() }

// AdmitConnection reports whether the max_connections circuit breaker
// allows one more upstream connection; when it does not, it counts
// upstream_cx_overflow. The check and the later ConnectionOpened are not
// one atomic step: concurrent connects may overshoot the threshold by a
// few, as Envoy's per-worker accounting can.
func (c *Cluster) AdmitConnection() bool {
	if c.stats.CxActive.Load() >= int64(c.cfg.Load().Thresholds.maxConnections()) {
		c.stats.CxOverflow.Add(1)
		return false
	}
	return true
}

// ConnectionOpened counts a connection to h (upstream_cx_total and
// upstream_cx_active, on the cluster and on h) and reports the successful
// connect to outlier detection (Envoy's LOCAL_ORIGIN_CONNECT_SUCCESS_FINAL,
// which counts as a 200). Call the returned function once, when the
// connection closes.
func (c *Cluster) ConnectionOpened(h *Host) (closed func()) {
	c.stats.CxTotal.Add(1)
	c.stats.CxActive.Add(1)
	h.Stats.CxTotal.Add(1)
	h.Stats.CxActive.Add(1)
	if d := c.outlier.Load(); d != nil {
		d.Report(h, outlier.Outcome{Status: 200})
	}
	return func() {
		c.stats.CxActive.Add(-1)
		h.Stats.CxActive.Add(-1)
	}
}

// ConnectionFailed counts a failed connect to h (upstream_cx_connect_fail,
// and upstream_cx_connect_timeout when timeout is set, on the cluster; the
// host's cx_connect_fail) and reports a local-origin connect failure to
// outlier detection.
func (c *Cluster) ConnectionFailed(h *Host, timeout bool) {
	c.stats.CxConnectFail.Add(1)
	if timeout {
		c.stats.CxConnectTimeout.Add(1)
	}
	h.Stats.CxConnectFail.Add(1)
	if d := c.outlier.Load(); d != nil {
		d.Report(h, outlier.Outcome{Local: outlier.LocalConnectFailure})
	}
}
