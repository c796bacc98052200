// Package listener accepts connections for one Envoy Listener: it binds the
// address, picks a filter chain (SNI and ALPN on TLS), terminates TLS,
// detects HTTP/2 (ALPN or the h2c preface) and serves HTTP/1.1 or HTTP/2
// with the connection manager's limits and timeouts enforced. It never sees
// Envoy protos; proxy/snapshot converts Listener into Config.
package listener

import (
	"crypto/tls"
	"net/http"
	"time"
)

// Config is one listener.
type Config struct {
	Name    string
	Address string // "host:port"; port 0 picks a free one
	// FilterChains in the order given; the first whose Match accepts the
	// connection wins (Envoy's most-specific rules are applied by the
	// converter ordering chains, see Match).
	FilterChains []FilterChain
	// DefaultChain serves connections no chain matches; nil closes them.
	DefaultChain *FilterChain
}

// FilterChain is one way to serve a connection.
type FilterChain struct {
	Name  string
	Match ChainMatch
	// TLS terminates TLS with this config when non-nil. NextProtos is set by
	// the converter from the codec (h2 and/or http/1.1).
	TLS *tls.Config
	// HTTP is the HTTP connection manager's connection-level settings.
	HTTP HTTPSettings
	// Handler serves requests; it is the connection manager (proxy/hcm)
	// built for this chain.
	Handler http.Handler
}

// ChainMatch is Envoy's FilterChainMatch, the parts we implement. Empty
// slices match anything.
type ChainMatch struct {
	// ServerNames: exact names or "*.suffix" wildcards, matched against SNI.
	ServerNames []string
	// ALPN: application protocols offered by the client (TLS only).
	ALPN []string
	// TransportProtocol: "", "tls" or "raw_buffer".
	TransportProtocol string
}

// Codec is the HCM codec_type.
type Codec uint8

const (
	CodecAuto  Codec = iota // h2 by ALPN or preface, else HTTP/1.1
	CodecHTTP1              // HTTP/1.1 only
	CodecHTTP2              // HTTP/2 only (h2c prior knowledge in plaintext)
)

// HTTPSettings are the connection-level parts of the HTTP connection
// manager.
type HTTPSettings struct {
	Codec Codec
	// MaxRequestHeadersBytes: max_request_headers_kb (Envoy default 60 KiB).
	// Larger request headers get 431.
	MaxRequestHeadersBytes int
	// RequestHeadersTimeout: time allowed to receive the whole header block
	// (Envoy default: disabled; we default to 10s so a slow client cannot pin
	// a connection — documented difference).
	RequestHeadersTimeout time.Duration
	// StreamIdleTimeout: time without activity on a stream (Envoy default 5m).
	StreamIdleTimeout time.Duration
	// IdleTimeout: a connection with no streams is closed after this
	// (common_http_protocol_options.idle_timeout, Envoy default 1h).
	IdleTimeout time.Duration
	// MaxConcurrentStreams for HTTP/2 (http2_protocol_options, Envoy default
	// 2147483647; we cap at 1000 when unset — documented).
	MaxConcurrentStreams uint32
	// DrainTimeout: how long a draining connection gets between GOAWAY /
	// Connection: close and being closed.
	DrainTimeout time.Duration
}
