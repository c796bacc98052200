// Package fault is Envoy's HTTP fault injection filter
// (envoy.filters.http.fault): it delays requests, aborts them with a
// configured HTTP or gRPC status, or lets the client ask for either with
// x-envoy-fault-* headers, for the share of requests a percentage picks.
// It runs before the router filter, once the route and its cluster are
// known. It never sees Envoy protos: proxy/fault/faultxds converts
// HTTPFault into Config.
package fault

import (
	"errors"
	"fmt"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// Config is one HTTPFault: the filter's own configuration, or a route's
// override of it (typed_per_filter_config).
type Config struct {
	// Delay, when set, holds matching requests back before they go on.
	Delay *Delay
	// Abort, when set, answers matching requests with an error instead of
	// forwarding them. A request can be delayed and then aborted.
	Abort *Abort
	// UpstreamCluster limits faults to requests routed to this cluster
	// ("" = any cluster).
	UpstreamCluster string
	// Headers must all match the request for a fault to apply (Envoy's
	// route HeaderMatcher semantics, pseudo-headers :authority, :method,
	// :path and :scheme included).
	Headers []router.HeaderMatcher
	// DownstreamNodes limits faults to requests whose
	// x-envoy-downstream-service-node header names one of them (empty =
	// any request, with or without the header).
	DownstreamNodes []string
	// MaxActiveFaults caps the requests being delayed or aborted at one
	// time; a fault that would exceed it is not injected and counted in
	// faults_overflow. nil = unlimited; 0 injects nothing.
	MaxActiveFaults *uint32
}

// Delay is FaultDelay. Exactly one of Fixed (> 0) and FromHeader is set.
type Delay struct {
	// Fixed is fixed_delay.
	Fixed time.Duration
	// FromHeader is header_delay: the delay is the request's
	// x-envoy-fault-delay-request header in milliseconds; a request
	// without a valid one is not delayed. Percent is then further capped
	// by x-envoy-fault-delay-request-percentage.
	FromHeader bool
	// Percent is the share of matching requests to delay. Envoy's
	// default, when the proto leaves percentage unset, is 0 %.
	Percent Fraction
}

// AbortKind says where an abort's status comes from.
type AbortKind uint8

const (
	// AbortHTTP answers with HTTPStatus (http_status). gRPC requests get
	// the gRPC status Envoy maps it to (503 -> UNAVAILABLE, ...).
	AbortHTTP AbortKind = iota + 1
	// AbortGRPC answers with GRPCStatus (grpc_status) and HTTP 200.
	AbortGRPC
	// AbortHeader (header_abort) takes the HTTP status from
	// x-envoy-fault-abort-request ([200, 600)) or, when that header is
	// absent or invalid, the gRPC status from
	// x-envoy-fault-abort-grpc-request ([0, 16]); a request with neither
	// is not aborted. Percent is further capped by
	// x-envoy-fault-abort-request-percentage.
	AbortHeader
)

// Abort is FaultAbort.
type Abort struct {
	Kind       AbortKind
	HTTPStatus int // AbortHTTP: 200..599
	GRPCStatus int // AbortGRPC: 0..16
	// Percent is the share of matching requests to abort (Envoy's default
	// when unset: 0 %).
	Percent Fraction
	// Body is response_body; "" means Envoy's "fault filter abort". For
	// gRPC requests it is the grpc-message.
	Body string
}

// Fraction is Envoy's FractionalPercent: Numerator out of Denominator,
// which is 100, 10000 or 1000000. A numerator at or above the denominator
// means always.
type Fraction struct {
	Numerator   uint32
	Denominator uint32
}

// Percent is n out of 100.
func Percent(n uint32) Fraction { return Fraction{Numerator: n, Denominator: 100} }

// DefaultAbortBody is what an abort says when Body is empty.
const DefaultAbortBody = "fault filter abort"

// ErrInvalidConfig is matched (errors.Is) by every error Validate returns.
var ErrInvalidConfig = errors.New("invalid fault configuration")

// ConfigError is a rejected Config. Field is the path of the offending
// field relative to the HTTPFault, with Envoy's field names (e.g.
// "abort.http_status"), so the converter can prefix its own path.
type ConfigError struct {
	Field string
	Msg   string
	Err   error // underlying cause (a regexp error); may be nil
}

func (e *ConfigError) Error() string {
	s := e.Msg
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap lets errors.Is find both ErrInvalidConfig and the cause.
func (e *ConfigError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalidConfig}
	}
	return []error{ErrInvalidConfig, e.Err}
}

func cfgErr(field, format string, args ...any) *ConfigError {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Validate reports the first problem of c as a *ConfigError. Pure.
func (c *Config) Validate() error {
	if c == nil {
		return cfgErr("", "no fault configuration")
	}
	if d := c.Delay; d != nil {
		switch {
		case d.FromHeader && d.Fixed != 0:
			return cfgErr("delay", "only one of fixed_delay and header_delay may be set")
		case !d.FromHeader && d.Fixed <= 0:
			return cfgErr("delay.fixed_delay", "must be greater than 0 (or use header_delay)")
		}
		if err := d.Percent.check("delay.percentage"); err != nil {
			return err
		}
	}
	if a := c.Abort; a != nil {
		switch a.Kind {
		case AbortHTTP:
			if !validHTTPStatus(a.HTTPStatus) {
				return cfgErr("abort.http_status", "%d is not a valid HTTP status (200-599)", a.HTTPStatus)
			}
			if a.GRPCStatus != 0 {
				return cfgErr("abort", "only one of http_status, grpc_status and header_abort may be set")
			}
		case AbortGRPC:
			if !validGRPCStatus(a.GRPCStatus) {
				return cfgErr("abort.grpc_status", "%d is not a gRPC status code (0-16)", a.GRPCStatus)
			}
			if a.HTTPStatus != 0 {
				return cfgErr("abort", "only one of http_status, grpc_status and header_abort may be set")
			}
		case AbortHeader:
			if a.HTTPStatus != 0 || a.GRPCStatus != 0 {
				return cfgErr("abort", "only one of http_status, grpc_status and header_abort may be set")
			}
		default:
			return cfgErr("abort", "one of http_status, grpc_status and header_abort is required")
		}
		if err := a.Percent.check("abort.percentage"); err != nil {
			return err
		}
	}
	if _, err := compileHeaders(c.Headers); err != nil {
		return err
	}
	return nil
}

// compileHeaders compiles the header matchers with the router's own
// matcher (one implementation of Envoy's header matching), its errors as
// ours.
func compileHeaders(hms []router.HeaderMatcher) (router.HeaderMatchers, error) {
	ms, err := router.CompileHeaderMatchers("headers", hms)
	var re *router.ConfigError
	if errors.As(err, &re) {
		return ms, &ConfigError{Field: re.Field, Msg: re.Msg, Err: re.Err}
	}
	return ms, err
}

func (f Fraction) check(field string) error {
	switch f.Denominator {
	case 100, 10000, 1000000:
		return nil
	}
	return cfgErr(field+".denominator", "%d is not one of 100, 10000 and 1000000", f.Denominator)
}

func validHTTPStatus(s int) bool { return s >= 200 && s <= 599 }

func validGRPCStatus(s int) bool { return s >= 0 && s <= 16 }
