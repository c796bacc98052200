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
	if on&router.RetryRetriableHeaders != 0 {
		for i := range rp.RetriableHeaders {
			if matchHeader(&rp.RetriableHeaders[i], resp.Header, responsePseudo{resp}) {
				return true
			}
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
	for i := range rp.RetriableRequestHeaders {
		if matchHeader(&rp.RetriableRequestHeaders[i], r.Header, requestPseudo{r}) {
			return true
		}
	}
	return false
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

// pseudoValues supplies the pseudo-headers a matcher may name.
type pseudoValues interface {
	pseudo(name string) (string, bool)
}

type requestPseudo struct{ r *http.Request }

func (p requestPseudo) pseudo(name string) (string, bool) {
	r := p.r
	switch name {
	case ":authority", "host":
		return r.Host, r.Host != ""
	case ":method":
		if r.Method == "" {
			return http.MethodGet, true
		}
		return r.Method, true
	case ":path":
		if r.URL == nil {
			return "", false
		}
		return r.URL.RequestURI(), true
	case ":scheme":
		if r.URL != nil && r.URL.Scheme != "" {
			return r.URL.Scheme, true
		}
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	return "", false
}

type responsePseudo struct{ resp *http.Response }

func (p responsePseudo) pseudo(name string) (string, bool) {
	if name == ":status" {
		return strconv.Itoa(p.resp.StatusCode), true
	}
	return "", false
}

// matchHeader evaluates one router.HeaderMatcher against h as Envoy's
// HeaderUtility::matchHeaders does (router keeps its compiled matcher
// unexported). Regexes come anchored from proxy/snapshot, so MatchString
// is a full match.
func matchHeader(m *router.HeaderMatcher, h http.Header, ps pseudoValues) bool {
	name := strings.ToLower(m.Name)
	var v string
	var ok bool
	if strings.HasPrefix(name, ":") || name == "host" {
		v, ok = ps.pseudo(name)
	} else {
		switch vs := h[http.CanonicalHeaderKey(name)]; len(vs) {
		case 0:
		case 1:
			v, ok = vs[0], true
		default:
			v, ok = strings.Join(vs, ","), true
		}
	}
	if !ok && !m.TreatMissingAsEmpty {
		present := m.String == nil && m.Range == nil && (m.Present == nil || *m.Present)
		absent := m.String == nil && m.Range == nil && m.Present != nil && !*m.Present
		if m.Invert {
			return present
		}
		return absent
	}
	var match bool
	switch {
	case m.String != nil:
		match = matchString(m.String, v)
	case m.Range != nil:
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		match = err == nil && n >= m.Range.Start && n < m.Range.End
	case m.Present != nil:
		match = *m.Present
	default:
		match = true
	}
	return match != m.Invert
}

// matchString applies an Envoy StringMatcher; ignore_case folds ASCII only,
// as Envoy does.
func matchString(sm *router.StringMatcher, s string) bool {
	if sm.Regex != nil || sm.Kind == router.StringRegex {
		return sm.Regex != nil && sm.Regex.MatchString(s)
	}
	v, fold := sm.Value, sm.IgnoreCase
	switch sm.Kind {
	case router.StringExact:
		return len(s) == len(v) && hasPrefixFold(s, v, fold)
	case router.StringPrefix:
		return hasPrefixFold(s, v, fold)
	case router.StringSuffix:
		return len(s) >= len(v) && hasPrefixFold(s[len(s)-len(v):], v, fold)
	case router.StringContains:
		for i := 0; i+len(v) <= len(s); i++ {
			if hasPrefixFold(s[i:], v, fold) {
				return true
			}
		}
		return false
	}
	return false
}

// hasPrefixFold reports whether s starts with prefix, optionally ignoring
// ASCII case.
func hasPrefixFold(s, prefix string, fold bool) bool {
	if len(s) < len(prefix) {
		return false
	}
	if !fold {
		return s[:len(prefix)] == prefix
	}
	for i := 0; i < len(prefix); i++ {
		a, b := s[i], prefix[i]
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		if a != b {
			return false
		}
	}
	return true
}
