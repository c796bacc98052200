package transport

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// h2cServer serves h with HTTP/1.1 and h2c prior knowledge on loopback.
func h2cServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ln := listen(t)
	srv := &http.Server{Handler: h, Protocols: new(http.Protocols)}
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// tlsServer starts an HTTPS server (h2 and http/1.1 by ALPN) and returns its
// address and a client TLS config trusting it. The test certificate is
// valid for example.com and 127.0.0.1.
func tlsServer(t *testing.T, h http.Handler, onSNI func(string)) (string, *tls.Config) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = true
	if onSNI != nil {
		srv.TLS = &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			onSNI(hello.ServerName)
			return nil, nil
		}}
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return strings.TrimPrefix(srv.URL, "https://"), &tls.Config{RootCAs: pool}
}

func TestHTTP1KeepAlive(t *testing.T) {
	addr := h2cServer(t, http.HandlerFunc(protoHandler))
	cc := &connCounter{}
	tr := newTransport(t, Options{Protocol: HTTP1, Conns: cc})
	for i := 0; i < 50; i++ {
		resp, body := get(t, tr, newRequest(t, t.Context(), tr, addr, "/"))
		if body != "HTTP/1.1" {
			t.Fatalf("upstream saw %q, want HTTP/1.1", body)
		}
		if ae := resp.Header.Get("X-Accept-Encoding"); ae != "" {
			t.Fatalf("transport added Accept-Encoding %q", ae)
		}
	}
	if n := cc.opened.Load(); n != 1 {
		t.Fatalf("opened %d connections over 50 sequential requests, want 1", n)
	}
}

func TestHTTP2OverTLS(t *testing.T) {
	var mu sync.Mutex
	var sni []string
	addr, cfg := tlsServer(t, http.HandlerFunc(protoHandler), func(name string) {
		mu.Lock()
		sni = append(sni, name)
		mu.Unlock()
	})
	cfg.ServerName = "example.com"
	cc := &connCounter{}
	tr := newTransport(t, Options{Protocol: HTTP2, TLS: cfg, Conns: cc})
	for i := 0; i < 10; i++ {
		resp, body := get(t, tr, newRequest(t, t.Context(), tr, addr, "/"))
		if resp.ProtoMajor != 2 || body != "HTTP/2.0" {
			t.Fatalf("response %s, upstream saw %q; want HTTP/2 both ways", resp.Proto, body)
		}
	}
	if n := cc.opened.Load(); n != 1 {
		t.Fatalf("opened %d connections, want 1", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sni) != 1 || sni[0] != "example.com" {
		t.Fatalf("SNI seen %q, want [example.com]", sni)
	}
	if cfg.NextProtos != nil {
		t.Fatalf("caller's tls.Config was modified: NextProtos %q", cfg.NextProtos)
	}
}

func TestHTTP1OverTLS(t *testing.T) {
	addr, cfg := tlsServer(t, http.HandlerFunc(protoHandler), nil)
	tr := newTransport(t, Options{Protocol: HTTP1, TLS: cfg})
	resp, body := get(t, tr, newRequest(t, t.Context(), tr, addr, "/"))
	if resp.ProtoMajor != 1 || body != "HTTP/1.1" {
		t.Fatalf("response %s, upstream saw %q; want HTTP/1.1 (ALPN http/1.1)", resp.Proto, body)
	}
}

func TestWrongServerNameIsConnectFailure(t *testing.T) {
	addr, cfg := tlsServer(t, http.HandlerFunc(protoHandler), nil)
	cfg.ServerName = "other.test" // not in the certificate
	tr := newTransport(t, Options{Protocol: HTTP2, TLS: cfg})
	resp, err := tr.RoundTrip(newRequest(t, t.Context(), tr, addr, "/"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("RoundTrip succeeded against a certificate for another name")
	}
	if KindOf(err) != KindConnect {
		t.Fatalf("err = %v, want a connect failure", err)
	}
}

func TestH2CPriorKnowledge(t *testing.T) {
	addr := h2cServer(t, http.HandlerFunc(protoHandler))
	cc := &connCounter{}
	tr := newTransport(t, Options{Protocol: HTTP2, Conns: cc})
	send := func(n int) {
		for i := 0; i < n; i++ {
			resp, body := get(t, tr, newRequest(t, t.Context(), tr, addr, "/"))
			if resp.ProtoMajor != 2 || body != "HTTP/2.0" {
				t.Fatalf("response %s, upstream saw %q; want h2c", resp.Proto, body)
			}
		}
	}
	// net/http pools a new h2c connection only after handing it to its first
	// request, so the second request can race it and dial once more.
	send(10)
	warm := cc.opened.Load()
	if warm > 2 {
		t.Fatalf("opened %d connections over 10 sequential requests, want at most 2", warm)
	}
	send(10)
	if n := cc.opened.Load(); n != warm {
		t.Fatalf("opened %d more connections once warm, want 0", n-warm)
	}
}

func TestDownstreamProtocol(t *testing.T) {
	addr := h2cServer(t, http.HandlerFunc(protoHandler))
	tr := newTransport(t, Options{Protocol: Downstream})
	tests := []struct {
		name       string
		protoMajor int
		want       string
	}{
		{name: "h2 downstream", protoMajor: 2, want: "HTTP/2.0"},
		{name: "h1 downstream", protoMajor: 1, want: "HTTP/1.1"},
		{name: "h2 again", protoMajor: 2, want: "HTTP/2.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(t, t.Context(), tr, addr, "/")
			req.ProtoMajor = tt.protoMajor
			if _, body := get(t, tr, req); body != tt.want {
				t.Fatalf("upstream saw %q, want %q", body, tt.want)
			}
		})
	}
}

func TestTrailersOverHTTP2(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status")
		io.WriteString(w, "body")
		w.Header().Set("Grpc-Status", "0")
	})
	tlsAddr, cfg := tlsServer(t, h, nil)
	h2cAddr := h2cServer(t, h)
	tests := []struct {
		name string
		addr string
		tls  *tls.Config
	}{
		{name: "h2", addr: tlsAddr, tls: cfg},
		{name: "h2c", addr: h2cAddr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTransport(t, Options{Protocol: HTTP2, TLS: tt.tls})
			resp, body := get(t, tr, newRequest(t, t.Context(), tr, tt.addr, "/"))
			if body != "body" || resp.Trailer.Get("Grpc-Status") != "0" {
				t.Fatalf("body %q trailers %v, want body and Grpc-Status: 0", body, resp.Trailer)
			}
		})
	}
}

func TestMaxRequestsPerConnection(t *testing.T) {
	h1Addr := h2cServer(t, http.HandlerFunc(protoHandler))
	tlsAddr, cfg := tlsServer(t, http.HandlerFunc(protoHandler), nil)
	tests := []struct {
		name  string
		proto Protocol
		addr  string
		tls   *tls.Config
	}{
		{name: "http1", proto: HTTP1, addr: h1Addr},
		{name: "h2c", proto: HTTP2, addr: h1Addr},
		{name: "h2", proto: HTTP2, addr: tlsAddr, tls: cfg},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := &connCounter{}
			tr := newTransport(t, Options{Protocol: tt.proto, TLS: tt.tls, MaxRequestsPerConnection: 3, Conns: cc})
			for i := 0; i < 9; i++ {
				get(t, tr, newRequest(t, t.Context(), tr, tt.addr, "/"))
			}
			// h2c may dial one extra connection at start (see TestH2CPriorKnowledge).
			if n := cc.opened.Load(); n < 3 || n > 4 || (n == 4 && tt.name != "h2c") {
				t.Fatalf("opened %d connections for 9 requests at 3 per connection, want 3", n)
			}
		})
	}
}

// TestSwitchingProtocols checks what the WebSocket path relies on: a 101
// response over HTTP/1.1 comes back with a body the caller can write to.
func TestSwitchingProtocols(t *testing.T) {
	addr := serveRaw(t, func(c net.Conn, _ <-chan struct{}) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if line == "\r\n" {
				break
			}
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		io.Copy(c, br) // echo until the client closes
	})
	tr := newTransport(t, Options{Protocol: HTTP1})
	req := newRequest(t, t.Context(), tr, addr, "/")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("101 body %T is not an io.ReadWriteCloser", resp.Body)
	}
	if _, err := io.WriteString(rw, "ping"); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q, %v; want ping", buf, err)
	}
}

func TestCloseIdleConnections(t *testing.T) {
	addr := h2cServer(t, http.HandlerFunc(protoHandler))
	cc := &connCounter{}
	tr := newTransport(t, Options{Protocol: Downstream, Conns: cc})
	for _, major := range []int{1, 2} {
		req := newRequest(t, t.Context(), tr, addr, "/")
		req.ProtoMajor = major
		get(t, tr, req)
	}
	if n := cc.active.Load(); n != 2 {
		t.Fatalf("%d connections open, want 2 (one per protocol)", n)
	}
	tr.CloseIdleConnections()
	if n := cc.active.Load(); n != 0 {
		t.Fatalf("%d connections open after CloseIdleConnections, want 0", n)
	}
}
