package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// rawHTTP serves requests parsed by net/http and answers each with the raw
// bytes respond writes; respond returns false to close the connection.
// requests counts the requests seen.
func rawHTTP(t *testing.T, respond func(req *http.Request, c net.Conn) bool) (addr string, requests *atomic.Int64) {
	t.Helper()
	requests = new(atomic.Int64)
	addr = serveRaw(t, func(c net.Conn, _ <-chan struct{}) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			requests.Add(1)
			if !respond(req, c) {
				return
			}
			io.Copy(io.Discard, req.Body)
		}
	})
	return addr, requests
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestH1KeepAliveReuse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Method, r.URL.RequestURI())
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	cc := &connCounter{}
	tr := newTransport(t, Options{Conns: cc})
	for i := 0; i < 100; i++ {
		path := fmt.Sprintf("/p/%d?q=%d", i, i)
		resp, body := get(t, tr, newRequest(t, t.Context(), tr, addr, path))
		if resp.StatusCode != 200 || body != "GET "+path {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		if resp.Request == nil || resp.Request.Context() == nil {
			t.Fatal("resp.Request not set")
		}
	}
	if n := cc.opened.Load(); n != 1 {
		t.Fatalf("opened %d connections over 100 requests, want 1", n)
	}
}

func TestH1RequestEncoding(t *testing.T) {
	var mu sync.Mutex
	var got []string
	addr := serveRaw(t, func(c net.Conn, _ <-chan struct{}) {
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		mu.Lock()
		got = append(got, head.String())
		mu.Unlock()
		io.WriteString(c, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
	})
	tests := []struct {
		name   string
		method string
		target string
		host   string
		close  bool
		want   []string
		absent []string
	}{
		{name: "escaped path and query", method: "GET", target: "/a%2Fb/c%20d?x=1&y=%20",
			want:   []string{"GET /a%2Fb/c%20d?x=1&y=%20 HTTP/1.1\r\n", "Host: " + "HOST" + "\r\n", "X-Test: v\r\n"},
			absent: []string{"Content-Length", "User-Agent", "Accept-Encoding"}},
		{name: "host override", method: "GET", target: "/", host: "example.com:8080",
			want: []string{"Host: example.com:8080\r\n"}},
		{name: "bodiless POST sends zero length", method: "POST", target: "/",
			want: []string{"POST / HTTP/1.1\r\n", "Content-Length: 0\r\n"}},
		{name: "close", method: "GET", target: "/", close: true,
			want: []string{"Connection: close\r\n"}},
	}
	tr := newTransport(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, "http://"+addr+tt.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Test", "v")
			req.Host = tt.host
			req.Close = tt.close
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			resp.Body.Close()
			mu.Lock()
			head := got[len(got)-1]
			mu.Unlock()
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "HOST", addr)
				if !strings.Contains(head, w) {
					t.Errorf("head %q lacks %q", head, w)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(head, a) {
					t.Errorf("head %q has %q", head, a)
				}
			}
		})
	}
}

func TestH1RejectsHeaderInjection(t *testing.T) {
	addr, requests := rawHTTP(t, func(*http.Request, net.Conn) bool { return false })
	tr := newTransport(t, Options{})
	req := newRequest(t, t.Context(), tr, addr, "/")
	req.Header["X-Evil"] = []string{"a\r\nX-Injected: 1"}
	resp, err := tr.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("RoundTrip sent a header value with CRLF")
	}
	if !errors.Is(err, errInvalidRequest) {
		t.Fatalf("err = %v, want errInvalidRequest", err)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("upstream saw %d requests", n)
	}
}

func TestH1ChunkedResponseWithTrailers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Grpc-Status, X-Sum")
		io.WriteString(w, "part1,")
		w.(http.Flusher).Flush()
		io.WriteString(w, "part2")
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set("X-Sum", "abc")
		w.Header().Set(http.TrailerPrefix+"X-Late", "late")
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	cc := &connCounter{}
	tr := newTransport(t, Options{Conns: cc})
	for i := 0; i < 3; i++ {
		resp, err := tr.RoundTrip(newRequest(t, t.Context(), tr, addr, "/"))
		if err != nil {
			t.Fatalf("RoundTrip: %v", err)
		}
		if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 {
			t.Fatalf("ContentLength %d TransferEncoding %q, want -1 and chunked", resp.ContentLength, resp.TransferEncoding)
		}
		if _, ok := resp.Header["Trailer"]; ok {
			t.Fatal("Trailer header left in resp.Header")
		}
		// Announced before the body, as net/http does.
		if _, ok := resp.Trailer["Grpc-Status"]; !ok || len(resp.Trailer) != 2 {
			t.Fatalf("announced trailers %v, want Grpc-Status and X-Sum", resp.Trailer)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != "part1,part2" {
			t.Fatalf("body %q, %v", b, err)
		}
		want := map[string]string{"Grpc-Status": "0", "X-Sum": "abc", "X-Late": "late"}
		for k, v := range want {
			if got := resp.Trailer.Get(k); got != v {
				t.Errorf("trailer %s = %q, want %q (all: %v)", k, got, v, resp.Trailer)
			}
		}
	}
	if n := cc.opened.Load(); n != 1 {
		t.Fatalf("opened %d connections, want 1 (chunked bodies end cleanly)", n)
	}
}

func TestH1RequestBodyStreams(t *testing.T) {
	firstSeen := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		firstSeen <- string(buf)
		rest, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s%s|%s|%s", buf, rest, r.TransferEncoding, r.Trailer.Get("X-Digest"))
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	tr := newTransport(t, Options{})

	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(t.Context(), "POST", "http://"+addr+"/", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Digest": nil}
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := tr.RoundTrip(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{string(b), err}
	}()
	if _, err := io.WriteString(pw, "first"); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-firstSeen:
		if got != "first" {
			t.Fatalf("upstream saw %q first", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("upstream saw nothing before the body ended: the body is held back")
	}
	req.Trailer.Set("X-Digest", "d1") // set before EOF, sent after the last chunk
	io.WriteString(pw, "-second")
	pw.Close()
	r := <-done
	if r.err != nil || r.body != "first-second|[chunked]|d1" {
		t.Fatalf("got %q, %v", r.body, r.err)
	}
}

func TestH1RequestBodyContentLength(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%d:%s", r.ContentLength, b)
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	cc := &connCounter{}
	tr := newTransport(t, Options{Conns: cc})
	for i := 0; i < 5; i++ {
		req, _ := http.NewRequestWithContext(t.Context(), "PUT", "http://"+addr+"/", strings.NewReader("payload"))
		_, body := get(t, tr, req)
		if body != "7:payload" {
			t.Fatalf("upstream saw %q", body)
		}
	}
	if n := cc.opened.Load(); n != 1 {
		t.Fatalf("opened %d connections, want 1", n)
	}
	// A body shorter than its Content-Length is an error, not a hang.
	req, _ := http.NewRequestWithContext(t.Context(), "PUT", "http://"+addr+"/", strings.NewReader("short"))
	req.ContentLength = 10
	if resp, err := tr.RoundTrip(req); err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil {
			t.Fatal("short body went through")
		}
	}
}

func TestH1ResponseFraming(t *testing.T) {
	addr, _ := rawHTTP(t, func(req *http.Request, c net.Conn) bool {
		switch req.URL.Path {
		case "/close":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close")
			return false
		case "/head":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
		case "/204":
			io.WriteString(c, "HTTP/1.1 204 No Content\r\n\r\n")
		case "/304":
			io.WriteString(c, "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nEtag: \"x\"\r\n\r\n")
		case "/continue":
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"+
				"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		case "/http10":
			io.WriteString(c, "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return false
		case "/http10-keepalive":
			io.WriteString(c, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok")
		case "/conn-close":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
			return false
		default:
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
		}
		return true
	})
	tests := []struct {
		name     string
		method   string
		path     string
		status   int
		length   int64
		body     string
		newConns int64 // connections the request and a follow-up GET open
	}{
		{name: "close delimited", method: "GET", path: "/close", status: 200, length: -1, body: "until close", newConns: 2},
		{name: "HEAD with Content-Length", method: "HEAD", path: "/head", status: 200, length: 1000, newConns: 1},
		{name: "204", method: "GET", path: "/204", status: 204, newConns: 1},
		{name: "304 with Content-Length", method: "GET", path: "/304", status: 304, newConns: 1},
		{name: "1xx skipped", method: "POST", path: "/continue", status: 200, length: 2, body: "ok", newConns: 1},
		{name: "HTTP/1.0 closes", method: "GET", path: "/http10", status: 200, length: 2, body: "ok", newConns: 2},
		{name: "HTTP/1.0 keep-alive", method: "GET", path: "/http10-keepalive", status: 200, length: 2, body: "ok", newConns: 1},
		{name: "Connection: close", method: "GET", path: "/conn-close", status: 200, length: 2, body: "ok", newConns: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := &connCounter{}
			tr := newTransport(t, Options{Conns: cc})
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, "http://"+addr+tt.path, nil)
			if tt.path == "/continue" {
				req.Header.Set("Expect", "100-continue")
			}
			resp, body := get(t, tr, req)
			if resp.StatusCode != tt.status || resp.ContentLength != tt.length || body != tt.body {
				t.Fatalf("got %d length %d body %q; want %d %d %q", resp.StatusCode, resp.ContentLength, body, tt.status, tt.length, tt.body)
			}
			// The follow-up must parse cleanly: the framing left nothing unread.
			if _, body := get(t, tr, newRequest(t, t.Context(), tr, addr, "/")); body != "fresh" {
				t.Fatalf("follow-up body %q", body)
			}
			if n := cc.opened.Load(); n != tt.newConns {
				t.Fatalf("opened %d connections, want %d", n, tt.newConns)
			}
		})
	}
}

func TestH1MalformedResponses(t *testing.T) {
	big := "HTTP/1.1 200 OK\r\n" + strings.Repeat("X-Pad: "+strings.Repeat("a", 1000)+"\r\n", 70) + "\r\n"
	tests := []struct {
		name     string
		response string
	}{
		{name: "Content-Length and Transfer-Encoding", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"},
		{name: "oversized headers", response: big},
		{name: "folded header", response: "HTTP/1.1 200 OK\r\nX-A: a\r\n  b\r\nContent-Length: 0\r\n\r\n"},
		{name: "bad Content-Length", response: "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\nhello"},
		{name: "conflicting Content-Length", response: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"},
		{name: "unknown Transfer-Encoding", response: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{name: "not HTTP", response: "SSH-2.0-OpenSSH\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := rawHTTP(t, func(_ *http.Request, c net.Conn) bool {
				io.WriteString(c, tt.response)
				return false
			})
			tr := newTransport(t, Options{})
			resp, err := tr.RoundTrip(newRequest(t, t.Context(), tr, addr, "/"))
			if err == nil {
				resp.Body.Close()
				t.Fatal("RoundTrip accepted a malformed response")
			}
			if !errors.Is(err, ErrReset) || !errors.Is(err, errMalformed) {
				t.Fatalf("err = %v, want a reset for a malformed response", err)
			}
		})
	}
}

func TestH1BadChunkedBody(t *testing.T) {
	tests := []struct {
		name, body string
	}{
		{name: "bare LF after size", body: "5\nhello\r\n0\r\n\r\n"},
		{name: "missing CRLF after data", body: "5\r\nhelloXX0\r\n\r\n"},
		{name: "bad hex", body: "zz\r\nhello\r\n0\r\n\r\n"},
		{name: "truncated", body: "a\r\nhello"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := rawHTTP(t, func(_ *http.Request, c net.Conn) bool {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+tt.body)
				return false
			})
			tr := newTransport(t, Options{})
			ctx := t.Context()
			resp, err := tr.RoundTrip(newRequest(t, ctx, tr, addr, "/"))
			if err != nil {
				t.Fatalf("RoundTrip: %v", err)
			}
			defer resp.Body.Close()
			_, err = io.ReadAll(resp.Body)
			if err == nil {
				t.Fatal("bad chunked body read without error")
			}
			err = Classify(ctx, addr, err, true)
			var e *Error
			if !errors.As(err, &e) || e.Kind != KindReset || !e.AfterHeaders {
				t.Fatalf("Classify = %v, want reset after headers", err)
			}
		})
	}
}

func TestH1SwitchingProtocolsBuffered(t *testing.T) {
	addr := serveRaw(t, func(c net.Conn, _ <-chan struct{}) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		// The first tunnel bytes arrive with the 101 head.
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello")
		io.Copy(c, br)
	})
	cc := &connCounter{}
	tr := newTransport(t, Options{Conns: cc})
	req := newRequest(t, t.Context(), tr, addr, "/")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	rw := resp.Body.(io.ReadWriteCloser)
	buf := make([]byte, 5)
	if _, err := io.ReadFull(rw, buf); err != nil || string(buf) != "hello" {
		t.Fatalf("read %q, %v; want the buffered hello", buf, err)
	}
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("msg%d", i)
		io.WriteString(rw, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(rw, got); err != nil || string(got) != msg {
			t.Fatalf("echo %q, %v; want %q", got, err, msg)
		}
	}
	rw.Close()
	rw.Close() // twice is harmless
	waitUntil(t, "upgraded connection closed", func() bool { return cc.active.Load() == 0 })
}

// A request whose context can never end is watched like any other: when it
// outlives watchAfter the watcher holds a nil Done channel until released,
// and the connection is reused afterwards.
func TestH1SlowResponseContextNeverEnds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * watchAfter)
		io.WriteString(w, "late")
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	cc := &connCounter{}
	tr := newTransport(t, Options{Conns: cc})
	for i := 0; i < 2; i++ {
		resp, body := get(t, tr, newRequest(t, context.Background(), tr, addr, "/"))
		if resp.StatusCode != 200 || body != "late" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	if n := cc.opened.Load(); n != 1 {
		t.Fatalf("opened %d connections over 2 requests, want 1", n)
	}
}
