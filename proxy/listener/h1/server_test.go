package h1

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// startServer serves h with the codec on 127.0.0.1:0 until cleanup.
func startServer(t testing.TB, cfg Config) (*Server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := New(cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = s.Serve(c)
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		_ = s.Close()
	})
	return s, ln.Addr().String()
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestResponseFraming(t *testing.T) {
	tests := []struct {
		name        string
		req         string
		h           http.HandlerFunc
		wantStatus  int
		wantCL      int64
		wantTE      []string
		wantBody    string
		wantClose   bool
		wantTrailer http.Header
		wantHeader  map[string]string
		bodyErrOK   bool // the body must end early (the server closed)
	}{
		{name: "small body gets a length", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			h:          func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") },
			wantStatus: 200, wantCL: 5, wantBody: "hello", wantHeader: map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		{name: "empty body", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			h:          func(w http.ResponseWriter, r *http.Request) {},
			wantStatus: 200, wantCL: 0},
		{name: "large body is chunked", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			h:          func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(make([]byte, 10000)) },
			wantStatus: 200, wantCL: -1, wantTE: []string{"chunked"}, wantBody: string(make([]byte, 10000))},
		{name: "flush makes it chunked", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			h: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "a")
				w.(http.Flusher).Flush()
				_, _ = io.WriteString(w, "b")
			},
			wantStatus: 200, wantCL: -1, wantTE: []string{"chunked"}, wantBody: "ab"},
		{name: "declared length kept", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "10000")
				w.Header().Set("Content-Type", "x/y")
				_, _ = w.Write(make([]byte, 10000))
			},
			wantStatus: 200, wantCL: 10000, wantBody: string(make([]byte, 10000)), wantHeader: map[string]string{"Content-Type": "x/y"}},
		{name: "short declared length closes", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", "3")
				_, _ = io.WriteString(w, "ab")
			},
			wantStatus: 200, wantCL: 3, wantBody: "ab", bodyErrOK: true},
		{name: "HEAD has no body", req: "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
			h:          func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") },
			wantStatus: 200, wantCL: 5},
		{name: "204", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			h:          func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) },
			wantStatus: 204, wantCL: 0, wantHeader: map[string]string{"Content-Length": ""}},
		{name: "304 drops entity headers", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "x/y")
				w.Header().Set("Etag", `"1"`)
				w.WriteHeader(304)
			},
			wantStatus: 304, wantCL: 0, wantHeader: map[string]string{"Content-Type": "", "Etag": `"1"`, "Content-Length": ""}},
		{name: "announced trailers", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Trailer", "Grpc-Status")
				_, _ = io.WriteString(w, "x")
				w.Header().Set("Grpc-Status", "0")
			},
			wantStatus: 200, wantCL: -1, wantTE: []string{"chunked"}, wantBody: "x", wantTrailer: http.Header{"Grpc-Status": {"0"}},
			wantHeader: map[string]string{"Grpc-Status": ""}},
		{name: "TrailerPrefix trailers", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			h: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "x")
				w.Header().Set(http.TrailerPrefix+"X-Sum", "7")
			},
			wantStatus: 200, wantCL: -1, wantTE: []string{"chunked"}, wantBody: "x", wantTrailer: http.Header{"X-Sum": {"7"}}},
		{name: "client close", req: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			h:          func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "x") },
			wantStatus: 200, wantCL: 1, wantBody: "x", wantClose: true},
		{name: "HTTP/1.0 streams until close", req: "GET / HTTP/1.0\r\n\r\n",
			h: func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "a")
				w.(http.Flusher).Flush()
			},
			wantStatus: 200, wantCL: -1, wantBody: "a", wantClose: true},
		{name: "header edits after WriteHeader ignored", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-A", "1")
				w.WriteHeader(201)
				w.Header().Set("X-A", "2")
				w.Header().Set("X-B", "late")
			},
			wantStatus: 201, wantCL: 0, wantHeader: map[string]string{"X-A": "1", "X-B": ""}},
		{name: "response splitting neutralised", req: "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			h: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("X-A", "a\r\nX-Evil: 1")
			},
			wantStatus: 200, wantCL: 0, wantHeader: map[string]string{"X-A": "a  X-Evil: 1", "X-Evil": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := startServer(t, Config{Handler: tt.h})
			c := dial(t, addr)
			_, _ = io.WriteString(c, tt.req)
			br := bufio.NewReader(c)
			req, _ := http.ReadRequest(bufio.NewReader(strings.NewReader(tt.req)))
			resp, err := http.ReadResponse(br, req)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if tt.bodyErrOK != errors.Is(err, io.ErrUnexpectedEOF) || err != nil && !tt.bodyErrOK {
				t.Fatalf("body error: %v", err)
			}
			if resp.StatusCode != tt.wantStatus || resp.ContentLength != tt.wantCL || string(body) != tt.wantBody ||
				resp.Close != tt.wantClose || strings.Join(resp.TransferEncoding, ",") != strings.Join(tt.wantTE, ",") {
				t.Errorf("got %d CL=%d TE=%v close=%v body %d bytes; want %d CL=%d TE=%v close=%v body %d bytes",
					resp.StatusCode, resp.ContentLength, resp.TransferEncoding, resp.Close, len(body),
					tt.wantStatus, tt.wantCL, tt.wantTE, tt.wantClose, len(tt.wantBody))
			}
			if resp.Header.Get("Date") == "" {
				t.Error("no Date header")
			}
			for k, v := range tt.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			for k, v := range tt.wantTrailer {
				if got := resp.Trailer.Get(k); got != v[0] {
					t.Errorf("trailer %s = %q, want %q (trailers %v)", k, got, v[0], resp.Trailer)
				}
			}
		})
	}
}

func TestClientGoneCancelsContext(t *testing.T) {
	canceled := make(chan error, 1)
	arrived := make(chan struct{})
	_, addr := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// As with net/http, the watch starts once the body is consumed.
		_, _ = io.ReadAll(r.Body)
		close(arrived)
		select {
		case <-r.Context().Done():
			canceled <- r.Context().Err()
		case <-time.After(10 * time.Second):
			canceled <- nil
		}
	})})
	c := dial(t, addr)
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
	<-arrived
	_ = c.Close()
	if err := <-canceled; !errors.Is(err, context.Canceled) {
		t.Fatalf("handler context: %v, want canceled", err)
	}
}

func TestSlowHandlerKeepsPipelinedRequest(t *testing.T) {
	// The background read of a slow handler must not lose the next
	// pipelined request's first byte.
	_, addr := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(50 * time.Millisecond) // longer than bgReadDelay: the watch runs
		}
		_, _ = io.WriteString(w, r.URL.Path)
	})})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	_, _ = io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	// Let the watch start, then send the next request while it reads.
	time.Sleep(20 * time.Millisecond)
	_, _ = io.WriteString(c, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"/slow", "/next"} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		if string(b) != want {
			t.Fatalf("got %q, want %q", b, want)
		}
	}
}

func TestHijackCarriesBufferedBytes(t *testing.T) {
	_, addr := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n')
		_, _ = brw.WriteString("echo:" + line)
		_ = brw.Flush()
	})})
	c := dial(t, addr)
	// The upgraded protocol's first bytes arrive with the request.
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\nearly\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	if line, _ := br.ReadString('\n'); line != "echo:early\n" {
		t.Fatalf("echo = %q", line)
	}
}

func TestExpect(t *testing.T) {
	_, addr := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(b)
	})})
	t.Run("other expectation gets 417", func(t *testing.T) {
		c := dial(t, addr)
		_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: magic\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != 417 || !resp.Close {
			t.Fatalf("got %v %v, want 417 with close", resp, err)
		}
	})
	t.Run("continue only once and only when read", func(t *testing.T) {
		c := dial(t, addr)
		_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
		br := bufio.NewReader(c)
		line, _ := br.ReadString('\n')
		if line != "HTTP/1.1 100 Continue\r\n" {
			t.Fatalf("got %q", line)
		}
		_, _ = br.ReadString('\n')
		_, _ = io.WriteString(c, "ok")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
			t.Fatalf("body %q", b)
		}
	})
}

func TestPanics(t *testing.T) {
	_, addr := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/abort" {
			panic(http.ErrAbortHandler)
		}
		panic("boom")
	})})
	for _, path := range []string{"/abort", "/boom"} {
		c := dial(t, addr)
		_, _ = io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: a\r\n\r\n")
		if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
			t.Errorf("%s: read %q %v, want a silent close", path, b, err)
		}
	}
}

func TestShutdown(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1)
	s, addr := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/block" {
			arrived <- struct{}{}
			<-release
		}
		_, _ = io.WriteString(w, "done")
	})})
	idle := dial(t, addr)
	_, _ = io.WriteString(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	idleBR := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(idleBR, nil); err != nil {
		t.Fatal(err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	busy := dial(t, addr)
	_, _ = io.WriteString(busy, "GET /block HTTP/1.1\r\nHost: a\r\n\r\n")
	<-arrived
	var wg sync.WaitGroup
	var shutErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutErr = s.Shutdown(ctx)
	}()
	if _, err := idleBR.ReadByte(); err != io.EOF {
		t.Errorf("idle conn: %v, want EOF", err)
	}
	close(release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil || !resp.Close {
		t.Fatalf("in-flight response %v %v, want Connection: close", resp, err)
	}
	wg.Wait()
	if shutErr != nil {
		t.Errorf("Shutdown: %v", shutErr)
	}
}

func TestBodyReadAfterClose(t *testing.T) {
	_, addr := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			return
		}
		_ = r.Body.Close()
		if _, err := r.Body.Read(make([]byte, 1)); err != http.ErrBodyReadAfterClose {
			t.Errorf("read after close: %v", err)
		}
	})})
	c := dial(t, addr)
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	for i := 0; i < 2; i++ { // drained on Close: the next request is served
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("response %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
	}
}

func TestRequestBodyLeftovers(t *testing.T) {
	_, addr := startServer(t, Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "x") // never reads the body
	})})
	t.Run("small leftover is drained, connection kept", func(t *testing.T) {
		c := dial(t, addr)
		_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: a\r\n\r\n")
		br := bufio.NewReader(c)
		for i := 0; i < 2; i++ {
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.Close {
				t.Fatalf("response %d: %v close=%v", i, err, resp != nil && resp.Close)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
		}
	})
	t.Run("large leftover closes", func(t *testing.T) {
		c := dial(t, addr)
		_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || !resp.Close {
			t.Fatalf("%v close=%v, want Connection: close", err, resp != nil && resp.Close)
		}
	})
}
