package listener

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestNewErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = busy.Close() })
	ok := plainChain("a", nil, HTTPSettings{})
	tests := []struct {
		name    string
		cfg     Config
		wantErr error
	}{
		{"busy port", Config{Address: busy.Addr().String(), FilterChains: []FilterChain{ok}}, ErrBind},
		{"no chains", Config{Address: "127.0.0.1:0"}, ErrInvalidConfig},
		{"no handler", Config{Address: "127.0.0.1:0", FilterChains: []FilterChain{{Name: "x"}}}, ErrInvalidConfig},
		{"sni on plaintext", Config{Address: "127.0.0.1:0", FilterChains: []FilterChain{{Name: "x", Handler: okHandler("x"), Match: ChainMatch{ServerNames: []string{"a"}}}}}, ErrInvalidConfig},
		{"tls passthrough", Config{Address: "127.0.0.1:0", FilterChains: []FilterChain{{Name: "x", Handler: okHandler("x"), Match: ChainMatch{TransportProtocol: "tls"}}}}, ErrInvalidConfig},
		{"ok", Config{Address: "127.0.0.1:0", FilterChains: []FilterChain{ok}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(tt.cfg, hclog.NewNullLogger())
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				_ = l.Close()
				if l.Addr().(*net.TCPAddr).Port == 0 {
					t.Errorf("port 0 not resolved")
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("New error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func get(t *testing.T, c *http.Client, url string) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

func TestPlaintextCodecs(t *testing.T) {
	checkNoGoroutineLeak(t)
	tests := []struct {
		name    string
		codec   Codec
		h1, h2c bool // which clients succeed
	}{
		{"auto", CodecAuto, true, true},
		{"http1", CodecHTTP1, true, false},
		{"http2", CodecHTTP2, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", nil, HTTPSettings{Codec: tt.codec})}})
			url := "http://" + l.Addr().String() + "/"
			for _, c := range []struct {
				name   string
				client *http.Client
				want   bool
				proto  string
			}{{"h1", h1Client(t), tt.h1, "HTTP/1.1"}, {"h2c", h2cClient(t), tt.h2c, "HTTP/2.0"}} {
				resp, err := c.client.Get(url)
				if !c.want {
					if err == nil {
						_ = resp.Body.Close()
						t.Errorf("%s client: got %s, want failure", c.name, resp.Status)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s client: %v", c.name, err)
				}
				_ = resp.Body.Close()
				if got := resp.Header.Get("X-Proto"); got != c.proto || resp.StatusCode != 200 {
					t.Errorf("%s client: status %d proto %q, want 200 %q", c.name, resp.StatusCode, got, c.proto)
				}
			}
		})
	}
}

func TestTLSALPNAndSNI(t *testing.T) {
	checkNoGoroutineLeak(t)
	ca := newTestCA(t)
	cfg := Config{
		FilterChains: []FilterChain{
			{Name: "exact", Handler: okHandler("exact"), TLS: ca.serverTLS(t, "api.example.com"),
				Match: ChainMatch{ServerNames: []string{"api.example.com"}}},
			{Name: "wild", Handler: okHandler("wild"), TLS: ca.serverTLS(t, "*.example.com"),
				Match: ChainMatch{ServerNames: []string{"*.example.com"}}},
			{Name: "h1only", Handler: okHandler("h1only"), TLS: ca.serverTLS(t, "old.test"),
				Match: ChainMatch{ServerNames: []string{"old.test"}}, HTTP: HTTPSettings{Codec: CodecHTTP1}},
			plainChain("plain", nil, HTTPSettings{}),
		},
	}
	l := startListener(t, cfg)
	addr := l.Addr().String()
	tests := []struct {
		name      string
		sni       string
		alpn      []string
		wantChain string
		wantCN    string
		wantProto string
		wantErr   bool
	}{
		{"exact h2", "api.example.com", []string{"h2", "http/1.1"}, "exact", "api.example.com", "HTTP/2.0", false},
		{"exact h1 by alpn", "api.example.com", []string{"http/1.1"}, "exact", "api.example.com", "HTTP/1.1", false},
		{"wildcard", "www.example.com", []string{"h2"}, "wild", "*.example.com", "HTTP/2.0", false},
		{"wildcard is not the apex", "example.com", []string{"h2"}, "", "", "", true},
		{"h1 codec ignores h2 offer", "old.test", []string{"h2", "http/1.1"}, "h1only", "old.test", "HTTP/1.1", false},
		{"no chain", "other.test", []string{"h2"}, "", "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tlsClient(t, ca, tt.sni, tt.alpn...)
			c.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
			resp, err := c.Get("https://" + addr + "/")
			if tt.wantErr {
				if err == nil {
					_ = resp.Body.Close()
					t.Fatalf("got %s, want a failed connection", resp.Status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if got := resp.Header.Get("X-Chain"); got != tt.wantChain {
				t.Errorf("chain = %q, want %q", got, tt.wantChain)
			}
			if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != tt.wantCN {
				t.Errorf("certificate CN = %q, want %q", got, tt.wantCN)
			}
			if resp.Proto != tt.wantProto || resp.Header.Get("X-Proto") != tt.wantProto {
				t.Errorf("proto = %q (server saw %q), want %q", resp.Proto, resp.Header.Get("X-Proto"), tt.wantProto)
			}
			if resp.Header.Get("X-TLS-SNI") != tt.sni {
				t.Errorf("server saw SNI %q, want %q (Request.TLS must be set)", resp.Header.Get("X-TLS-SNI"), tt.sni)
			}
		})
	}
	// Plaintext still works on the same port next to TLS.
	if resp := get(t, h1Client(t), "http://"+addr+"/"); resp.Header.Get("X-Chain") != "plain" {
		t.Errorf("plaintext chain = %q", resp.Header.Get("X-Chain"))
	}
	// The client sees the failed handshake before the listener's goroutine
	// counts it: wait for the count with a deadline.
	waitFor(t, 5*time.Second, "DownstreamCxRejected >= 2", func() bool {
		return l.Stats().DownstreamCxRejected >= 2
	})
}

func TestNoPlaintextChainCloses(t *testing.T) {
	ca := newTestCA(t)
	l := startListener(t, Config{FilterChains: []FilterChain{
		{Name: "tls", Handler: okHandler("tls"), TLS: ca.serverTLS(t, "a.test")},
	}})
	c := dialRaw(t, l)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	b, _ := io.ReadAll(c)
	if strings.Contains(string(b), "200") {
		t.Fatalf("plaintext request on a TLS-only listener was served: %q", b)
	}
}

// For a plaintext connection a chain naming transport_protocol raw_buffer
// beats one naming none, whatever their order (Envoy's transport protocol
// step).
func TestPlaintextPrefersRawBuffer(t *testing.T) {
	l := startListener(t, Config{FilterChains: []FilterChain{
		plainChain("any", nil, HTTPSettings{}),
		{Name: "raw", Handler: okHandler("raw"), Match: ChainMatch{TransportProtocol: "raw_buffer"}},
	}})
	if resp := get(t, h1Client(t), "http://"+l.Addr().String()+"/"); resp.Header.Get("X-Chain") != "raw" {
		t.Errorf("chain = %q, want raw", resp.Header.Get("X-Chain"))
	}
}

func TestDefaultChain(t *testing.T) {
	ca := newTestCA(t)
	def := FilterChain{Name: "default", Handler: okHandler("default"), TLS: ca.serverTLS(t, "default.test")}
	l := startListener(t, Config{
		FilterChains: []FilterChain{{Name: "a", Handler: okHandler("a"), TLS: ca.serverTLS(t, "a.test"),
			Match: ChainMatch{ServerNames: []string{"a.test"}}}},
		DefaultChain: &def,
	})
	c := tlsClient(t, ca, "unknown.test", "h2")
	c.Transport.(*http.Transport).TLSClientConfig.InsecureSkipVerify = true
	if resp := get(t, c, "https://"+l.Addr().String()+"/"); resp.Header.Get("X-Chain") != "default" {
		t.Errorf("chain = %q, want default", resp.Header.Get("X-Chain"))
	}
}

func TestALPNChainMatch(t *testing.T) {
	ca := newTestCA(t)
	l := startListener(t, Config{FilterChains: []FilterChain{
		{Name: "h2", Handler: okHandler("h2"), TLS: ca.serverTLS(t, "a.test"), Match: ChainMatch{ALPN: []string{"h2"}}},
		{Name: "rest", Handler: okHandler("rest"), TLS: ca.serverTLS(t, "a.test")},
	}})
	for _, tt := range []struct {
		alpn []string
		want string
	}{{[]string{"h2", "http/1.1"}, "h2"}, {[]string{"http/1.1"}, "rest"}} {
		if resp := get(t, tlsClient(t, ca, "a.test", tt.alpn...), "https://"+l.Addr().String()+"/"); resp.Header.Get("X-Chain") != tt.want {
			t.Errorf("offer %v: chain %q, want %q", tt.alpn, resp.Header.Get("X-Chain"), tt.want)
		}
	}
}

func TestHeaderLimit431(t *testing.T) {
	const limit = 8 << 10
	l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", nil, HTTPSettings{MaxRequestHeadersBytes: limit})}})
	url := "http://" + l.Addr().String() + "/"
	for _, tt := range []struct {
		name   string
		client *http.Client
	}{{"h1", h1Client(t)}, {"h2c", h2cClient(t)}} {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range []struct {
				size int
				want int
			}{{limit - 512, 200}, {limit + 16, 431}} {
				req, _ := http.NewRequest("GET", url, nil)
				req.Header.Set("X-Big", strings.Repeat("a", c.size))
				resp, err := tt.client.Do(req)
				if err != nil {
					t.Fatalf("header of %d bytes: %v", c.size, err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != c.want {
					t.Errorf("header of %d bytes: status %d, want %d", c.size, resp.StatusCode, c.want)
				}
			}
		})
	}
	if l.Stats().RqHeadersTooLarge < 2 {
		t.Errorf("RqHeadersTooLarge = %d, want 2", l.Stats().RqHeadersTooLarge)
	}
}

func TestSlowHeadersCutOff(t *testing.T) {
	l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", nil, HTTPSettings{RequestHeadersTimeout: 200 * time.Millisecond})}})
	c := dialRaw(t, l)
	start := time.Now()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
	_, err := c.Read(make([]byte, 1))
	if err == nil || errTimeoutSentinel(err) != nil {
		t.Fatalf("read = %v; want the connection closed by the server", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("cut off after %v, want about 200ms", el)
	}
	waitFor(t, 5*time.Second, "header timeout counted", func() bool { return l.Stats().RqHeaderTimeouts == 1 })
}

func errTimeoutSentinel(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return err
	}
	return nil
}

func TestIdleTimeoutClosesKeepAlive(t *testing.T) {
	l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", nil, HTTPSettings{IdleTimeout: 200 * time.Millisecond})}})
	c := dialRaw(t, l)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle read = %v, want EOF", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("idle connection closed after %v", el)
	}
	waitFor(t, 5*time.Second, "connection released", func() bool { return l.Stats().DownstreamCxActive == 0 })
}

func TestExpectContinue(t *testing.T) {
	l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	}), HTTPSettings{})}})
	c := dialRaw(t, l)
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("first line = %q, %v; want 100 Continue", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // blank line after 100
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "hello" {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
}

func TestTLSOnlyHandshakeCount(t *testing.T) {
	ca := newTestCA(t)
	l := startListener(t, Config{FilterChains: []FilterChain{
		{Name: "a", Handler: okHandler("a"), TLS: ca.serverTLS(t, "a.test"), Match: ChainMatch{ServerNames: []string{"a.test"}}},
	}})
	conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{ServerName: "b.test", InsecureSkipVerify: true})
	if err == nil {
		_ = conn.Close()
		t.Fatal("handshake with an unmatched SNI succeeded")
	}
	waitFor(t, 5*time.Second, "rejection counted", func() bool { return l.Stats().DownstreamCxRejected == 1 })
}

// A server name whose chains take only some TLS connections, next to a
// less specific level, is warned about at start: such a connection gets
// the default chain, not the less specific level's (Envoy's order).
func TestNarrowServerNameLevelWarns(t *testing.T) {
	ca := newTestCA(t)
	for _, tc := range []struct {
		name   string
		chains []FilterChain
		warn   string
	}{
		{"ALPN only", []FilterChain{
			{Name: "a-h2", Handler: okHandler("a"), TLS: ca.serverTLS(t, "a.test"), Match: ChainMatch{ServerNames: []string{"a.test"}, ALPN: []string{"h2"}}},
			{Name: "any", Handler: okHandler("any"), TLS: ca.serverTLS(t, "any.test")},
		}, "server_name=a.test"},
		{"wildcard under a wildcard", []FilterChain{
			{Name: "sub", Handler: okHandler("sub"), TLS: ca.serverTLS(t, "x.a.test"), Match: ChainMatch{ServerNames: []string{"*.a.test"}, ALPN: []string{"h2"}}},
			{Name: "wide", Handler: okHandler("wide"), TLS: ca.serverTLS(t, "x.test"), Match: ChainMatch{ServerNames: []string{"*.test"}}},
		}, `server_name="*.a.test"`},
		{"level takes all", []FilterChain{
			{Name: "a", Handler: okHandler("a"), TLS: ca.serverTLS(t, "a.test"), Match: ChainMatch{ServerNames: []string{"a.test"}}},
			{Name: "a-h2", Handler: okHandler("a"), TLS: ca.serverTLS(t, "a.test"), Match: ChainMatch{ServerNames: []string{"a.test"}, ALPN: []string{"h2"}}},
			{Name: "any", Handler: okHandler("any"), TLS: ca.serverTLS(t, "any.test")},
		}, ""},
		{"nothing less specific", []FilterChain{
			{Name: "a-h2", Handler: okHandler("a"), TLS: ca.serverTLS(t, "a.test"), Match: ChainMatch{ServerNames: []string{"a.test"}, ALPN: []string{"h2"}}},
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs strings.Builder
			l, err := New(Config{Name: "l", Address: "127.0.0.1:0", FilterChains: tc.chains},
				hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn}))
			if err != nil {
				t.Fatal(err)
			}
			_ = l.Close()
			got := logs.String()
			if tc.warn == "" && got != "" || tc.warn != "" && !strings.Contains(got, tc.warn) {
				t.Fatalf("logs %q, want a warning with %q", got, tc.warn)
			}
		})
	}
}
