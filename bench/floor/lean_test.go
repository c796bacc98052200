package floor

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func startLean(t *testing.T, prefixes []string, upstreams ...string) (string, *Lean) {
	return startLeanWith(t, nil, prefixes, upstreams...)
}

// startLeanWith lets set change the limits before it serves.
func startLeanWith(t *testing.T, set func(*Lean), prefixes []string, upstreams ...string) (string, *Lean) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewLean(prefixes, upstreams)
	if set != nil {
		set(l)
	}
	go l.Serve(ln)
	t.Cleanup(func() { ln.Close(); l.Close() })
	return ln.Addr().String(), l
}

// echoBackend answers with the request it got: its line and fields, as
// the body, and a hop-by-hop field and a Server of its own.
func echoBackend(t *testing.T, name string) *httptest.Server {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		b.WriteString(r.Method + " " + r.RequestURI + "\n")
		r.Header.Write(&b)
		w.Header().Set("Keep-Alive", "timeout=5")
		w.Header().Set("Server", "backend")
		w.Header().Set("X-Backend", name)
		w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
		io.WriteString(w, b.String())
	}))
	t.Cleanup(be.Close)
	return be
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// The work a proxy does per request: hop-by-hop fields removed both ways,
// X-Forwarded-Proto and a generated X-Request-Id added (a client's kept),
// Server replaced, round robin over the upstreams, statistics kept.
func TestLeanDoesAProxysWork(t *testing.T) {
	a, b := echoBackend(t, "a"), echoBackend(t, "b")
	addr, l := startLean(t, []string{"/"}, a.Listener.Addr().String(), b.Listener.Addr().String())
	c, br := dial(t, addr)
	backends := map[string]int{}
	for i := 0; i < 4; i++ {
		req := "GET /p?q=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Gone\r\nKeep-Alive: 1\r\nTE: trailers\r\nX-Kept: yes\r\n"
		if i == 3 {
			req += "X-Request-Id: mine\r\n"
		}
		io.WriteString(c, req+"\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		got := string(body)
		backends[resp.Header.Get("X-Backend")]++
		if resp.StatusCode != 200 || resp.Header.Get("Server") != "outrigger" || resp.Header.Get("Keep-Alive") != "" {
			t.Fatalf("response %d, Server %q, Keep-Alive %q", resp.StatusCode, resp.Header.Get("Server"), resp.Header.Get("Keep-Alive"))
		}
		if !strings.HasPrefix(got, "GET /p?q=1\n") || !strings.Contains(got, "X-Kept: yes") || !strings.Contains(got, "X-Forwarded-Proto: http") ||
			strings.Contains(got, "Keep-Alive") || strings.Contains(got, "Te:") {
			t.Fatalf("upstream got:\n%s", got)
		}
		id := regexp.MustCompile(`X-Request-Id: (\S+)`).FindStringSubmatch(got)
		switch {
		case id == nil:
			t.Fatalf("no X-Request-Id upstream:\n%s", got)
		case i == 3 && id[1] != "mine", i < 3 && !uuidV4.MatchString(id[1]):
			t.Fatalf("request %d: X-Request-Id %q", i, id[1])
		}
	}
	if backends["a"] != 2 || backends["b"] != 2 {
		t.Fatalf("round robin gave %v", backends)
	}
	var lat uint64
	for i := range l.Stats.LatencyUS {
		lat += l.Stats.LatencyUS[i].Load()
	}
	if n := l.Stats.Requests.Load(); n != 4 || l.Stats.Class2xx.Load() != 4 || lat != 4 {
		t.Fatalf("stats: %d requests, %d 2xx, %d timed; want 4", n, l.Stats.Class2xx.Load(), lat)
	}
}

// Routes are prefixes; a path under none gets a 404 on a connection that
// stays open. HEAD gets the head alone; Connection: close and HTTP/1.0
// end the connection after the response.
func TestLeanRoutesAndFraming(t *testing.T) {
	be := echoBackend(t, "a")
	addr, l := startLean(t, []string{"/api/"}, be.Listener.Addr().String())
	c, br := dial(t, addr)
	for _, tt := range []struct {
		req    string
		status int
		body   bool
	}{
		{"GET /other HTTP/1.1\r\nHost: x\r\n\r\n", 404, false},
		{"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n", 200, true},
		{"HEAD /api/x HTTP/1.1\r\nHost: x\r\n\r\n", 200, false},
		{"GET /api/x HTTP/1.1\r\nHost: x\r\n\r\n", 200, true},
	} {
		io.WriteString(c, tt.req)
		m, _, _ := strings.Cut(tt.req, " ")
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			t.Fatalf("%q: %v", tt.req, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tt.status || (len(b) > 0) != tt.body {
			t.Fatalf("%q: %d with %d body bytes; want %d, body %v", tt.req, resp.StatusCode, len(b), tt.status, tt.body)
		}
	}
	if l.Stats.NoRoute.Load() != 1 {
		t.Fatalf("no-route count %d, want 1", l.Stats.NoRoute.Load())
	}
	for _, req := range []string{
		"GET /api/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"GET /api/x HTTP/1.0\r\nHost: x\r\n\r\n",
	} {
		c, br := dial(t, addr)
		io.WriteString(c, req)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 || !resp.Close {
			t.Fatalf("%q: %v, %v; want 200 with Connection: close", req, resp, err)
		}
		io.ReadAll(resp.Body)
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("%q: after the response %v, want the connection closed", req, err)
		}
	}
}

// What it cannot or must not relay gets the status that says so and the
// connection ends; a response it cannot frame ends it without one.
func TestLeanRefusals(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			io.WriteString(w, strings.Repeat("x", 5000)) // over net/http's buffer: chunked
		}
	}))
	defer be.Close()
	ok := be.Listener.Addr().String()
	for _, tt := range []struct {
		name, upstream, req string
		status              int
	}{
		{"no host", ok, "GET / HTTP/1.1\r\n\r\n", 400},
		{"no host, HTTP/1.0", ok, "GET / HTTP/1.0\r\n\r\n", 400},
		{"two hosts", ok, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad field name", ok, "GET / HTTP/1.1\r\nHost: a\r\nBad Name: v\r\n\r\n", 400},
		{"control character", ok, "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400},
		{"absolute target", ok, "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
		{"unknown version", ok, "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400},
		{"request body", ok, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", 501},
		{"chunked request", ok, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
		{"upstream down", "127.0.0.1:1", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502},
		{"chunked response", ok, "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n", 502},
		{"head over the buffer", ok, "GET / HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\n\r\n", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := startLean(t, []string{"/"}, tt.upstream)
			wantRefusal(t, addr, tt.req, tt.status)
		})
	}
}

// An upstream that does not answer within the request timeout has its
// exchange ended by the sweeper: 502, and the connection is not reused.
func TestLeanRequestTimeout(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			<-release
		}
		w.Header().Set("Content-Length", "2")
		io.WriteString(w, "ok")
	}))
	defer be.Close()
	defer close(release)
	addr, _ := startLeanWith(t, func(l *Lean) { l.timeout = 100 * time.Millisecond }, []string{"/"}, be.Listener.Addr().String())
	c, br := dial(t, addr)
	start := time.Now()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 502 {
		t.Fatalf("stuck upstream: %v, %v; want 502", resp, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	c2, br2 := dial(t, addr)
	io.WriteString(c2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(br2, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("after the timeout: %v, %v; want 200 on a fresh upstream connection", resp, err)
	}
}

// Past the in-flight limit a request gets a 503 and the connection stays.
func TestLeanInFlightLimit(t *testing.T) {
	be := echoBackend(t, "a")
	addr, l := startLeanWith(t, func(l *Lean) { l.maxActive = 0 }, []string{"/"}, be.Listener.Addr().String())
	c, br := dial(t, addr)
	for i := 0; i < 2; i++ {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 503 {
			t.Fatalf("over the limit: %v, %v; want 503", resp, err)
		}
	}
	if l.Stats.Overflow.Load() != 2 {
		t.Fatalf("overflow count %d, want 2", l.Stats.Overflow.Load())
	}
}
