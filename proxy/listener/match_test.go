package listener

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/tcpproxy"
)

// TestTLSChainSelectionOrder checks Envoy's pruning order after the server
// name, over real TLS handshakes: transport protocol before ALPN, ALPN by
// the client's order of preference, and no fallback to a less specific
// server-name level once one matched.
func TestTLSChainSelectionOrder(t *testing.T) {
	checkNoGoroutineLeak(t)
	ca := newTestCA(t)
	chain := func(name string, m ChainMatch) FilterChain {
		return FilterChain{Name: name, Handler: okHandler(name), TLS: ca.serverTLS(t, "test"), Match: m}
	}
	def := chain("default", ChainMatch{})
	l := startListener(t, Config{
		FilterChains: []FilterChain{
			// One server-name level: transport_protocol "tls" beats an
			// ALPN match (Envoy's step 4 before step 5).
			chain("alpn", ChainMatch{ServerNames: []string{"test"}, ALPN: []string{"x-custom"}}),
			chain("tls", ChainMatch{ServerNames: []string{"test"}, TransportProtocol: "tls"}),
			// Within one transport protocol, the client's first offered
			// protocol that a chain lists wins, whatever the chain order.
			chain("h2", ChainMatch{ServerNames: []string{"order.test"}, ALPN: []string{"h2"}}),
			chain("h1", ChainMatch{ServerNames: []string{"order.test"}, ALPN: []string{"http/1.1"}}),
			// An exact name whose chains then match nothing goes to the
			// default chain, not to the chains without server names.
			chain("exact-h2", ChainMatch{ServerNames: []string{"only-h2.test"}, ALPN: []string{"h2"}}),
			chain("wild", ChainMatch{ServerNames: []string{"*.wild.test"}, ALPN: []string{"h2"}}),
			chain("any", ChainMatch{}),
		},
		DefaultChain: &def,
	})
	url := "https://" + l.Addr().String() + "/"
	for _, tt := range []struct {
		name, sni string
		alpn      []string
		want      string
	}{
		{"transport protocol before alpn", "test", []string{"x-custom", "http/1.1"}, "tls"},
		{"transport protocol without alpn", "test", []string{"http/1.1"}, "tls"},
		{"client alpn order h1 first", "order.test", []string{"http/1.1", "h2"}, "h1"},
		{"client alpn order h2 first", "order.test", []string{"h2", "http/1.1"}, "h2"},
		{"exact level does not fall back", "only-h2.test", []string{"http/1.1"}, "default"},
		{"exact level matches", "only-h2.test", []string{"h2"}, "exact-h2"},
		{"wildcard level does not fall back", "a.wild.test", []string{"http/1.1"}, "default"},
		{"no server name level", "other.test", []string{"http/1.1"}, "any"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := tlsClient(t, ca, tt.sni, tt.alpn...)
			c.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
			if got := get(t, c, url).Header.Get("X-Chain"); got != tt.want {
				t.Errorf("SNI %q, ALPN %v: chain %q, want %q", tt.sni, tt.alpn, got, tt.want)
			}
		})
	}
}

// TestMatchConflict covers every match a chain cannot serve, and that New
// refuses such a chain naming the field.
func TestMatchConflict(t *testing.T) {
	ca := newTestCA(t)
	tlsCfg := ca.serverTLS(t, "a.test")
	h := okHandler("x")
	tcp := &tcpproxy.Config{Cluster: "c"}
	tests := []struct {
		name      string
		fc        FilterChain
		wantField string
	}{
		{"plain", FilterChain{Handler: h}, ""},
		{"sni with tls", FilterChain{Handler: h, TLS: tlsCfg, Match: ChainMatch{ServerNames: []string{"a.test"}}}, ""},
		{"sni passthrough", FilterChain{TCPProxy: tcp, Match: ChainMatch{ServerNames: []string{"a.test"}}}, ""},
		{"tls passthrough", FilterChain{TCPProxy: tcp, Match: ChainMatch{TransportProtocol: "tls"}}, ""},
		{"raw_buffer plain", FilterChain{Handler: h, Match: ChainMatch{TransportProtocol: "raw_buffer"}}, ""},
		{"sni without tls", FilterChain{Handler: h, Match: ChainMatch{ServerNames: []string{"a.test"}}}, "server_names"},
		{"alpn without tls", FilterChain{Handler: h, Match: ChainMatch{ALPN: []string{"h2"}}}, "application_protocols"},
		{"tls without context", FilterChain{Handler: h, Match: ChainMatch{TransportProtocol: "tls"}}, "transport_protocol"},
		{"raw_buffer with tls", FilterChain{Handler: h, TLS: tlsCfg, Match: ChainMatch{TransportProtocol: "raw_buffer"}}, "transport_protocol"},
		{"raw_buffer with tls on tcp", FilterChain{TCPProxy: tcp, TLS: tlsCfg, Match: ChainMatch{TransportProtocol: "raw_buffer"}}, "transport_protocol"},
		{"raw_buffer with sni", FilterChain{TCPProxy: tcp, Match: ChainMatch{TransportProtocol: "raw_buffer", ServerNames: []string{"a"}}}, "transport_protocol"},
		{"raw_buffer with alpn", FilterChain{TCPProxy: tcp, Match: ChainMatch{TransportProtocol: "raw_buffer", ALPN: []string{"x"}}}, "transport_protocol"},
		{"unknown transport", FilterChain{Handler: h, Match: ChainMatch{TransportProtocol: "quic"}}, "transport_protocol"},
		{"bad prefix", FilterChain{Handler: h, Match: ChainMatch{PrefixRanges: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}}}, "prefix_ranges[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			field, reason := MatchConflict(&tt.fc)
			if field != tt.wantField || (field == "") != (reason == "") {
				t.Fatalf("MatchConflict = %q, %q; want field %q", field, reason, tt.wantField)
			}
			if field == "" || tt.fc.Handler == nil {
				return
			}
			tt.fc.Name = "c"
			_, err := New(Config{Name: "l", Address: "127.0.0.1:0", FilterChains: []FilterChain{tt.fc}}, nil)
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), `filter chain "c"`) || !strings.Contains(err.Error(), field+": ") {
				t.Errorf("New = %v; want ErrInvalidConfig naming chain c and %s", err, field)
			}
		})
	}
}

// TestIdleTimeoutZeroDisabled: a zero IdleTimeout (idle_timeout: 0s)
// leaves idle connections open, on HTTP/1.1 and HTTP/2 alike, instead of
// becoming a default.
func TestIdleTimeoutZeroDisabled(t *testing.T) {
	l, err := New(Config{Name: "l", Address: "127.0.0.1:0", FilterChains: []FilterChain{
		plainChain("zero", nil, HTTPSettings{}),
		plainChain("set", nil, HTTPSettings{IdleTimeout: 30 * time.Second, Codec: CodecHTTP1}),
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if got := l.chains[0].srv.IdleTimeout; got != 0 {
		t.Errorf("IdleTimeout 0: HTTP/2 server idle timeout %s, want 0 (none)", got)
	}
	if got := l.chains[1].srv.IdleTimeout; got != 30*time.Second {
		t.Errorf("IdleTimeout 30s: HTTP/2 server idle timeout %s, want 30s", got)
	}
	if got := withDefaults(HTTPSettings{IdleTimeout: -time.Second}).IdleTimeout; got != 0 {
		t.Errorf("negative IdleTimeout became %s, want 0 (none)", got)
	}
}
