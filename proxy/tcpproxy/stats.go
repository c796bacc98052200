package tcpproxy

import "sync/atomic"

// Stats are the counters of one stat_prefix, Envoy's tcp.<stat_prefix>.*
// statistics. Filters with the same prefix may share one Stats (Deps.Stats),
// so the counters outlive a listener update, as Envoy's do.
//
// Bytes are counted as they are copied; between two TCP sockets splice
// moves up to spliceChunk bytes between two updates, so a busy connection's
// byte counters lag by at most that much.
type Stats struct {
	CxTotal     atomic.Uint64 // downstream_cx_total
	CxActive    atomic.Int64  // downstream_cx_active (ours; Envoy has it per listener only)
	CxNoRoute   atomic.Uint64 // downstream_cx_no_route: the cluster is not defined
	RxBytes     atomic.Uint64 // downstream_cx_rx_bytes_total: read from the downstream
	TxBytes     atomic.Uint64 // downstream_cx_tx_bytes_total: written to the downstream
	IdleTimeout atomic.Uint64 // idle_timeout
	// Envoy counts these two on the cluster; here they are the filter's.
	NoneHealthy             atomic.Uint64 // upstream_cx_none_healthy: no host to pick
	ConnectAttemptsExceeded atomic.Uint64 // upstream_cx_connect_attempts_exceeded
}

// Snapshot reads the counters under their Envoy names (without the
// "tcp.<stat_prefix>." prefix).
func (s *Stats) Snapshot() map[string]uint64 {
	return map[string]uint64{
		"downstream_cx_total":                   s.CxTotal.Load(),
		"downstream_cx_active":                  uint64(max(s.CxActive.Load(), 0)),
		"downstream_cx_no_route":                s.CxNoRoute.Load(),
		"downstream_cx_rx_bytes_total":          s.RxBytes.Load(),
		"downstream_cx_tx_bytes_total":          s.TxBytes.Load(),
		"idle_timeout":                          s.IdleTimeout.Load(),
		"upstream_cx_none_healthy":              s.NoneHealthy.Load(),
		"upstream_cx_connect_attempts_exceeded": s.ConnectAttemptsExceeded.Load(),
	}
}
