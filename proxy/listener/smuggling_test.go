package listener

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingHandler records the paths it served and echoes the body length.
type recordingHandler struct {
	mu    sync.Mutex
	paths []string
}

func (h *recordingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n, _ := io.Copy(io.Discard, r.Body)
	h.mu.Lock()
	h.paths = append(h.paths, r.URL.Path)
	h.mu.Unlock()
	w.Header().Set("X-Body-Len", fmt.Sprint(n))
	w.Header().Set("X-Trailer", r.Trailer.Get("X-Sum"))
	_, _ = io.WriteString(w, "ok")
}

func (h *recordingHandler) seen() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.paths...)
}

// readResponses reads responses until the server closes the connection.
func readResponses(t *testing.T, c net.Conn) []*http.Response {
	t.Helper()
	br := bufio.NewReader(c)
	var out []*http.Response
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return out
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		out = append(out, resp)
	}
}

const smuggled = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

func TestSmugglingRefused(t *testing.T) {
	tests := []struct {
		name string
		req  string
		// bodyLevel: the header block is clean, the body framing is not;
		// the handler may see the request but its body read fails and
		// nothing after it is served.
		bodyLevel bool
	}{
		{"CL then TE", "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, false},
		{"TE then CL", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + smuggled, false},
		{"odd casing and whitespace", "POST /a HTTP/1.1\r\nHost: a\r\ncontent-length: 4\r\ntRaNsFeR-eNcOdInG:  \tChUnKeD \r\n\r\n0\r\n\r\n" + smuggled, false},
		{"chunked, identity", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n" + smuggled, false},
		{"duplicated TE", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, false},
		{"duplicated CL", "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx" + smuggled, false},
		{"obs-fold TE", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n" + smuggled, false},
		{"TE on HTTP/1.0", "POST /a HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", false},
		{"bare LF chunk line", "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n" + smuggled, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &recordingHandler{}
			l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", h, HTTPSettings{})}})
			c := dialRaw(t, l)
			_, _ = io.WriteString(c, tt.req)
			resps := readResponses(t, c)
			seen := h.seen()
			if slices.Contains(seen, "/smuggled") {
				t.Fatalf("the smuggled request reached the handler: %v", seen)
			}
			if tt.bodyLevel {
				return
			}
			for _, r := range resps {
				if r.StatusCode == 200 {
					t.Errorf("a request was served: %d", r.StatusCode)
				}
			}
			if len(seen) != 0 {
				t.Errorf("handler saw %v, want nothing", seen)
			}
		})
	}
}

func TestSmugglingRefusedByteByByteAndCounted(t *testing.T) {
	h := &recordingHandler{}
	l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", h, HTTPSettings{})}})
	c := dialRaw(t, l)
	req := "GET /first HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled
	for i := 0; i < len(req); i++ {
		if _, err := c.Write([]byte{req[i]}); err != nil {
			break // the server may close once it has refused
		}
	}
	resps := readResponses(t, c)
	if len(resps) != 2 || resps[0].StatusCode != 200 || resps[1].StatusCode != 400 || !resps[1].Close {
		var got []string
		for _, r := range resps {
			got = append(got, fmt.Sprint(r.StatusCode, " close=", r.Close))
		}
		t.Fatalf("responses %v; want 200 then 400 with Connection: close", got)
	}
	if seen := h.seen(); len(seen) != 1 || seen[0] != "/first" {
		t.Errorf("handler saw %v, want [/first]", seen)
	}
	if got := l.Stats().RqSmugglingRejected; got != 1 {
		t.Errorf("RqSmugglingRejected = %d, want 1", got)
	}
}

func TestSmugglingRefusedOverTLS(t *testing.T) {
	ca := newTestCA(t)
	h := &recordingHandler{}
	l := startListener(t, Config{FilterChains: []FilterChain{{Name: "t", Handler: h, TLS: ca.serverTLS(t, "a.test")}}})
	c, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: ca.pool, ServerName: "a.test", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"+smuggled)
	resps := readResponses(t, c)
	if len(resps) != 1 || resps[0].StatusCode != 400 {
		for _, r := range resps {
			t.Logf("response %d close=%v", r.StatusCode, r.Close)
		}
		t.Fatalf("got %d responses, want one 400", len(resps))
	}
	if seen := h.seen(); len(seen) != 0 {
		t.Errorf("handler saw %v", seen)
	}
}

func TestLegitimateFramingStillWorks(t *testing.T) {
	h := &recordingHandler{}
	l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", h, HTTPSettings{})}})
	c := dialRaw(t, l)
	reqs := "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
		"5;name=val;x=\"q\"\r\nhello\r\n6;ext\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n" +
		"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n" +
		"GET /4 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n" +
		"GET /5 HTTP/1.1\nHost: a\nConnection: close\n\n"
	_, _ = io.WriteString(c, reqs)
	resps := readResponses(t, c)
	if len(resps) != 6 {
		t.Fatalf("got %d responses, want 6", len(resps))
	}
	for i, r := range resps {
		if r.StatusCode != 200 {
			t.Errorf("response %d: %d", i, r.StatusCode)
		}
	}
	if got := resps[2].Header.Get("X-Body-Len") + "/" + resps[2].Header.Get("X-Trailer"); got != "11/42" {
		t.Errorf("chunked upload: body len/trailer = %s, want 11/42", got)
	}
	want := []string{"/1", "/2", "/3", "/4", "/5"}
	if seen := h.seen(); fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("handler saw %v, want %v", seen, want)
	}
}

func TestLargeStreamedBody(t *testing.T) {
	const size = 100 << 20
	h := &recordingHandler{}
	l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", h, HTTPSettings{})}})
	client := h1Client(t)
	client.Timeout = 60 * time.Second
	for _, chunked := range []bool{false, true} {
		body := io.LimitReader(zeroReader{}, size)
		req, _ := http.NewRequest("POST", "http://"+l.Addr().String()+"/big", body)
		if !chunked {
			req.ContentLength = size
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.Header.Get("X-Body-Len") != fmt.Sprint(size) {
			t.Errorf("chunked=%v: server read %s bytes", chunked, resp.Header.Get("X-Body-Len"))
		}
	}
	// The keep-alive connection is still in sync after 100 MB.
	if resp := get(t, client, "http://"+l.Addr().String()+"/after"); resp.StatusCode != 200 {
		t.Errorf("after: %d", resp.StatusCode)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestUpgradeStopsScanning(t *testing.T) {
	l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		// Echo raw bytes: they look like a smuggling attempt but are not HTTP.
		buf := make([]byte, 4096)
		for {
			n, err := brw.Read(buf)
			if n > 0 {
				_, _ = conn.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}), HTTPSettings{})}})
	c := dialRaw(t, l)
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	payload := "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n\x00\xff garbage"
	_, _ = io.WriteString(c, payload)
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != payload {
		t.Fatalf("echo = %q, %v", got, err)
	}
}

func TestPipelinedKeepAlive(t *testing.T) {
	h := &recordingHandler{}
	l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", h, HTTPSettings{})}})
	c := dialRaw(t, l)
	var b strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, "POST /%d HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc", i)
	}
	b.WriteString("GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	_, _ = io.WriteString(c, b.String())
	if resps := readResponses(t, c); len(resps) != 51 {
		t.Fatalf("got %d responses, want 51", len(resps))
	}
}
