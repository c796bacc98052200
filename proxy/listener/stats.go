package listener

import "sync/atomic"

// stats are the listener's counters, updated on the hot path with atomics.
type stats struct {
	cxTotal           atomic.Uint64
	cxActive          atomic.Int64
	cxRejected        atomic.Uint64
	smugglingRejected atomic.Uint64
	headersTooLarge   atomic.Uint64
	headerTimeouts    atomic.Uint64
	tlsHandshakeErrs  atomic.Uint64
	acceptErrors      atomic.Uint64
	tcpConns          atomic.Uint64
	cxFiltered        atomic.Uint64
	origDstRestored   atomic.Uint64
	origDstErrors     atomic.Uint64
}

// Stats is a point-in-time copy of a listener's counters, named after
// Envoy's listener and HTTP connection manager statistics.
type Stats struct {
	// DownstreamCxTotal counts accepted connections.
	DownstreamCxTotal uint64
	// DownstreamCxActive is the number of open connections.
	DownstreamCxActive int64
	// DownstreamCxRejected counts connections closed because no filter
	// chain matched them (Envoy: no_filter_chain_match).
	DownstreamCxRejected uint64
	// RqSmugglingRejected counts HTTP/1.1 requests refused with 400 for
	// ambiguous framing (Content-Length with Transfer-Encoding, ...).
	RqSmugglingRejected uint64
	// RqHeadersTooLarge counts requests refused with 431 by the listener's
	// exact header limit (net/http's own 431s beyond its slack are not seen).
	RqHeadersTooLarge uint64
	// RqHeaderTimeouts counts HTTP/1.1 connections cut off while a header
	// block was incomplete (request_headers_timeout).
	RqHeaderTimeouts uint64
	// TLSHandshakeErrors counts failed TLS handshakes (no-chain ones too).
	TLSHandshakeErrors uint64
	// AcceptErrors counts temporary accept errors that were retried.
	AcceptErrors uint64
	// TCPConns counts connections handed to a TCP handler (the TCP proxy
	// counts its own in detail).
	TCPConns uint64
	// CxFiltered counts connections a network filter refused (RBAC,
	// local rate limit; each filter counts its own reasons too).
	CxFiltered uint64
	// OriginalDstRestored counts connections whose original destination
	// the original_dst listener filter restored (they were redirected);
	// OriginalDstErrors those whose original destination could not be
	// read (they kept the listener's address).
	OriginalDstRestored uint64
	OriginalDstErrors   uint64
}

// Stats returns the listener's counters.
func (l *Listener) Stats() Stats {
	s := &l.stats
	return Stats{
		DownstreamCxTotal:    s.cxTotal.Load(),
		DownstreamCxActive:   s.cxActive.Load(),
		DownstreamCxRejected: s.cxRejected.Load(),
		RqSmugglingRejected:  s.smugglingRejected.Load(),
		RqHeadersTooLarge:    s.headersTooLarge.Load(),
		RqHeaderTimeouts:     s.headerTimeouts.Load(),
		TLSHandshakeErrors:   s.tlsHandshakeErrs.Load(),
		AcceptErrors:         s.acceptErrors.Load(),
		TCPConns:             s.tcpConns.Load(),
		CxFiltered:           s.cxFiltered.Load(),
		OriginalDstRestored:  s.origDstRestored.Load(),
		OriginalDstErrors:    s.origDstErrors.Load(),
	}
}
