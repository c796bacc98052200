package forward

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestUpgradeType(t *testing.T) {
	h1 := func(h http.Header) *http.Request {
		return &http.Request{Method: "GET", ProtoMajor: 1, ProtoMinor: 1, Header: h}
	}
	h2 := func(method string, h http.Header) *http.Request {
		return &http.Request{Method: method, ProtoMajor: 2, Header: h}
	}
	for _, c := range []struct {
		name string
		r    *http.Request
		want string
	}{
		{"h1 websocket", h1(http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"WebSocket"}}), "websocket"},
		{"h1 no connection token", h1(http.Header{"Upgrade": {"websocket"}}), ""},
		{"h1 plain", h1(http.Header{}), ""},
		{"h2 extended connect", h2("CONNECT", http.Header{":protocol": {"WebSocket"}}), "websocket"},
		{"h2 plain connect", h2("CONNECT", http.Header{}), ""},
		{"h2 :protocol on GET", h2("GET", http.Header{":protocol": {"websocket"}}), ""},
		{"h2 upgrade header", h2("GET", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}), ""},
		{"h3", &http.Request{Method: "CONNECT", ProtoMajor: 3, Header: http.Header{":protocol": {"websocket"}}}, ""},
	} {
		if got := UpgradeType(c.r); got != c.want {
			t.Errorf("%s: UpgradeType = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestExtendedConnect(t *testing.T) {
	stream := io.NopCloser(strings.NewReader("client bytes"))
	r := httptest.NewRequest("CONNECT", "/chat?room=1", stream)
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	r.Header[":protocol"] = []string{"websocket"}
	r.ContentLength = -1

	w, out := ExtendedConnect(httptest.NewRecorder(), r, "websocket")
	if out.Method != "GET" || out.ProtoMajor != 1 || out.URL.RequestURI() != "/chat?room=1" || out.ContentLength != 0 {
		t.Errorf("request %s %s HTTP/%d len %d", out.Method, out.URL.RequestURI(), out.ProtoMajor, out.ContentLength)
	}
	if r.Method != "CONNECT" {
		t.Errorf("the original request's method changed to %s", r.Method)
	}
	h := out.Header
	if _, ok := h[":protocol"]; ok || h.Get("Upgrade") != "websocket" || h.Get("Connection") != "Upgrade" ||
		len(h.Get("Sec-WebSocket-Key")) != 24 || h.Get("Sec-WebSocket-Version") != "13" {
		t.Errorf("headers %v", h)
	}
	if b, _ := io.ReadAll(out.Body); len(b) != 0 {
		t.Errorf("the GET's body reads %q, want nothing", b)
	}
	if tb, ok := out.Body.(*h2Tunnel); !ok || tb.stream != stream {
		t.Errorf("the client's stream is not kept in the body")
	}
	if TunnelFailed(w) != 0 {
		t.Error("TunnelFailed before anything was written")
	}

	// A key and version the client sent are kept; another protocol gets
	// neither.
	r2 := httptest.NewRequest("CONNECT", "/x", nil)
	r2.Header = http.Header{":protocol": {"websocket"}, "Sec-Websocket-Key": {"a2V5"}, "Sec-Websocket-Version": {"8"}}
	_, out2 := ExtendedConnect(httptest.NewRecorder(), r2, "websocket")
	if out2.Header.Get("Sec-WebSocket-Key") != "a2V5" || out2.Header.Get("Sec-WebSocket-Version") != "8" {
		t.Errorf("client's key/version not kept: %v", out2.Header)
	}
	r3 := httptest.NewRequest("CONNECT", "/x", nil)
	r3.Header = http.Header{":protocol": {"connect-udp"}}
	_, out3 := ExtendedConnect(httptest.NewRecorder(), r3, "connect-udp")
	if out3.Header.Get("Upgrade") != "connect-udp" || out3.Header.Get("Sec-WebSocket-Key") != "" {
		t.Errorf("connect-udp headers %v", out3.Header)
	}
	if a, b := newWebSocketKey(), newWebSocketKey(); a == b {
		t.Errorf("two keys alike: %q", a)
	}
}

// TestTunnelWriter: only an opened tunnel answers 2xx; another 2xx becomes
// a 502 without the upstream's headers or body; other statuses pass.
func TestTunnelWriter(t *testing.T) {
	r := httptest.NewRequest("CONNECT", "/x", nil)
	r.Header[":protocol"] = []string{"websocket"}

	rec := httptest.NewRecorder()
	w, _ := ExtendedConnect(rec, r, "websocket")
	w.Header().Set("X-Upstream", "1")
	w.Header().Set("Content-Length", "11")
	w.WriteHeader(200)
	if n, err := io.WriteString(w, "just a page"); n != 11 || err != nil {
		t.Errorf("write after the 502: %d %v", n, err)
	}
	if rec.Code != 502 || rec.Header().Get("X-Upstream") != "" || rec.Body.String() != notSwitched || TunnelFailed(w) != 502 {
		t.Errorf("got %d %v %q (failed %d)", rec.Code, rec.Header(), rec.Body, TunnelFailed(w))
	}

	rec = httptest.NewRecorder()
	w, _ = ExtendedConnect(rec, r, "websocket")
	io.WriteString(w, "implicit 200") // Write without WriteHeader is a 200 too
	if rec.Code != 502 || TunnelFailed(w) != 502 {
		t.Errorf("implicit 200: %d", rec.Code)
	}

	rec = httptest.NewRecorder()
	w, _ = ExtendedConnect(rec, r, "websocket")
	w.WriteHeader(401)
	io.WriteString(w, "no")
	if rec.Code != 401 || rec.Body.String() != "no" || TunnelFailed(w) != 0 {
		t.Errorf("401: %d %q", rec.Code, rec.Body)
	}

	rec = httptest.NewRecorder()
	w, _ = ExtendedConnect(rec, r, "websocket")
	w.(*tunnelWriter).opened = true
	w.WriteHeader(200)
	io.WriteString(w, "tunnel")
	if rec.Code != 200 || rec.Body.String() != "tunnel" || TunnelFailed(w) != 0 {
		t.Errorf("opened: %d %q", rec.Code, rec.Body)
	}
	if http.NewResponseController(w).Flush() != nil {
		t.Error("Flush does not reach the stream")
	}
	if TunnelFailed(rec) != 0 {
		t.Error("TunnelFailed on a plain writer")
	}
}
