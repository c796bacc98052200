package listener

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestExtendedConnectEnabled: an HTTP/2 chain advertises RFC 8441
// (SETTINGS_ENABLE_CONNECT_PROTOCOL = 1, turned on by internal/h2xconnect)
// and an extended CONNECT reaches the handler with its :protocol in the
// request's ":protocol" header and the path in its URL.
func TestExtendedConnectEnabled(t *testing.T) {
	checkNoGoroutineLeak(t)
	type seen struct{ method, protocol, path string }
	got := make(chan seen, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Method, r.Header.Get(":protocol"), r.URL.Path}
		w.WriteHeader(200)
	})
	l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", h, HTTPSettings{})}})
	c := dialRaw(t, l)
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, bufio.NewReader(c))
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	f, err := fr.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok {
		t.Fatalf("first frame %v, want SETTINGS", f)
	}
	if v, ok := sf.Value(http2.SettingEnableConnectProtocol); !ok || v != 1 {
		t.Fatalf("SETTINGS_ENABLE_CONNECT_PROTOCOL = %d (sent %v), want 1", v, ok)
	}
	if err := fr.WriteSettingsAck(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, kv := range [][2]string{
		{":method", "CONNECT"}, {":protocol", "websocket"}, {":scheme", "http"},
		{":path", "/chat"}, {":authority", "example.com"}, {"sec-websocket-version", "13"},
	} {
		enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-got:
		if s != (seen{"CONNECT", "websocket", "/chat"}) {
			t.Errorf("handler saw %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("extended CONNECT never reached the handler")
	}
}
