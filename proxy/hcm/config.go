// Package hcm is the HTTP connection manager's request path: request id,
// x-forwarded-*, route match, header edits, direct responses and redirects,
// then the router filter (proxy/forward) and the access log. It never sees
// Envoy protos; proxy/snapshot converts HttpConnectionManager into Config.
package hcm

import (
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/fault"
	"github.com/outrigger-mesh/outrigger/proxy/router"
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

	AccessLogs []AccessLog

	// Faults are the envoy.filters.http.fault filters, in order; they run
	// after the route is matched and its cluster picked, before the router.
	Faults []*fault.Config
}

// AccessLog is one access-log sink: envoy.access_loggers.stdout, .stderr or
// .file, always JSON lines in our fixed shape.
type AccessLog struct {
	Path string // "/dev/stdout", "/dev/stderr" or a file path
}
