package listener

import (
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	// Turns on RFC 8441 extended CONNECT in net/http's HTTP/2 server
	// (SETTINGS_ENABLE_CONNECT_PROTOCOL), so WebSocket over HTTP/2 reaches
	// the connection manager. It must run before net/http's init: see the
	// package doc for why an import here is enough.
	_ "github.com/outrigger-mesh/outrigger/internal/h2xconnect"
	"github.com/outrigger-mesh/outrigger/proxy/listener/h1"
)

// Defaults applied when a setting is zero (documented in config.go).
// IdleTimeout has none: zero disables it, as 0s does in Envoy.
const (
	defaultMaxRequestHeadersBytes = 60 << 10
	defaultRequestHeadersTimeout  = 10 * time.Second
	defaultMaxConcurrentStreams   = 1000
)

const (
	protoH2    = "h2"
	protoHTTP1 = "http/1.1"
)

// chainServer is one filter chain: HTTP/1.1 connections are served by the
// h1 codec, HTTP/2 (ALPN h2, h2c prior knowledge) by net/http's server fed
// through an in-memory listener.
type chainServer struct {
	name     string
	match    ChainMatch
	tls      *tls.Config // nil for plaintext
	settings HTTPSettings
	srv      *http.Server // nil on a TCP chain
	ln       *chanListener
	h1       *h1.Server // nil when the codec is HTTP/2 only, or on a TCP chain

	tcp TCPHandler // non-nil on a TCP chain
	// passthrough: a TCP chain without TLS that takes TLS connections as
	// they came (it matches on TLS properties).
	passthrough bool
	// catchAll: a TCP chain without TLS and without any match: it takes
	// plaintext, and TLS that no other chain takes, as it came.
	catchAll bool
	// filters are the chain's network filters before its HTTP connection
	// manager or TCP proxy.
	filters []ConnFilter
}

// takesTLS: the chain serves TLS connections (terminating or passing
// them through).
func (cs *chainServer) takesTLS() bool { return cs.tls != nil || cs.passthrough || cs.catchAll }

// takesPlain: the chain serves plaintext connections.
func (cs *chainServer) takesPlain() bool { return cs.tls == nil && !cs.passthrough }

// needsInspection: the chain is a reason to tell TLS from plaintext. A
// catch-all TCP chain alone is not: its listener forwards every connection
// without reading a byte, so server-first protocols work.
func (cs *chainServer) needsInspection() bool { return cs.tls != nil || cs.passthrough }

func withDefaults(s HTTPSettings) HTTPSettings {
	if s.MaxRequestHeadersBytes <= 0 {
		s.MaxRequestHeadersBytes = defaultMaxRequestHeadersBytes
	}
	if s.RequestHeadersTimeout <= 0 {
		s.RequestHeadersTimeout = defaultRequestHeadersTimeout
	}
	if s.IdleTimeout < 0 {
		s.IdleTimeout = 0
	}
	if s.MaxConcurrentStreams == 0 {
		s.MaxConcurrentStreams = defaultMaxConcurrentStreams
	}
	return s
}

func validateChain(fc *FilterChain) error {
	switch {
	case fc.Handler == nil && fc.TCP == nil:
		return fmt.Errorf("filter chain %q: %w: no handler", fc.Name, ErrInvalidConfig)
	case fc.Handler != nil && fc.TCP != nil:
		return fmt.Errorf("filter chain %q: %w: both an HTTP handler and a TCP handler", fc.Name, ErrInvalidConfig)
	}
	if field, reason := MatchConflict(fc); field != "" {
		return fmt.Errorf("filter chain %q: %w: %s: %s", fc.Name, ErrInvalidConfig, field, reason)
	}
	if fc.HTTP.Codec > CodecHTTP2 {
		return fmt.Errorf("filter chain %q: %w: unknown codec %d", fc.Name, ErrInvalidConfig, fc.HTTP.Codec)
	}
	return nil
}

// MatchConflict reports a chain whose match the rest of the chain
// contradicts, so that it could never be served as configured: it returns
// the FilterChainMatch field at fault ("server_names",
// "application_protocols", "transport_protocol" or "prefix_ranges[i]")
// and why, or "" and "" for a chain without one. A chain is a TCP chain
// when it has TCP or TCPProxy set; only a TCP chain takes TLS without
// terminating it (passthrough). New refuses such a chain; proxy/snapshot
// calls MatchConflict while converting, so the error names the field in
// the resource.
func MatchConflict(fc *FilterChain) (field, reason string) {
	tcp := fc.TCP != nil || fc.TCPProxy != nil
	m := &fc.Match
	switch m.TransportProtocol {
	case "":
	case "tls":
		if fc.TLS == nil && !tcp {
			return "transport_protocol", `"tls" on a chain without a TLS transport_socket: only a TCP proxy chain passes TLS through unterminated`
		}
	case "raw_buffer":
		if fc.TLS != nil {
			return "transport_protocol", `"raw_buffer" on a chain with a TLS transport_socket: it would take plaintext and expect TLS`
		}
		if len(m.ServerNames) > 0 {
			return "transport_protocol", `"raw_buffer" with server_names: a plaintext connection has no SNI, the chain can never match`
		}
		if len(m.ALPN) > 0 {
			return "transport_protocol", `"raw_buffer" with application_protocols: a plaintext connection has no ALPN, the chain can never match`
		}
	default:
		return "transport_protocol", fmt.Sprintf("%q is not supported (tls or raw_buffer)", m.TransportProtocol)
	}
	if fc.TLS == nil && !tcp {
		if len(m.ServerNames) > 0 {
			return "server_names", "needs a TLS transport_socket (or a TCP proxy passing TLS through): SNI is only seen on TLS, the chain can never match"
		}
		if len(m.ALPN) > 0 {
			return "application_protocols", "needs a TLS transport_socket (or a TCP proxy passing TLS through): ALPN is only seen on TLS, the chain can never match"
		}
	}
	for i, p := range m.PrefixRanges {
		if !p.IsValid() {
			return fmt.Sprintf("prefix_ranges[%d]", i), "is not a valid CIDR range"
		}
	}
	return "", ""
}

func newChainServer(fc *FilterChain, addr net.Addr, st *stats, logger hclog.Logger) *chainServer {
	if fc.TCP != nil {
		return newTCPChain(fc)
	}
	set := withDefaults(fc.HTTP)
	cs := &chainServer{
		name:     fc.Name,
		match:    fc.Match,
		settings: set,
		ln:       newChanListener(addr),
		filters:  fc.ConnFilters,
	}
	var protos http.Protocols
	switch set.Codec {
	case CodecHTTP1:
		protos.SetHTTP1(true)
	case CodecHTTP2:
		protos.SetHTTP2(true)
		protos.SetUnencryptedHTTP2(fc.TLS == nil)
	default:
		protos.SetHTTP1(true)
		protos.SetHTTP2(true)
		protos.SetUnencryptedHTTP2(fc.TLS == nil)
	}
	if fc.TLS != nil {
		cs.tls = tlsForCodec(fc.TLS, set.Codec)
	}
	if set.Codec != CodecHTTP2 {
		cs.h1 = h1.New(h1.Config{
			Handler:                fc.Handler,
			MaxRequestHeadersBytes: set.MaxRequestHeadersBytes,
			RequestHeadersTimeout:  set.RequestHeadersTimeout,
			IdleTimeout:            set.IdleTimeout,
			Logger:                 logger.Named("h1"),
			Hooks: h1.Hooks{
				Rejected: func(r h1.Reject) {
					switch r {
					case h1.RejectHeadersTooLarge:
						st.headersTooLarge.Add(1)
					case h1.RejectFraming:
						st.smugglingRejected.Add(1)
					}
				},
				HeaderTimeout: func() { st.headerTimeouts.Add(1) },
			},
		})
	}
	streams := int(min(uint64(set.MaxConcurrentStreams), math.MaxInt32))
	cs.srv = &http.Server{
		Handler: &guardHandler{
			next:           fc.Handler,
			maxHeaderBytes: set.MaxRequestHeadersBytes,
			stats:          st,
		},
		// The h1 codec (HTTP/1.1) and the guard handler (HTTP/2) enforce
		// the exact limit with a 431. net/http's own limit only
		// bounds memory; it sits above ours so that an HTTP/2 peer, which
		// is told net/http's limit in SETTINGS, sends the request and gets
		// the 431 instead of failing locally.
		MaxHeaderBytes:    set.MaxRequestHeadersBytes + 8<<10,
		ReadHeaderTimeout: set.RequestHeadersTimeout,
		IdleTimeout:       set.IdleTimeout,
		Protocols:         &protos,
		// No WriteTimeout and no HTTP2Config.WriteByteTimeout: HTTP/2
		// connections coalesce their writes (trackedConn.coalesceWrites),
		// so a deadline around a Write would bound only the queueing.
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: streams},
		ErrorLog: logger.Named("http").StandardLogger(&hclog.StandardLoggerOptions{
			ForceLevel: hclog.Debug,
		}),
	}
	return cs
}

// newTCPChain is a chain served by a TCP handler. Its TLS config, if any,
// is used as given: ALPN is the chain's own, not an HTTP codec's.
func newTCPChain(fc *FilterChain) *chainServer {
	cs := &chainServer{name: fc.Name, match: fc.Match, tcp: fc.TCP, filters: fc.ConnFilters}
	if fc.TLS != nil {
		cs.tls = fc.TLS.Clone()
		return cs
	}
	m := fc.Match
	switch {
	case m.TransportProtocol == "tls" || len(m.ServerNames) > 0 || len(m.ALPN) > 0:
		cs.passthrough = true
	case m.TransportProtocol == "":
		cs.catchAll = true
	}
	return cs
}

// tlsForCodec clones the chain's TLS config and makes its ALPN list agree
// with the codec, so a client is never offered a protocol the chain's
// server refuses.
func tlsForCodec(in *tls.Config, codec Codec) *tls.Config {
	c := in.Clone()
	allowed := []string{protoH2, protoHTTP1}
	switch codec {
	case CodecHTTP1:
		allowed = []string{protoHTTP1}
	case CodecHTTP2:
		allowed = []string{protoH2}
	}
	if len(c.NextProtos) == 0 {
		c.NextProtos = allowed
		return c
	}
	c.NextProtos = slices.DeleteFunc(slices.Clone(c.NextProtos), func(p string) bool {
		return !slices.Contains(allowed, p)
	})
	return c
}

// chainSelector picks the filter chain for a connection.
type chainSelector struct {
	plain *chainServer // the plaintext chain, if any
	// TLS chains by SNI, Envoy's order: exact name, then the longest
	// matching "*.suffix", then chains without server names.
	exact    map[string][]*chainServer
	wildcard []wildcardChains // longest suffix first
	anySNI   []*chainServer
	def      *chainServer
	// hasTLS: some chain needs TLS told from plaintext (and the
	// ClientHello read); hasPlain: some chain takes plaintext;
	// hasPassthrough: some chain takes TLS without terminating it, so the
	// ClientHello must be kept to be replayed.
	hasTLS         bool
	hasPlain       bool
	hasPassthrough bool
}

type wildcardChains struct {
	suffix string // ".example.com"
	chains []*chainServer
}

func newChainSelector(chains []*chainServer, def *chainServer) *chainSelector {
	s := &chainSelector{exact: map[string][]*chainServer{}, def: def}
	wild := map[string][]*chainServer{}
	for _, c := range chains {
		if c.takesPlain() {
			s.hasPlain = true
			// Envoy's transport protocol step: a chain naming raw_buffer
			// beats one naming none.
			if s.plain == nil || c.match.TransportProtocol == "raw_buffer" && s.plain.match.TransportProtocol != "raw_buffer" {
				s.plain = c
			}
		}
		if !c.takesTLS() {
			continue
		}
		s.hasTLS = s.hasTLS || c.needsInspection()
		s.hasPassthrough = s.hasPassthrough || c.tls == nil
		if len(c.match.ServerNames) == 0 {
			s.anySNI = append(s.anySNI, c)
			continue
		}
		for _, n := range c.match.ServerNames {
			n = strings.ToLower(n)
			if suffix, ok := strings.CutPrefix(n, "*"); ok {
				wild[suffix] = append(wild[suffix], c)
			} else {
				s.exact[n] = append(s.exact[n], c)
			}
		}
	}
	for suffix, cs := range wild {
		s.wildcard = append(s.wildcard, wildcardChains{suffix: suffix, chains: cs})
	}
	sort.Slice(s.wildcard, func(i, j int) bool {
		if len(s.wildcard[i].suffix) != len(s.wildcard[j].suffix) {
			return len(s.wildcard[i].suffix) > len(s.wildcard[j].suffix)
		}
		return s.wildcard[i].suffix < s.wildcard[j].suffix
	})
	if def != nil {
		s.hasTLS = s.hasTLS || def.needsInspection()
		s.hasPlain = s.hasPlain || def.takesPlain()
		s.hasPassthrough = s.hasPassthrough || (def.takesTLS() && def.tls == nil)
	}
	return s
}

// narrowLevels returns the server names (exact, or "*.suffix") whose
// chains take only some TLS connections (each names ALPN protocols, or
// only some name transport_protocol tls) while a less specific level has
// chains too. A connection for such a name that matches none of its chains
// gets the default chain, not one of the less specific level's (Envoy's
// order; Outrigger used to fall through), which is worth a warning.
func (s *chainSelector) narrowLevels() []string {
	broader := func(name string) bool {
		if len(s.anySNI) > 0 {
			return true
		}
		for _, w := range s.wildcard {
			if w.covers(name) && name != "*"+w.suffix {
				return true
			}
		}
		return false
	}
	var out []string
	for name, cs := range s.exact {
		if !takesAllTLS(cs) && broader(name) {
			out = append(out, name)
		}
	}
	for _, w := range s.wildcard {
		if !takesAllTLS(w.chains) && broader("*"+w.suffix) {
			out = append(out, "*"+w.suffix)
		}
	}
	sort.Strings(out)
	return out
}

// takesAllTLS reports whether pickTransportALPN finds a chain among chains
// for every ALPN offer.
func takesAllTLS(chains []*chainServer) bool {
	return pickTransportALPN(chains, nil) != nil
}

// forPlaintext returns the chain for a plaintext connection, or nil.
func (s *chainSelector) forPlaintext() *chainServer {
	if s.plain != nil {
		return s.plain
	}
	if s.def != nil && s.def.takesPlain() {
		return s.def
	}
	return nil
}

// forTLS returns the chain for a TLS ClientHello, or nil. Envoy's steps
// after the destination prune the chains, each keeping the most specific
// ones that match and never falling back once it kept some: server names
// (the exact name, else the longest matching "*.suffix", else chains
// without server names), then transport protocol (chains with "tls", else
// those without one), then ALPN (the chain listing the first protocol of
// the client's offer that any listed, else the one without
// application_protocols). A connection left with no chain goes to the
// default chain.
func (s *chainSelector) forTLS(sni string, alpn []string) *chainServer {
	if c := pickTransportALPN(s.serverNameChains(sni), alpn); c != nil {
		return c
	}
	if s.def != nil && s.def.takesTLS() {
		return s.def
	}
	return nil
}

// serverNameChains returns the TLS chains at the most specific server-name
// level sni matches: the chains naming it exactly, else those of the
// longest "*.suffix" it falls under, else those without server names.
func (s *chainSelector) serverNameChains(sni string) []*chainServer {
	sni = strings.ToLower(strings.TrimSuffix(sni, "."))
	if sni == "" {
		return s.anySNI
	}
	if cs := s.exact[sni]; len(cs) > 0 {
		return cs
	}
	for _, w := range s.wildcard {
		if w.covers(sni) {
			return w.chains
		}
	}
	return s.anySNI
}

// covers reports whether the wildcard matches name: "*.example.com" matches
// any name below example.com, not example.com itself.
func (w wildcardChains) covers(name string) bool {
	return len(name) > len(w.suffix) && strings.HasSuffix(name, w.suffix)
}

// pickTransportALPN applies Envoy's transport protocol step, then its
// application protocol step, to the chains of one server-name level.
func pickTransportALPN(chains []*chainServer, offered []string) *chainServer {
	tp := ""
	for _, c := range chains {
		if c.match.TransportProtocol == "tls" {
			tp = "tls"
			break
		}
	}
	for _, p := range offered {
		for _, c := range chains {
			if c.match.TransportProtocol == tp && slices.Contains(c.match.ALPN, p) {
				return c
			}
		}
	}
	for _, c := range chains {
		if c.match.TransportProtocol == tp && len(c.match.ALPN) == 0 {
			return c
		}
	}
	return nil
}
