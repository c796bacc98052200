// Package forward is the router filter's data path: it sends one request to
// an upstream endpoint, streams the body both ways, relays trailers and
// upgrades, and turns every failure into exactly one local reply. It is the
// only place that maps a proxy-side error to an HTTP status or a gRPC
// status.
package forward

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Response flags, as Envoy's access log spells them.
const (
	FlagNoRoute           = "NR"
	FlagNoCluster         = "NC"
	FlagNoHealthyUpstream = "UH"
	FlagUpstreamConnFail  = "UF"
	FlagUpstreamTimeout   = "UT"
	FlagUpstreamReset     = "UC"
	FlagDownstreamTerm    = "DC"
	FlagStreamIdleTimeout = "SI"
	FlagUpgradeFailed     = "UPE"
	FlagInvalidRequest    = "DPE"
	FlagLocalReset        = "LR"
	FlagUpstreamOverflow  = "UO"
)

// StatusClientClosed is nginx's 499: logged when the client went away
// before a response was sent. It is never written to the wire.
const StatusClientClosed = 499

// Reason is why the proxy itself answered or gave up.
type Reason uint8

const (
	ReasonNoRoute Reason = iota + 1
	ReasonNoCluster
	ReasonNoHealthyUpstream
	ReasonConnectFailure
	ReasonUpstreamTimeout
	ReasonUpstreamReset
	ReasonStreamIdleTimeout
	ReasonClientGone
	ReasonUpgradeRejected
	ReasonBadRequest
	ReasonRequestTimeout
	// ReasonOverflow: a circuit breaker threshold (max_requests,
	// max_pending_requests, max_connections) is full. The reply carries
	// x-envoy-overloaded: true.
	ReasonOverflow
)

// localReply is the one table from reason to what the client sees.
var localReply = [...]struct {
	status int
	grpc   int // grpc-status when the request is gRPC
	flag   string
	body   string
}{
	ReasonNoRoute:           {http.StatusNotFound, 12, FlagNoRoute, "route not found"},
	ReasonNoCluster:         {http.StatusServiceUnavailable, 14, FlagNoCluster, "cluster not found"},
	ReasonNoHealthyUpstream: {http.StatusServiceUnavailable, 14, FlagNoHealthyUpstream, "no healthy upstream"},
	ReasonConnectFailure:    {http.StatusServiceUnavailable, 14, FlagUpstreamConnFail, "upstream connect error or disconnect/reset before headers. reset reason: connection failure"},
	ReasonUpstreamTimeout:   {http.StatusGatewayTimeout, 4, FlagUpstreamTimeout, "upstream request timeout"},
	ReasonUpstreamReset:     {http.StatusBadGateway, 14, FlagUpstreamReset, "upstream connect error or disconnect/reset before headers. reset reason: connection termination"},
	ReasonStreamIdleTimeout: {http.StatusRequestTimeout, 4, FlagStreamIdleTimeout, "stream timeout"},
	ReasonClientGone:        {StatusClientClosed, 1, FlagDownstreamTerm, "client disconnected"},
	ReasonUpgradeRejected:   {http.StatusForbidden, 7, FlagUpgradeFailed, "upgrade not allowed"},
	ReasonBadRequest:        {http.StatusBadRequest, 13, FlagInvalidRequest, "bad request"},
	ReasonRequestTimeout:    {http.StatusRequestTimeout, 4, FlagLocalReset, "request timeout"},
	ReasonOverflow:          {http.StatusServiceUnavailable, 14, FlagUpstreamOverflow, "upstream connect error or disconnect/reset before headers. reset reason: overflow"},
}

// Status is the HTTP status a reason maps to.
func (r Reason) Status() int { return localReply[r].status }

// Flag is the access-log response flag of a reason.
func (r Reason) Flag() string { return localReply[r].flag }

// IsGRPC reports whether a request is gRPC (content-type application/grpc,
// optionally +proto, +json, ...).
func IsGRPC(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/grpc") &&
		(len(ct) == len("application/grpc") || ct[len("application/grpc")] == '+' || ct[len("application/grpc")] == ';')
}

// WriteLocalReply answers a request the proxy could not forward. gRPC
// requests get a trailers-only gRPC response (HTTP 200, grpc-status,
// grpc-message) so gRPC clients see a status and not a protocol error.
// Nothing is written for ReasonClientGone.
func WriteLocalReply(w http.ResponseWriter, r *http.Request, reason Reason, detail string) int {
	lr := localReply[reason]
	if reason == ReasonClientGone {
		return lr.status
	}
	msg := lr.body
	if detail != "" {
		msg = msg + ": " + detail
	}
	h := w.Header()
	if reason == ReasonOverflow {
		h["X-Envoy-Overloaded"] = overloaded
	}
	if IsGRPC(r) {
		h["Content-Type"] = []string{"application/grpc"}
		h["Grpc-Status"] = []string{strconv.Itoa(lr.grpc)}
		h["Grpc-Message"] = []string{GRPCPercentEncode(msg)}
		w.WriteHeader(http.StatusOK)
		return http.StatusOK
	}
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(len(msg) + 1)}
	w.WriteHeader(lr.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append([]byte(msg), '\n'))
	}
	return lr.status
}

var overloaded = []string{"true"}

// HTTPToGRPCStatus is Envoy's Grpc::Utility::httpToGrpcStatus (the gRPC
// project's HTTP-to-gRPC status mapping), for replies that must carry a
// gRPC status for an HTTP one (fault aborts, gRPC-Web).
func HTTPToGRPCStatus(status int) int {
	switch status {
	case http.StatusBadRequest:
		return 13 // INTERNAL
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusForbidden:
		return 7 // PERMISSION_DENIED
	case http.StatusNotFound:
		return 12 // UNIMPLEMENTED
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return 14 // UNAVAILABLE
	}
	return 2 // UNKNOWN
}

// GRPCPercentEncode encodes a grpc-message as the gRPC spec asks: bytes
// outside printable ASCII and '%' are percent-encoded.
func GRPCPercentEncode(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c <= 0x7e && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// Classifier says which Reason an upstream round-trip error is. The cluster
// package's typed errors plug in here (see Upstream).
type Classifier func(err error) (Reason, bool)

// classifyTimed is classify for an exchange under a stream timer: an
// upstream reset that lands once the route deadline has passed is the
// timeout, even when the upstream's own copy of that deadline (a forwarded
// grpc-timeout) fired a moment before our timer ran.
func classifyTimed(ctx, clientCtx context.Context, err error, cls Classifier, tm *streamTimer) Reason {
	reason := classify(ctx, clientCtx, err, cls)
	if reason == ReasonUpstreamReset && tm != nil && tm.routeExpired() {
		return ReasonUpstreamTimeout
	}
	return reason
}

// classify maps a failed round trip to a reason. Our own timers come first
// (the exchange's, then an attempt's per-try ones): when one fires it also
// unblocks the client's body read, which makes net/http cancel the client's
// context, so "client gone" is only true when no timer of ours ended the
// exchange. Then the transport's typed errors, and a reset for anything
// else.
func classify(ctx, clientCtx context.Context, err error, cls Classifier) Reason {
	switch cause := context.Cause(ctx); {
	case errors.Is(err, errStreamIdle) || cause == errStreamIdle:
		return ReasonStreamIdleTimeout
	case errors.Is(err, errRequestTimeout) || cause == errRequestTimeout:
		return ReasonRequestTimeout
	case errors.Is(err, errRouteTimeout) || cause == errRouteTimeout:
		return ReasonUpstreamTimeout
	case cause == errPerTryTimeout || cause == errPerTryIdle:
		// Envoy answers a last per-try timeout like the route's: 504 UT.
		return ReasonUpstreamTimeout
	}
	if clientCtx.Err() != nil {
		return ReasonClientGone
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ReasonUpstreamTimeout
	}
	if cls != nil {
		if r, ok := cls(err); ok {
			return r
		}
	}
	return ReasonUpstreamReset
}

// WriteReply answers a request on an HTTP filter's behalf (RBAC's 403,
// jwt_authn's 401, local_ratelimit's 429), shaped like WriteLocalReply: a
// gRPC request gets a trailers-only response (HTTP 200, grpc-status from
// HTTPToGRPCStatus(status), grpc-message body); anything else gets status
// and body as text/plain. Headers the filter set on w before calling stay
// (WWW-Authenticate, x-ratelimit-*). It returns the HTTP status written
// and the grpc-status ("" for a plain HTTP reply).
func WriteReply(w http.ResponseWriter, r *http.Request, status int, body string) (int, string) {
	h := w.Header()
	if IsGRPC(r) {
		gs := strconv.Itoa(HTTPToGRPCStatus(status))
		h["Content-Type"] = []string{"application/grpc"}
		h["Grpc-Status"] = []string{gs}
		h["Grpc-Message"] = []string{GRPCPercentEncode(body)}
		w.WriteHeader(http.StatusOK)
		return http.StatusOK, gs
	}
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, body)
	}
	return status, ""
}
