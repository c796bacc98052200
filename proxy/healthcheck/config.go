// Package healthcheck runs Envoy's active health checks (HTTP, gRPC and TCP)
// against a cluster's upstream hosts and takes failing hosts out of load
// balancing through lb.FailedActiveHC. It never sees Envoy protos:
// proxy/snapshot converts core.v3.HealthCheck into Config, keeping Envoy's
// field names and defaults.
package healthcheck

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Config is one health checker of a cluster (one core.v3.HealthCheck). A
// zero duration means "unset": Validate rejects an unset Timeout or Interval
// (Envoy requires them) and New fills the others with Envoy's defaults.
type Config struct {
	// Timeout bounds one check: connect, request and response. Required.
	Timeout time.Duration
	// Interval is the time between checks of a healthy host. Required.
	Interval time.Duration
	// InitialJitter delays a host's first check by a random time in
	// [0, InitialJitter). 0 checks at once.
	InitialJitter time.Duration
	// IntervalJitter adds a random time in [0, IntervalJitter) to every wait.
	IntervalJitter time.Duration
	// IntervalJitterPercent adds a random time in [0, wait*percent/100) to
	// every wait, on top of IntervalJitter (as Envoy computes it, the percent
	// is of the interval chosen for that wait, not of Interval).
	IntervalJitterPercent uint32
	// UnhealthyThreshold consecutive failures make a healthy host unhealthy.
	// Only network failures and timeouts (and HTTP RetriableStatuses) count
	// towards it: any other failed check (an HTTP status outside
	// ExpectedStatuses and RetriableStatuses, a gRPC answer other than
	// SERVING) makes the host unhealthy at once, as in Envoy. At least 1.
	UnhealthyThreshold uint32
	// HealthyThreshold consecutive successes make an unhealthy host healthy.
	// A host's very first check needs only one success, as in Envoy. At
	// least 1.
	HealthyThreshold uint32
	// NoTrafficInterval is the wait while the cluster has never carried
	// traffic (Options.HasTraffic reports false); it takes precedence over
	// every other interval. Default 60s.
	NoTrafficInterval time.Duration
	// NoTrafficHealthyInterval replaces NoTrafficInterval for a host that
	// passes its checks. Default NoTrafficInterval.
	NoTrafficHealthyInterval time.Duration
	// UnhealthyInterval is the wait after a failed check. Default Interval.
	UnhealthyInterval time.Duration
	// UnhealthyEdgeInterval is the wait after a failed check that did not yet
	// make a healthy host unhealthy (below UnhealthyThreshold). Default
	// UnhealthyInterval. Envoy's docs say "right after a host is marked
	// unhealthy"; its code (since 2018) applies it while the change is
	// pending, and this package follows the code.
	UnhealthyEdgeInterval time.Duration
	// HealthyEdgeInterval is the wait after a successful check that did not
	// yet make an unhealthy host healthy (below HealthyThreshold). Default
	// Interval. Same docs-versus-code note as UnhealthyEdgeInterval.
	HealthyEdgeInterval time.Duration
	// ReuseConnection keeps the check's connection open between checks.
	// nil is Envoy's default, true.
	ReuseConnection *bool

	// Exactly one of HTTP, GRPC and TCP.
	HTTP *HTTPCheck
	GRPC *GRPCCheck
	TCP  *TCPCheck
}

// HTTPProtocol is the codec an HTTP check speaks (codec_client_type).
type HTTPProtocol uint8

const (
	HTTP1 HTTPProtocol = iota // HTTP/1.1, Envoy's default
	HTTP2                     // h2 over TLS, h2c with prior knowledge without
)

func (p HTTPProtocol) String() string {
	switch p {
	case HTTP1:
		return "HTTP1"
	case HTTP2:
		return "HTTP2"
	}
	return fmt.Sprintf("HTTPProtocol(%d)", uint8(p))
}

// StatusRange is a half-open range of HTTP statuses [Start, End), Envoy's
// Int64Range.
type StatusRange struct{ Start, End int }

// Header is one request header to add.
type Header struct{ Name, Value string }

// HTTPCheck asks a path and judges the response status.
type HTTPCheck struct {
	// Host is the Host (:authority) header. Default Options.ClusterName, then
	// the host's address, as Envoy defaults to the cluster's name.
	Host string
	// Path is the request target, starting with '/', with an optional query.
	Path string
	// Method, default GET. CONNECT is not allowed.
	Method string
	// ExpectedStatuses are the healthy statuses; default [200, 201).
	ExpectedStatuses []StatusRange
	// RetriableStatuses fail a check without making the host unhealthy at
	// once: they count towards UnhealthyThreshold. ExpectedStatuses win where
	// both hold a status.
	RetriableStatuses []StatusRange
	Protocol          HTTPProtocol
	// RequestHeaders are added to every check; Host and pseudo-headers
	// cannot be set here.
	RequestHeaders []Header
	// UserAgent, default "Envoy/HC" as Envoy sends.
	UserAgent string
}

// GRPCCheck calls grpc.health.v1.Health/Check; SERVING is healthy.
type GRPCCheck struct {
	// ServiceName goes in the HealthCheckRequest; "" asks about the server.
	ServiceName string
	// Authority is the :authority; default Options.ClusterName, then the
	// host's address.
	Authority string
	// InitialMetadata is added to every call (Envoy's initial_metadata).
	InitialMetadata []Header
}

// TCPCheck connects, optionally sends a payload and waits for blobs.
type TCPCheck struct {
	// Send is written after connecting; nil with no Receive is a
	// connect-only check.
	Send []byte
	// Receive: each blob must be found in the response, in order, not
	// necessarily contiguous ("fuzzy" matching, as Envoy). Empty: the check
	// passes once connected (Envoy closes such a connection at once, so it
	// is never reused).
	Receive [][]byte
}

// Envoy's defaults.
const (
	DefaultNoTrafficInterval = 60 * time.Second
	DefaultUserAgent         = "Envoy/HC"
	defaultMethod            = http.MethodGet
)

var (
	allowedMethods = map[string]bool{
		http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
		http.MethodDelete: true, http.MethodOptions: true, http.MethodTrace: true, http.MethodPatch: true,
	}
	defaultExpected = []StatusRange{{200, 201}}
)

// Validate checks c without changing it. Its errors name the field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Timeout <= 0 {
		bad("timeout: must be greater than 0, got %v", c.Timeout)
	}
	if c.Interval <= 0 {
		bad("interval: must be greater than 0, got %v", c.Interval)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"initial_jitter", c.InitialJitter}, {"interval_jitter", c.IntervalJitter},
		{"no_traffic_interval", c.NoTrafficInterval}, {"no_traffic_healthy_interval", c.NoTrafficHealthyInterval},
		{"unhealthy_interval", c.UnhealthyInterval}, {"unhealthy_edge_interval", c.UnhealthyEdgeInterval},
		{"healthy_edge_interval", c.HealthyEdgeInterval},
	} {
		if d.v < 0 {
			bad("%s: must not be negative, got %v", d.name, d.v)
		}
	}
	if c.UnhealthyThreshold == 0 {
		bad("unhealthy_threshold: must be at least 1")
	}
	if c.HealthyThreshold == 0 {
		bad("healthy_threshold: must be at least 1")
	}
	kinds := 0
	if c.HTTP != nil {
		kinds++
		if err := c.HTTP.validate(); err != nil {
			errs = append(errs, fmt.Errorf("http_health_check: %w", err))
		}
	}
	if c.GRPC != nil {
		kinds++
		if err := c.GRPC.validate(); err != nil {
			errs = append(errs, fmt.Errorf("grpc_health_check: %w", err))
		}
	}
	if c.TCP != nil {
		kinds++
		if err := c.TCP.validate(); err != nil {
			errs = append(errs, fmt.Errorf("tcp_health_check: %w", err))
		}
	}
	if kinds != 1 {
		bad("exactly one of http_health_check, grpc_health_check and tcp_health_check must be set, got %d", kinds)
	}
	return errors.Join(errs...)
}

func (h *HTTPCheck) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if h.Path == "" {
		bad("path: must not be empty")
	} else if !strings.HasPrefix(h.Path, "/") || !validHeaderValue(h.Path) {
		bad("path: %q must start with '/' and hold no control characters", h.Path)
	} else if _, err := url.ParseRequestURI(h.Path); err != nil {
		bad("path: %q: %v", h.Path, err)
	}
	if h.Method != "" && !allowedMethods[h.Method] {
		bad("method: %q is not one of GET, HEAD, POST, PUT, DELETE, OPTIONS, TRACE, PATCH", h.Method)
	}
	if !validHeaderValue(h.Host) {
		bad("host: %q holds control characters", h.Host)
	}
	if !validHeaderValue(h.UserAgent) {
		bad("user agent: %q holds control characters", h.UserAgent)
	}
	if h.Protocol != HTTP1 && h.Protocol != HTTP2 {
		bad("codec_client_type: %v is not supported (HTTP1 or HTTP2)", h.Protocol)
	}
	for i, r := range h.ExpectedStatuses {
		if err := r.validate(); err != nil {
			bad("expected_statuses[%d]: %v", i, err)
		}
	}
	for i, r := range h.RetriableStatuses {
		if err := r.validate(); err != nil {
			bad("retriable_statuses[%d]: %v", i, err)
		}
	}
	for i, hd := range h.RequestHeaders {
		if err := validateHeader(hd); err != nil {
			bad("request_headers_to_add[%d]: %v", i, err)
		}
	}
	return errors.Join(errs...)
}

func (g *GRPCCheck) validate() error {
	var errs []error
	if !validHeaderValue(g.Authority) {
		errs = append(errs, fmt.Errorf("authority: %q holds control characters", g.Authority))
	}
	for i, hd := range g.InitialMetadata {
		if err := validateHeader(hd); err != nil {
			errs = append(errs, fmt.Errorf("initial_metadata[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func (t *TCPCheck) validate() error {
	for i, b := range t.Receive {
		if len(b) == 0 {
			return fmt.Errorf("receive[%d]: must not be empty", i)
		}
	}
	return nil
}

// validate applies Envoy's rules: start < end, start >= 100, end <= 600.
func (r StatusRange) validate() error {
	switch {
	case r.Start >= r.End:
		return fmt.Errorf("expecting start < end, got start=%d end=%d", r.Start, r.End)
	case r.Start < 100:
		return fmt.Errorf("expecting start >= 100, got start=%d", r.Start)
	case r.End > 600:
		return fmt.Errorf("expecting end <= 600, got end=%d", r.End)
	}
	return nil
}

func validateHeader(h Header) error {
	if !httpguts.ValidHeaderFieldName(h.Name) {
		return fmt.Errorf("invalid header name %q", h.Name)
	}
	if strings.EqualFold(h.Name, "host") {
		return errors.New(`header "host" cannot be added: set the check's host/authority`)
	}
	if !httpguts.ValidHeaderFieldValue(h.Value) {
		return fmt.Errorf("header %q: invalid value %q", h.Name, h.Value)
	}
	return nil
}

// validHeaderValue rejects control characters (CR and LF among them).
func validHeaderValue(s string) bool { return httpguts.ValidHeaderFieldValue(s) }

func inRanges(status int, rs []StatusRange) bool {
	for _, r := range rs {
		if status >= r.Start && status < r.End {
			return true
		}
	}
	return false
}

// withDefaults returns c with every unset optional field at Envoy's default.
func (c Config) withDefaults() Config {
	if c.NoTrafficInterval == 0 {
		c.NoTrafficInterval = DefaultNoTrafficInterval
	}
	if c.NoTrafficHealthyInterval == 0 {
		c.NoTrafficHealthyInterval = c.NoTrafficInterval
	}
	if c.UnhealthyInterval == 0 {
		c.UnhealthyInterval = c.Interval
	}
	if c.UnhealthyEdgeInterval == 0 {
		c.UnhealthyEdgeInterval = c.UnhealthyInterval
	}
	if c.HealthyEdgeInterval == 0 {
		c.HealthyEdgeInterval = c.Interval
	}
	if c.HTTP != nil {
		h := *c.HTTP
		if h.Method == "" {
			h.Method = defaultMethod
		}
		if len(h.ExpectedStatuses) == 0 {
			h.ExpectedStatuses = defaultExpected
		}
		if h.UserAgent == "" {
			h.UserAgent = DefaultUserAgent
		}
		c.HTTP = &h
	}
	return c
}

// reuse reports whether connections are kept between checks.
func (c *Config) reuse() bool { return c.ReuseConnection == nil || *c.ReuseConnection }

// kind names the check for logs and HostStatus.
func (c *Config) kind() string {
	switch {
	case c.HTTP != nil:
		return "http"
	case c.GRPC != nil:
		return "grpc"
	case c.TCP != nil:
		return "tcp"
	}
	return "none"
}
