// Package hcm is the HTTP connection manager's request path: request id,
// x-forwarded-*, route match, header edits, direct responses and redirects,
// the HTTP filters before the router (proxy/fault, proxy/grpcweb), then the
// router filter (proxy/forward) and the access log. It never sees Envoy
// protos; proxy/snapshot converts HttpConnectionManager into Config.
package hcm

import (
	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
	"net/netip"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/fault"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/tracing"
)

// Config is the request-level part of one HttpConnectionManager.
type Config struct {
	StatPrefix string
	// Routes is the inline route_config. RDSName names the route table to
	// follow over xDS instead (control-plane issue); exactly one is set.
	Routes  *router.Config
	RDSName string

	// UseRemoteAddress: the peer's address is the client address and is
	// appended to x-forwarded-for; otherwise the client address is taken
	// from x-forwarded-for, XFFNumTrustedHops from the right.
	UseRemoteAddress  bool
	XFFNumTrustedHops uint32
	// SkipXFFAppend: skip_xff_append.
	SkipXFFAppend bool
	// InternalAddresses: internal_address_config.cidr_ranges. With
	// UseRemoteAddress, a peer in them is internal (x-envoy-internal:
	// true); any other is external and its x-envoy-* steering headers are
	// removed (x-envoy-external-address set).
	InternalAddresses []netip.Prefix
	// GenerateRequestID (default true): set x-request-id when absent.
	GenerateRequestID bool
	// PreserveExternalRequestID: keep an x-request-id from an untrusted
	// client (Envoy's default false regenerates it at the edge when
	// UseRemoteAddress is set).
	PreserveExternalRequestID bool
	// Upgrades lists the upgrade types allowed (lower-case, e.g.
	// "websocket"); others get 403 like Envoy.
	Upgrades []string

	// StreamIdleTimeout: a stream with no activity is reset (Envoy default
	// 5m). RequestTimeout: whole request incl. body (default disabled).
	StreamIdleTimeout time.Duration
	RequestTimeout    time.Duration
	// MaxStreamDuration: common_http_protocol_options.max_stream_duration.
	MaxStreamDuration time.Duration

	// ServerName is the value of the server header on responses the proxy
	// makes itself, and on proxied responses unless passed through
	// (server_header_transformation). Default "outrigger".
	ServerName string
	// ServerHeaderPassThrough: PASS_THROUGH keeps the upstream's server
	// header.
	ServerHeaderPassThrough bool

	// ClientCert: forward_client_cert_details and
	// set_current_client_cert_details (x-forwarded-client-cert).
	ClientCert ClientCert

	AccessLogs []AccessLog

	// Tracing is the tracing block (envoy.tracers.opentelemetry); nil:
	// no tracing. The server turns it into Deps.Tracer.
	Tracing *tracing.Config

	// Filters are the HTTP filters before the router, in their listed
	// order. They run after the route is matched and its cluster picked
	// (fault filters only on routes that forward); see Filter.GRPCWeb for
	// where gRPC-Web translation starts.
	Filters []Filter
}

// Filter is one HTTP filter before the router: exactly one field is set.
type Filter struct {
	// Fault is an envoy.filters.http.fault filter.
	Fault *fault.Config
	// GRPCWeb is the envoy.filters.http.grpc_web filter (it has no
	// settings; only the first one listed acts, as a later one would see
	// a request that is gRPC already). A gRPC-Web request is matched to a
	// route as the client sent it, as Envoy matches before any filter
	// runs (so a route's `grpc: {}` matcher does not match it); it is
	// translated from this filter's place in the list on, so the replies
	// of fault filters listed after it, of the router and of the route
	// (no route, direct responses, redirects) are gRPC-Web.
	GRPCWeb bool
	// HTTP is any other filter (jwt_authn, rbac, local_ratelimit, cors),
	// built by its package.
	HTTP HTTPFilter
}

// AccessLog is one access-log sink: envoy.access_loggers.stdout, .stderr or
// .file, with its log_format compiled.
type AccessLog struct {
	Path string // "/dev/stdout", "/dev/stderr" or a file path
	// Format is the compiled log_format; nil is our fixed JSON line
	// (telemetry.Entry.AppendJSON).
	Format *telemetry.Format
}
