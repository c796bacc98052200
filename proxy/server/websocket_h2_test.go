package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/net/http2"
)

// WebSocket over HTTP/2 (RFC 8441): the client opens an extended CONNECT
// stream (:protocol websocket) and speaks WebSocket frames in its DATA; the
// proxy forwards an HTTP/1.1 upgrade to a real gorilla/websocket server and
// turns its 101 into the 200 that opens the tunnel.

const wsUpgradeConfig = "          upgrade_configs:\n          - upgrade_type: websocket\n"

// upgradeSeen is what the upstream saw of the upgrade request.
type upgradeSeen struct {
	method, path, upgrade, connection, key, version, protocol string
}

// wsEchoBackend is a gorilla/websocket echo server: it answers each
// message with "echo:"+msg, and a message "close" with a close frame, then
// closes the connection.
func wsEchoBackend(t *testing.T) (string, chan upgradeSeen) {
	addr, seen, _ := wsEchoBackendEnded(t)
	return addr, seen
}

// wsEchoBackendEnded is wsEchoBackend that also says when a session's
// handler returned (its connection gone).
func wsEchoBackendEnded(t *testing.T) (string, chan upgradeSeen, chan struct{}) {
	seen := make(chan upgradeSeen, 10)
	ended := make(chan struct{}, 10)
	addr := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { ended <- struct{}{} }()
		seen <- upgradeSeen{r.Method, r.URL.Path, r.Header.Get("Upgrade"), r.Header.Get("Connection"),
			r.Header.Get("Sec-WebSocket-Key"), r.Header.Get("Sec-WebSocket-Version"), r.Header.Get(":protocol")}
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if string(msg) == "close" {
				c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"))
				return
			}
			if err := c.WriteMessage(mt, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	}))
	return addr, seen, ended
}

// h2WS is a minimal RFC 8441 WebSocket client over golang.org/x/net/http2:
// frames written by hand (RFC 6455 §5.2), masked as a client must.
type h2WS struct {
	cancel context.CancelFunc // resets the stream
	resp   *http.Response
	out    *io.PipeWriter
	in     *bufio.Reader
}

// dialH2WS opens the extended CONNECT stream; the response is returned
// whatever its status.
func dialH2WS(t *testing.T, tr *http2.Transport, url string) *h2WS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, url, pr)
	must(t, err)
	req.Header[":protocol"] = []string{"websocket"}
	req.Header.Set("Sec-WebSocket-Version", "13")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("extended CONNECT %s: %v", url, err)
	}
	t.Cleanup(func() { pw.Close(); resp.Body.Close() })
	return &h2WS{cancel: cancel, resp: resp, out: pw, in: bufio.NewReader(resp.Body)}
}

// send writes one final, masked frame.
func (c *h2WS) send(op byte, payload []byte) error {
	if len(payload) > 125 {
		return fmt.Errorf("payload of %d bytes: this client sends short frames only", len(payload))
	}
	frame := []byte{0x80 | op, 0x80 | byte(len(payload)), 0, 0, 0, 0}
	if _, err := rand.Read(frame[2:6]); err != nil {
		return err
	}
	for i, b := range payload {
		frame = append(frame, b^frame[2+i%4])
	}
	_, err := c.out.Write(frame)
	return err
}

// recv reads one unmasked server frame.
func (c *h2WS) recv() (op byte, payload []byte, err error) {
	var hdr [2]byte
	if _, err := io.ReadFull(c.in, hdr[:]); err != nil {
		return 0, nil, err
	}
	if hdr[1]&0x80 != 0 {
		return 0, nil, fmt.Errorf("server frame is masked")
	}
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.in, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.in, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if n > 1<<20 {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.in, payload)
	return hdr[0] & 0x0f, payload, err
}

// h2cTransport speaks h2c prior knowledge.
func h2cTransport() *http2.Transport {
	return &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
}

func tlsListener(cert *testCert) string {
	return fmt.Sprintf(`      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {filename: %q}
              private_key: {filename: %q}
`, cert.certFile, cert.keyFile)
}

func TestWebSocketOverH2Echo(t *testing.T) {
	cert := makeCert(t, t.TempDir(), "proxy.test", "proxy.test")
	for _, tc := range []struct {
		name      string
		transport string
		scheme    string
		client    *http2.Transport
	}{
		{"h2c", "", "http", h2cTransport()},
		{"tls", tlsListener(cert), "https", &http2.Transport{TLSClientConfig: &tls.Config{
			RootCAs: cert.pool, ServerName: "proxy.test", NextProtos: []string{"h2"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.client.CloseIdleConnections()
			up, seen := wsEchoBackend(t)
			p := startProxy(t, bs{
				HCMExtra:     wsUpgradeConfig,
				VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up),
				Transport: tc.transport,
			}.String())
			url := tc.scheme + "://" + p.addr["ingress"] + "/chat"

			// The upstream ends the session: its close frame, then EOF.
			ws := dialH2WS(t, tc.client, url)
			if ws.resp.StatusCode != 200 {
				t.Fatalf("status %s, want 200", ws.resp.Status)
			}
			if v := ws.resp.Header.Get("Sec-WebSocket-Accept"); v != "" {
				t.Errorf("Sec-WebSocket-Accept %q relayed to an HTTP/2 client", v)
			}
			s := <-seen
			if s.method != "GET" || s.path != "/chat" || s.upgrade != "websocket" || s.connection != "Upgrade" ||
				len(s.key) != 24 || s.version != "13" || s.protocol != "" {
				t.Errorf("upstream saw %+v, want a GET /chat HTTP/1.1 websocket upgrade with a generated key", s)
			}
			for i := 0; i < 30; i++ {
				msg := fmt.Sprintf("m%d", i)
				must(t, ws.send(websocket.TextMessage, []byte(msg)))
				op, got, err := ws.recv()
				must(t, err)
				if op != websocket.TextMessage || string(got) != "echo:"+msg {
					t.Fatalf("frame %d: op %d %q", i, op, got)
				}
			}
			must(t, ws.send(websocket.TextMessage, []byte("close")))
			op, got, err := ws.recv()
			must(t, err)
			if op != websocket.CloseMessage || string(got[2:]) != "bye" {
				t.Fatalf("want the upstream's close frame, got op %d %q", op, got)
			}
			if _, _, err := ws.recv(); err != io.EOF {
				t.Fatalf("after the upstream closed: %v, want EOF", err)
			}

			// The client ends the session: it ends its stream and the
			// proxy ends the tunnel (the upstream goes away, the stream
			// ends).
			ws2 := dialH2WS(t, tc.client, url)
			if ws2.resp.StatusCode != 200 {
				t.Fatalf("second stream: %s", ws2.resp.Status)
			}
			<-seen
			must(t, ws2.send(websocket.BinaryMessage, []byte{1, 2, 3}))
			op, got, err = ws2.recv()
			must(t, err)
			if op != websocket.BinaryMessage || string(got) != "echo:\x01\x02\x03" {
				t.Fatalf("binary echo: op %d %q", op, got)
			}
			ws2.out.Close()
			if _, _, err := ws2.recv(); err != io.EOF {
				t.Fatalf("after the client ended its stream: %v, want EOF", err)
			}

			// HTTP/1.1 Upgrade keeps working on the same listener.
			if tc.transport == "" {
				c, resp, err := websocket.DefaultDialer.Dial("ws://"+p.addr["ingress"]+"/h1", nil)
				if err != nil {
					t.Fatalf("HTTP/1.1 dial: %v (%v)", err, resp)
				}
				defer c.Close()
				must(t, c.WriteMessage(websocket.TextMessage, []byte("h1")))
				_, got, err := c.ReadMessage()
				must(t, err)
				if string(got) != "echo:h1" {
					t.Fatalf("HTTP/1.1 echo %q", got)
				}
			}
		})
	}
}

// TestWebSocketOverH2NotAllowed: without upgrade_configs the extended
// CONNECT gets 403, as an HTTP/1.1 upgrade does, and never reaches the
// upstream.
func TestWebSocketOverH2NotAllowed(t *testing.T) {
	up, seen := wsEchoBackend(t)
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up)}.String())
	tr := h2cTransport()
	defer tr.CloseIdleConnections()
	ws := dialH2WS(t, tr, "http://"+p.addr["ingress"]+"/chat")
	if ws.resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %s, want 403", ws.resp.Status)
	}
	select {
	case s := <-seen:
		t.Fatalf("upstream got %+v", s)
	default:
	}
}

// TestWebSocketOverH2UpstreamRefuses: an upstream that answers the upgrade
// with anything but 101 gives the client that status and body, except a
// 2xx (which an RFC 8441 client would take for an open tunnel): that, and
// an upstream that switches to another protocol, are upgrade failures (502).
func TestWebSocketOverH2UpstreamRefuses(t *testing.T) {
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/plain":
			io.WriteString(w, "just a page")
		case "/other":
			w.Header().Set("Connection", "Upgrade")
			w.Header().Set("Upgrade", "not-websocket")
			w.WriteHeader(http.StatusSwitchingProtocols)
		default:
			http.Error(w, "no websocket here", http.StatusUnauthorized)
		}
	}))
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, bs{
		HCMExtra:     wsUpgradeConfig + fileAccessLog(logPath),
		VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up),
	}.String())
	tr := h2cTransport()
	defer tr.CloseIdleConnections()

	ws := dialH2WS(t, tr, "http://"+p.addr["ingress"]+"/chat")
	body, err := io.ReadAll(ws.resp.Body)
	must(t, err)
	if ws.resp.StatusCode != http.StatusUnauthorized || string(body) != "no websocket here\n" {
		t.Fatalf("got %s %q, want the upstream's 401", ws.resp.Status, body)
	}

	for _, path := range []string{"/plain", "/other"} {
		ws = dialH2WS(t, tr, "http://"+p.addr["ingress"]+path)
		body, err := io.ReadAll(ws.resp.Body)
		must(t, err)
		if ws.resp.StatusCode != http.StatusBadGateway || bytes.Contains(body, []byte("just a page")) {
			t.Fatalf("%s: %s %q, want 502 without the upstream's body", path, ws.resp.Status, body)
		}
	}

	p.stop(t)
	lines := accessLogLines(t, logPath)
	if len(lines) != 3 {
		t.Fatalf("%d access log lines, want 3", len(lines))
	}
	for i, want := range []struct {
		path  string
		code  float64
		flags string
	}{{"/chat", 401, "-"}, {"/plain", 502, "UPE"}, {"/other", 502, "UPE"}} {
		l := lines[i]
		if l["path"] != want.path || l["response_code"] != want.code || l["response_flags"] != want.flags ||
			l["method"] != "CONNECT" || l["protocol"] != "HTTP/2.0" {
			t.Errorf("access log line %d: %v, want %s %v %s", i, l, want.path, want.code, want.flags)
		}
	}
}

// TestWebSocketOverH2StreamEnds: an idle tunnel is cut by
// stream_idle_timeout, and a client resetting its stream ends the
// upstream's connection.
func TestWebSocketOverH2StreamEnds(t *testing.T) {
	up, seen, ended := wsEchoBackendEnded(t)
	p := startProxy(t, bs{
		HCMExtra:     wsUpgradeConfig + "          stream_idle_timeout: 0.3s\n",
		VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up),
	}.String())
	tr := h2cTransport()
	defer tr.CloseIdleConnections()
	url := "http://" + p.addr["ingress"] + "/chat"
	wait := func(what string) {
		t.Helper()
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the upstream's session never ended", what)
		}
	}

	ws := dialH2WS(t, tr, url)
	<-seen
	must(t, ws.send(websocket.TextMessage, []byte("hi")))
	if _, got, err := ws.recv(); err != nil || string(got) != "echo:hi" {
		t.Fatalf("echo: %q %v", got, err)
	}
	// Nothing moves: the proxy ends the tunnel after 0.3s (the read is
	// bounded by dialH2WS's 20s context).
	if _, _, err := ws.recv(); err == nil {
		t.Fatal("read a frame from an idle tunnel")
	}
	wait("idle timeout")

	ws = dialH2WS(t, tr, url)
	<-seen
	must(t, ws.send(websocket.TextMessage, []byte("hi")))
	if _, _, err := ws.recv(); err != nil {
		t.Fatal(err)
	}
	ws.cancel() // RST_STREAM
	wait("client reset")
}
