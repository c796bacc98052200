// Package listener accepts connections for one Envoy Listener: it binds the
// address, restores a redirected connection's original destination (the
// original_dst listener filter), picks a filter chain (destination port
// and address, then SNI and ALPN on TLS), terminates TLS,
// detects HTTP/2 (ALPN or the h2c preface) and serves HTTP/1.1 or HTTP/2
// with the connection manager's limits and timeouts enforced, or hands the
// whole connection to a TCP proxy (plaintext, TLS-terminated, or TLS
// passed through as it came, routed by SNI). It never sees Envoy protos;
// proxy/snapshot converts Listener into Config.
package listener

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/tcpproxy"
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
	// OriginalDst is the envoy.filters.listener.original_dst listener
	// filter: a connection netfilter redirected to the listener (iptables
	// REDIRECT/DNAT, nftables redirect, as `outrigger redirect-traffic`
	// installs) gets its original destination (SO_ORIGINAL_DST) as its
	// local address right after accept, before any chain is matched. Chain
	// matching on DestinationPort and PrefixRanges, network filters,
	// handlers and ORIGINAL_DST clusters then see where the client was
	// going. Linux only; elsewhere, and for connections that were not
	// redirected, the local address stays the listener's.
	OriginalDst bool
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

	// TCPProxy is the chain's tcp_proxy network filter when it has one
	// instead of the HTTP connection manager (proxy/snapshot sets it; the
	// server builds TCP from it). The listener itself only reads TCP.
	TCPProxy *tcpproxy.Config
	// TCP serves whole connections instead of HTTP; HTTP and Handler are
	// then unused. A TCP chain with TLS terminates it and hands over the
	// *tls.Conn. One without TLS hands over the connection as it came
	// (a RawConn): when it matches on server_names, application_protocols
	// or transport_protocol "tls" it takes TLS connections only, ClientHello
	// included (Envoy's SNI-routed TLS passthrough); with transport_protocol
	// "raw_buffer" plaintext only; with no match at all plaintext and, on a
	// listener that inspects TLS for its other chains, TLS connections that
	// no other chain takes.
	TCP TCPHandler

	// ConnFilters are the network filters listed before the connection
	// manager or the TCP proxy (envoy.filters.network.rbac,
	// envoy.filters.network.local_ratelimit), run in order on every new
	// connection the chain takes.
	ConnFilters []ConnFilter
}

// ConnFilter is a network filter that decides whether a new connection is
// served. It runs once the chain is picked and its TLS, when it
// terminates TLS, is complete, before any byte reaches the connection
// manager or the TCP proxy.
type ConnFilter interface {
	// Admit returns false to close the connection at once (the filter
	// logs and counts its reason). It must be safe for concurrent use.
	Admit(info *ConnInfo) bool
}

// ConnInfo describes a new connection to the network filters.
type ConnInfo struct {
	Local, Remote net.Addr
	// TLS is the terminated TLS session (its PeerCertificates verified
	// when the chain asks for client certificates); nil for plaintext and
	// for TLS passed through.
	TLS *tls.ConnectionState
}

// TCPHandler serves whole connections: Envoy's tcp_proxy network filter
// (*tcpproxy.Proxy is one).
type TCPHandler interface {
	// ServeConn serves c until it is done with it, and closes it. ctx ends
	// when the listener closes (Close, or the end of a drain): the handler
	// must then close c and return promptly.
	ServeConn(ctx context.Context, c net.Conn)
}

// RawConn is how a TCP chain without TLS receives a connection: the
// accepted socket and the bytes the listener already read from it to pick
// the chain (the first byte that told TLS from plaintext, or the whole TLS
// ClientHello of a passthrough chain). Reading a RawConn replays those
// bytes first, so it works as any net.Conn; a handler that wants the
// socket itself (to splice) calls Raw, forwards the bytes, then reads the
// socket. Closing the RawConn closes the socket.
type RawConn interface {
	net.Conn
	// Raw returns the accepted socket (a *net.TCPConn) and the bytes
	// already read from it; after Raw, reading the RawConn replays nothing.
	Raw() (net.Conn, []byte)
}

// ChainMatch is Envoy's FilterChainMatch, the parts we implement. Empty
// slices match anything. Envoy's precedence applies: the destination port
// first (chains with the connection's local port, else those without
// one), then the destination address (the chains listing the longest
// prefix that contains it, else those without prefix ranges), then on TLS
// the server name (the exact name, else the longest matching wildcard,
// else chains without server names), the transport protocol (chains with
// "tls", else those without one) and ALPN (the chain listing the first
// protocol of the client's offer that any lists, else the one without
// ALPN). A step that found chains never falls back to less specific ones:
// a connection left with none goes to the default chain. MatchConflict
// names the matches a chain cannot serve.
type ChainMatch struct {
	// DestinationPort: the connection's local port (its original one
	// with Config.OriginalDst); 0 matches any.
	DestinationPort uint16
	// PrefixRanges: CIDR ranges the connection's local address (its
	// original one with Config.OriginalDst) must fall in.
	PrefixRanges []netip.Prefix

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
	// (common_http_protocol_options.idle_timeout); zero disables it, as
	// an explicit 0s does in Envoy. Envoy's 1h default for an unset
	// idle_timeout is applied by the converter (proxy/snapshot), not here.
	IdleTimeout time.Duration
	// MaxConcurrentStreams for HTTP/2 (http2_protocol_options, Envoy default
	// 2147483647; we cap at 1000 when unset — documented).
	MaxConcurrentStreams uint32
	// DrainTimeout: how long a draining connection gets between GOAWAY /
	// Connection: close and being closed.
	DrainTimeout time.Duration
}
