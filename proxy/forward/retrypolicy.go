package forward

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// This file holds the retry policy's pure predicates, after Envoy's
// RetryStateImpl: which responses and failures retry_on makes retriable,
// the request-header gate, the backoff, and the response flags.

// Envoy's retry_back_off defaults.
const (
	defaultBackoffBase = 25 * time.Millisecond
	backoffMaxFactor   = 10
)

// The gRPC status codes retry_on can name.
const (
	grpcCancelled         = 1
	grpcDeadlineExceeded  = 4
	grpcResourceExhausted = 8
	grpcInternal          = 13
	grpcUnavailable       = 14
)

// retryOnNoResponse are the conditions that retry an attempt that got no
// response at all (reset, disconnect, timeout before headers): Envoy counts
// such a failure as a 5xx and as a gateway error.
const retryOnNoResponse = router.Retry5xx | router.RetryGatewayError | router.RetryReset

// retriableResponse reports whether retry_on makes resp retriable
// (Envoy's wouldRetryFromHeaders).
func retriableResponse(rp *router.RetryPolicy, resp *http.Response) bool {
	on := rp.On
	if _, ok := resp.Header["X-Envoy-Ratelimited"]; ok {
		// An upstream Envoy rate-limited us: only envoy-ratelimited,
		// which we do not implement, retries that.
		return false
	}
	code := resp.StatusCode
	switch {
	case on&router.Retry5xx != 0 && code >= 500 && code <= 599:
		return true
	case on&router.RetryGatewayError != 0 && code >= 502 && code <= 504:
		return true
	case on&router.RetryRetriable4xx != 0 && code == http.StatusConflict:
		return true
	}
	if on&router.RetryRetriableStatusCodes != 0 {
		for _, c := range rp.RetriableStatusCodes {
			if c == code {
				return true
			}
		}
	}
	if on&router.RetryRetriableHeaders != 0 && len(rp.RetriableHeaders) > 0 {
		if m, _ := rp.Matchers(); m.MatchAnyResponse(resp.Header, resp.StatusCode) {
			return true
		}
	}
	const grpcOn = router.RetryGRPCCancelled | router.RetryGRPCDeadlineExceeded |
		router.RetryGRPCResourceExhausted | router.RetryGRPCInternal | router.RetryGRPCUnavailable
	if on&grpcOn != 0 {
		// Only a trailers-only response carries grpc-status in its
		// headers; a status in the trailers comes too late to retry.
		if gs := resp.Header["Grpc-Status"]; len(gs) > 0 {
			switch n, err := strconv.Atoi(gs[0]); {
			case err != nil:
			case n == grpcCancelled && on&router.RetryGRPCCancelled != 0,
				n == grpcDeadlineExceeded && on&router.RetryGRPCDeadlineExceeded != 0,
				n == grpcResourceExhausted && on&router.RetryGRPCResourceExhausted != 0,
				n == grpcInternal && on&router.RetryGRPCInternal != 0,
				n == grpcUnavailable && on&router.RetryGRPCUnavailable != 0:
				return true
			}
		}
	}
	return false
}

// retriableFailure reports whether retry_on makes an attempt that failed
// without a response retriable (Envoy's wouldRetryFromReset). Overflow is
// never retried: the breakers are the cluster's, not the host's.
func retriableFailure(on router.RetryOn, reason Reason, err error) bool {
	switch reason {
	case ReasonConnectFailure:
		return on&(retryOnNoResponse|router.RetryConnectFailure) != 0
	case ReasonUpstreamReset, ReasonUpstreamTimeout:
		if on&retryOnNoResponse != 0 {
			return true
		}
		return on&router.RetryRefusedStream != 0 && isRefusedStream(err)
	}
	return false
}

// h2StreamError mirrors net/http's HTTP/2 stream error: its As method
// converts into any struct with the same field names and convertible types
// (how x/net/http2 recognises it), so errors.As can read the code.
type h2StreamError struct {
	StreamID uint32
	Code     uint32
	Cause    error
}

func (e h2StreamError) Error() string { return "http2 stream error" }

// h2RefusedStream is HTTP/2's REFUSED_STREAM error code.
const h2RefusedStream = 0x7

// isRefusedStream reports whether an HTTP/2 upstream refused the stream
// (RST_STREAM REFUSED_STREAM): the request was not processed. net/http's
// HTTP/2 transport replays such a request itself when it has no body or
// has not sent it; otherwise it reports the error wrapped in text only,
// which is why the message is checked too.
func isRefusedStream(err error) bool {
	var se h2StreamError
	if errors.As(err, &se) {
		return se.Code == h2RefusedStream
	}
	return err != nil && strings.Contains(err.Error(), "REFUSED_STREAM")
}

// requestRetriable applies retriable_request_headers: with none, every
// request may be retried; otherwise at least one must match (Envoy's
// RetryStateImpl enables retries when any of them matches).
func requestRetriable(rp *router.RetryPolicy, r *http.Request) bool {
	if len(rp.RetriableRequestHeaders) == 0 {
		return true
	}
	_, m := rp.Matchers()
	return m.MatchAny(r)
}

// backoff is the wait before retry n (1 for the first): a full-jitter pick
// in [0, min(max, base × 2^(n-1))]. rnd(k) returns a value in [0, k).
func backoff(n int, base, max time.Duration, rnd func(int64) int64) time.Duration {
	if base <= 0 {
		base = defaultBackoffBase
	}
	if max <= 0 {
		max = backoffMaxFactor * base
	}
	c := max
	if n < 1 {
		n = 1
	}
	if n-1 < 62 && base <= max>>(n-1) {
		c = base << (n - 1)
	}
	return time.Duration(rnd(int64(c) + 1))
}

// jitter is the randomness behind backoff (a variable for tests).
var jitter = func(n int64) int64 { return rand.Int64N(n) }

// Response flags a retry adds to the one a failure sets.
const (
	FlagRetryLimitExceeded = "URX"
)

// envoyFlagOrder is the order Envoy prints response flags in (its
// ResponseFlag enum), for the ones forwarding can combine.
var envoyFlagOrder = [...]string{
	FlagNoHealthyUpstream, FlagUpstreamTimeout, FlagLocalReset, FlagUpstreamConnFail,
	FlagUpstreamReset, FlagUpstreamOverflow, FlagNoRoute, FlagDownstreamTerm,
	FlagRetryLimitExceeded, FlagStreamIdleTimeout, FlagInvalidRequest, FlagUpgradeFailed, FlagNoCluster,
}

// joinFlags adds UO (a retry the breakers refused) and URX (a retriable
// attempt with no retries left) to base, comma-separated in Envoy's order.
func joinFlags(base string, overflow, limit bool) string {
	if !overflow && !limit {
		return base
	}
	var b strings.Builder
	for _, f := range envoyFlagOrder {
		if f == base || (overflow && f == FlagUpstreamOverflow) || (limit && f == FlagRetryLimitExceeded) {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(f)
		}
	}
	return b.String()
}
