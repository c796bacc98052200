// Package router holds a route table in plain Go types and matches requests
// against it: virtual host by authority, then the first route whose match
// accepts the request. It never sees Envoy protos; proxy/snapshot converts
// RouteConfiguration into Config.
package router

import (
	"regexp"
	"time"
)

// Config is one route table (Envoy's RouteConfiguration).
type Config struct {
	Name         string
	VirtualHosts []VirtualHost
	Headers      HeaderEdits // applied after the route's and the virtual host's
}

// VirtualHost groups routes under a set of domains.
type VirtualHost struct {
	Name string
	// Domains as Envoy spells them: "example.com", "*.example.com",
	// "example.*", "*". Matching ignores a port on the request's authority
	// unless the domain itself names one.
	Domains []string
	Routes  []Route
	Headers HeaderEdits // applied after the route's
	// PerFilter is the typed_per_filter_config, by HTTP filter name, each
	// converted by the filter's package (see hcm.FilterInput.PerRoute).
	PerFilter map[string]any
}

// Route is one match and what to do when it hits. Exactly one of Forward,
// Direct and Redirect is set.
type Route struct {
	Name     string
	Match    Match
	Forward  *ForwardAction
	Direct   *DirectResponse
	Redirect *Redirect
	Headers  HeaderEdits
	// PerFilter is the route's typed_per_filter_config, by HTTP filter
	// name; it overrides the virtual host's entry of the same name.
	PerFilter map[string]any
}

// Match is a route's request predicate. Exactly one path specifier is set
// (Prefix may be "" meaning "/" when none of the others is set).
type Match struct {
	Prefix              string
	Path                string
	Regex               *regexp.Regexp // safe_regex: must match the whole path
	PathSeparatedPrefix string
	// CaseInsensitive inverts Envoy's case_sensitive (default true).
	CaseInsensitive bool
	Headers         []HeaderMatcher
	QueryParams     []QueryParamMatcher
	GRPC            bool // only requests with content-type application/grpc*
}

// StringMatcher is Envoy's StringMatcher: exactly one of the fields is set
// (Regex non-nil, or Kind naming the form).
type StringMatcher struct {
	Kind       StringMatchKind
	Value      string
	Regex      *regexp.Regexp
	IgnoreCase bool
}

// StringMatchKind says which form a StringMatcher takes.
type StringMatchKind uint8

const (
	StringExact StringMatchKind = iota
	StringPrefix
	StringSuffix
	StringContains
	StringRegex
)

// HeaderMatcher is Envoy's route.HeaderMatcher.
type HeaderMatcher struct {
	Name string // canonical lower-case header name
	// One of: String (string_match or the deprecated exact/prefix/... forms),
	// Present, Range.
	String  *StringMatcher
	Present *bool
	Range   *Int64Range
	Invert  bool
	// TreatMissingAsEmpty makes a missing header match as "".
	TreatMissingAsEmpty bool
}

// Int64Range is [Start, End).
type Int64Range struct{ Start, End int64 }

// QueryParamMatcher is Envoy's QueryParameterMatcher: String set, or
// Present true.
type QueryParamMatcher struct {
	Name    string
	String  *StringMatcher
	Present bool
}

// ForwardAction sends the request to a cluster (Envoy's RouteAction).
type ForwardAction struct {
	// Cluster, or WeightedClusters with their Weights summing to TotalWeight.
	Cluster          string
	WeightedClusters []WeightedCluster
	TotalWeight      uint32

	PrefixRewrite      string
	RegexRewrite       *RegexRewrite
	HostRewriteLiteral string
	AutoHostRewrite    bool

	// Timeout is the whole-request timeout (Envoy default 15s); 0 disables.
	Timeout time.Duration
	// IdleTimeout bounds the time without any stream activity (Envoy's
	// RouteAction.idle_timeout). A nonzero IdleTimeout replaces the
	// connection manager's stream_idle_timeout; a zero one inherits it,
	// unless IdleTimeoutSet says the route set 0s, which disables the idle
	// timeout for this route.
	IdleTimeout    time.Duration
	IdleTimeoutSet bool

	// Retry is the route's retry_policy (or its virtual host's); nil: no
	// retries.
	Retry *RetryPolicy
	// HedgeOnPerTryTimeout is hedge_policy.hedge_on_per_try_timeout: a
	// per-try timeout starts another attempt without cancelling the late
	// one, and the first good response wins.
	HedgeOnPerTryTimeout bool
	// HashPolicies are the route's hash_policy, in order (RING_HASH and
	// MAGLEV clusters).
	HashPolicies []HashPolicy

	// MaxStreamDuration is max_stream_duration.max_stream_duration: the
	// stream is reset after this long whatever it is doing; 0 disables.
	MaxStreamDuration time.Duration
	// GRPCTimeoutHeaderMax caps the timeout a grpc-timeout header asks for
	// (max_stream_duration.grpc_timeout_header_max); 0 leaves it uncapped.
	// GRPCTimeoutHeaderOffset is subtracted from it (…_offset).
	GRPCTimeoutHeaderMax    time.Duration
	GRPCTimeoutHeaderOffset time.Duration
	// RetryBufferLimit is per_request_buffer_limit_bytes (route, else
	// virtual host): how much of a request body is kept so a retry can
	// replay it; 0 means the default (1 MiB).
	RetryBufferLimit uint32
}

// RetryPolicy is Envoy's route.RetryPolicy.
type RetryPolicy struct {
	// On is retry_on: the conditions that make an attempt retriable.
	On RetryOn
	// NumRetries is num_retries (Envoy's default 1).
	NumRetries uint32
	// PerTryTimeout bounds one attempt, from when it has the whole request
	// until its response headers (Envoy stops it once the response starts
	// downstream); 0 disables. PerTryIdleTimeout resets an attempt with no
	// byte moving for that long, body included; 0 disables.
	PerTryTimeout     time.Duration
	PerTryIdleTimeout time.Duration
	// BackoffBase and BackoffMax are retry_back_off (Envoy's defaults
	// 25ms and 10 × base); the wait before retry n is a full-jitter pick
	// in [0, min(max, base × 2^(n-1))].
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// RetriableStatusCodes for RetryRetriableStatusCodes.
	RetriableStatusCodes []int
	// RetriableHeaders are response header matchers for
	// RetryRetriableHeaders; when RetriableRequestHeaders is not empty, a
	// request is retried only if at least one of them matches it (Envoy's
	// rule).

	RetriableHeaders        []HeaderMatcher
	RetriableRequestHeaders []HeaderMatcher
	// PreviousHosts is retry_host_predicate envoy.retry_host_predicates.previous_hosts;
	// HostSelectionMaxAttempts is host_selection_retry_max_attempts.
	PreviousHosts            bool
	HostSelectionMaxAttempts int

	matchers *retryMatchers // set by Compile
}

// RetryOn is a set of retry conditions (Envoy's retry_on tokens).
type RetryOn uint32

// The retry_on tokens. GRPC* read the grpc-status of a trailers-only or
// headers response.
const (
	Retry5xx                   RetryOn = 1 << iota // "5xx": any 5xx, connect failure or reset
	RetryGatewayError                              // "gateway-error": 502, 503, 504
	RetryReset                                     // "reset": no response (reset, disconnect, timeout before headers)
	RetryConnectFailure                            // "connect-failure"
	RetryRetriable4xx                              // "retriable-4xx": 409
	RetryRefusedStream                             // "refused-stream": HTTP/2 REFUSED_STREAM
	RetryRetriableStatusCodes                      // "retriable-status-codes"
	RetryRetriableHeaders                          // "retriable-headers"
	RetryGRPCCancelled                             // "cancelled"
	RetryGRPCDeadlineExceeded                      // "deadline-exceeded"
	RetryGRPCInternal                              // "internal"
	RetryGRPCResourceExhausted                     // "resource-exhausted"
	RetryGRPCUnavailable                           // "unavailable"
)

// HashPolicy is one route.RouteAction.HashPolicy entry.
type HashPolicy struct {
	Kind HashKind
	// Name is the header name (lower case), cookie name or query
	// parameter name.
	Name string
	// Terminal stops evaluating later policies once this one produced a
	// hash.
	Terminal bool
	// CookieGenerate, CookieTTL and CookiePath: when Kind is HashCookie,
	// the request has no such cookie and the policy has a ttl
	// (CookieGenerate), the proxy generates one (set on the response) so
	// the client sticks from then on; a ttl of 0 makes it a session
	// cookie, as in Envoy.
	CookieGenerate bool
	CookieTTL      time.Duration
	CookiePath     string
}

// HashKind says what a HashPolicy hashes.
type HashKind uint8

const (
	HashHeader HashKind = iota + 1
	HashCookie
	HashSourceIP
	HashQueryParam
)

// WeightedCluster is one leg of a weighted split.
type WeightedCluster struct {
	Name    string
	Weight  uint32
	Headers HeaderEdits // applied with the route's
}

// RegexRewrite replaces every match of Pattern in the path with Substitution
// (Go regexp syntax, \1 written as ${1} by the converter).
type RegexRewrite struct {
	Pattern      *regexp.Regexp
	Substitution string
}

// DirectResponse answers without an upstream.
type DirectResponse struct {
	Status int
	Body   []byte
}

// Redirect answers with a 3xx.
type Redirect struct {
	SchemeRedirect string // "" keeps the request's scheme
	HostRedirect   string
	PortRedirect   uint32
	PathRedirect   string
	PrefixRewrite  string
	StripQuery     bool
	HTTPSRedirect  bool
	Status         int // 301 (default), 302, 303, 307, 308
}

// HeaderEdits are Envoy's request/response headers_to_add/remove.
type HeaderEdits struct {
	RequestAdd     []HeaderValue
	RequestRemove  []string
	ResponseAdd    []HeaderValue
	ResponseRemove []string
}

// HeaderValue is one header to add. Append false overwrites (Envoy's
// OVERWRITE_IF_EXISTS_OR_ADD); AddIfAbsent only adds when missing.
type HeaderValue struct {
	Name        string
	Value       string
	Append      bool
	AddIfAbsent bool
}

// Empty reports whether there is nothing to do.
func (h *HeaderEdits) Empty() bool {
	return len(h.RequestAdd) == 0 && len(h.RequestRemove) == 0 &&
		len(h.ResponseAdd) == 0 && len(h.ResponseRemove) == 0
}
