package floor

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func start(t *testing.T, upstream string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := New(upstream)
	go p.Serve(ln)
	t.Cleanup(func() { ln.Close(); p.Close() })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

// Keep-alive GETs are relayed whole, bodies of every size the buffer
// boundaries can cut, on one client connection and pooled upstream ones.
func TestRelaysKeepAliveGETs(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := strings.Repeat("x", len(r.URL.Path)*1000)
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	}))
	defer be.Close()
	addr := start(t, be.Listener.Addr().String())
	c, br := dial(t, addr)
	for _, path := range []string{"/", "/ab", "/abcdefghij", "/"} {
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || resp.Header.Get("X-Path") != path || len(b) != len(path)*1000 {
			t.Fatalf("GET %s: status %d, X-Path %q, %d body bytes, %v", path, resp.StatusCode, resp.Header.Get("X-Path"), len(b), err)
		}
	}
}

// What it does not handle ends the connection, with a 501 for a request
// body and a 502 when the upstream is down; a response it cannot frame
// (chunked) ends both connections: it never relays what it cannot frame.
func TestRefusesWhatItCannotFrame(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/chunked" {
			io.WriteString(w, strings.Repeat("x", 5000)) // over net/http's buffer: chunked
		}
	}))
	defer be.Close()
	for _, tt := range []struct {
		name, upstream, req string
		status              int
	}{
		{"request body", be.Listener.Addr().String(), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", 501},
		{"chunked request", be.Listener.Addr().String(), "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
		{"upstream down", "127.0.0.1:1", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 502},
		{"chunked response", be.Listener.Addr().String(), "GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n", 0},
		{"head over the buffer", be.Listener.Addr().String(), "GET / HTTP/1.1\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\n\r\n", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wantRefusal(t, start(t, tt.upstream), tt.req, tt.status)
		})
	}
}

// The answer to a HEAD is its head alone, though it announces a length.
func TestRelaysHEAD(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		io.WriteString(w, "hello")
	}))
	defer be.Close()
	c, br := dial(t, start(t, be.Listener.Addr().String()))
	for _, m := range []string{"HEAD", "GET"} {
		io.WriteString(c, m+" / HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		b, err := io.ReadAll(resp.Body)
		if want := map[string]string{"HEAD": "", "GET": "hello"}[m]; err != nil || string(b) != want || resp.ContentLength != 5 {
			t.Fatalf("%s: body %q (%v), length %d; want %q, 5", m, b, err, resp.ContentLength, want)
		}
	}
}

// wantRefusal sends req to addr and wants a response with status and the
// connection closed after it; status 0 wants it closed with no response.
func wantRefusal(t *testing.T, addr, req string, status int) {
	t.Helper()
	c, br := dial(t, addr)
	io.WriteString(c, req)
	if status != 0 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != status {
			t.Fatalf("response %v, %v; want status %d", resp, err, status)
		}
	}
	// Closed with the request unread, the socket may reset.
	if _, err := br.ReadByte(); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read: %v, want the connection closed (after status %d)", err, status)
	}
}
