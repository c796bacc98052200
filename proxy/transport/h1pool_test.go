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
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestH1ContextEnds(t *testing.T) {
	release := make(chan struct{})
	addr, _ := rawHTTP(t, func(req *http.Request, c net.Conn) bool {
		switch req.URL.Path {
		case "/stall-headers":
			<-release
			return false
		case "/stall-body":
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
			<-release
			return false
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return true
	})
	t.Cleanup(func() { close(release) }) // before the server's cleanup waits
	tests := []struct {
		name     string
		path     string
		deadline bool
		want     error
	}{
		{name: "cancel waiting for headers", path: "/stall-headers", want: ErrCanceled},
		{name: "deadline waiting for headers", path: "/stall-headers", deadline: true, want: ErrTimeout},
		{name: "cancel reading the body", path: "/stall-body", want: ErrCanceled},
		{name: "deadline reading the body", path: "/stall-body", deadline: true, want: ErrTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := &connCounter{}
			tr := newTransport(t, Options{Conns: cc})
			// Warm one pooled connection: it must not be reused afterwards.
			get(t, tr, newRequest(t, t.Context(), tr, addr, "/"))
			var ctx context.Context
			var cancel context.CancelFunc
			if tt.deadline {
				ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
			} else {
				ctx, cancel = context.WithCancel(t.Context())
				time.AfterFunc(100*time.Millisecond, cancel)
			}
			defer cancel()
			resp, err := tr.RoundTrip(newRequest(t, ctx, tr, addr, tt.path))
			afterHeaders := err == nil
			if err == nil {
				_, err = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			if err == nil {
				t.Fatal("no error")
			}
			err = Classify(ctx, addr, err, afterHeaders)
			if !errors.Is(err, tt.want) || KindOf(err) == 0 {
				t.Fatalf("err = %v (kind %v), want %v", err, KindOf(err), tt.want)
			}
			if tt.deadline && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v does not unwrap to context.DeadlineExceeded", err)
			}
			waitUntil(t, "aborted connection closed", func() bool { return cc.active.Load() == 0 })
			get(t, tr, newRequest(t, t.Context(), tr, addr, "/"))
			if n := cc.opened.Load(); n != 2 {
				t.Fatalf("opened %d connections, want 2: the aborted one is not reused", n)
			}
		})
	}
}

func TestH1StaleConnections(t *testing.T) {
	// Closes every connection after one response without saying so.
	closer, _ := rawHTTP(t, func(_ *http.Request, c net.Conn) bool {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		return false
	})
	// Answers one request, then closes the connection when the next one
	// arrives: the race of an upstream idle timeout, made deterministic.
	racer := serveRaw(t, func(c net.Conn, _ <-chan struct{}) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		http.ReadRequest(br)
	})
	t.Run("closes after every response", func(t *testing.T) {
		cc := &connCounter{}
		tr := newTransport(t, Options{Conns: cc})
		for i := 0; i < 30; i++ {
			if _, body := get(t, tr, newRequest(t, t.Context(), tr, closer, "/")); body != "ok" {
				t.Fatalf("request %d: body %q", i, body)
			}
		}
		if n := cc.opened.Load(); n < 30 {
			t.Fatalf("opened %d connections for 30 requests, want at least 30", n)
		}
	})
	t.Run("closed while idle", func(t *testing.T) {
		// Once the upstream's close has arrived, even a request that cannot
		// be retried (a POST with a body) must not be sent on the dead
		// connection.
		cc := &connCounter{}
		tr := newTransport(t, Options{Conns: cc})
		for i := 0; i < 5; i++ {
			req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+closer+"/", strings.NewReader("x"))
			if _, body := get(t, tr, req); body != "ok" {
				t.Fatalf("request %d: body %q", i, body)
			}
			waitUntil(t, "upstream closed", func() bool {
				tr.h1.mu.Lock()
				defer tr.h1.mu.Unlock()
				list := tr.h1.idle[closer]
				return len(list) == 1 && !list[0].idle.alive()
			})
		}
	})
	t.Run("closed as the request arrives", func(t *testing.T) {
		tests := []struct {
			method  string
			wantErr bool
		}{
			{method: "GET"},
			{method: "DELETE"},
			{method: "POST", wantErr: true},
		}
		for _, tt := range tests {
			cc := &connCounter{}
			tr := newTransport(t, Options{Conns: cc})
			get(t, tr, newRequest(t, t.Context(), tr, racer, "/"))
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, "http://"+racer+"/", nil)
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("%s: err = %v, wantErr %v", tt.method, err, tt.wantErr)
			}
			if tt.wantErr && !errors.Is(err, ErrReset) {
				t.Fatalf("%s: err = %v, want a reset", tt.method, err)
			}
			if want := int64(2); !tt.wantErr && cc.opened.Load() != want {
				t.Fatalf("%s: opened %d connections, want %d (one retry)", tt.method, cc.opened.Load(), want)
			}
		}
	})
}

func TestH1MaxRequestsPerConnection(t *testing.T) {
	var mu sync.Mutex
	var closes int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Close {
			mu.Lock()
			closes++
			mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	cc := &connCounter{}
	tr := newTransport(t, Options{Conns: cc, MaxRequestsPerConnection: 4})
	for i := 0; i < 12; i++ {
		get(t, tr, newRequest(t, t.Context(), tr, addr, "/"))
	}
	mu.Lock()
	defer mu.Unlock()
	if n := cc.opened.Load(); n != 3 || closes != 3 {
		t.Fatalf("opened %d connections, %d requests said close; want 3 and 3", n, closes)
	}
}

func TestH1IdleTimeoutReaping(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	cc := &connCounter{}
	tr := newTransport(t, Options{Conns: cc, IdleTimeout: 50 * time.Millisecond})
	get(t, tr, newRequest(t, t.Context(), tr, addr, "/"))
	if cc.active.Load() != 1 {
		t.Fatal("connection not kept")
	}
	waitUntil(t, "idle connection reaped", func() bool { return cc.active.Load() == 0 })
	waitUntil(t, "reaper exits with an empty pool", func() bool {
		tr.h1.mu.Lock()
		defer tr.h1.mu.Unlock()
		return !tr.h1.reaping
	})
	get(t, tr, newRequest(t, t.Context(), tr, addr, "/"))
	if n := cc.opened.Load(); n != 2 {
		t.Fatalf("opened %d connections, want 2", n)
	}
}

func TestH1MaxIdlePerHost(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "body") // holds the connection until read
	}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	cc := &connCounter{}
	tr := newTransport(t, Options{Conns: cc, MaxIdleConnsPerHost: 2})
	// Four responses held open at once need four connections...
	var resps []*http.Response
	for i := 0; i < 4; i++ {
		resp, err := tr.RoundTrip(newRequest(t, t.Context(), tr, addr, "/"))
		if err != nil {
			t.Fatal(err)
		}
		resps = append(resps, resp)
	}
	for _, r := range resps {
		io.ReadAll(r.Body)
		r.Body.Close()
	}
	// ...of which only two stay idle.
	if n := cc.active.Load(); n != 2 {
		t.Fatalf("%d connections kept, want 2", n)
	}
}

func TestH1ConcurrentAndClose(t *testing.T) {
	before := runtime.NumGoroutine()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	addr := strings.TrimPrefix(srv.URL, "http://")
	cc := &connCounter{}
	tr, err := New(Options{Conns: cc})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				want := fmt.Sprintf("g%d-i%d", g, i)
				req, _ := http.NewRequest("POST", "http://"+addr+"/", strings.NewReader(want))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					errs <- err
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != want {
					errs <- fmt.Errorf("got %q, %v; want %q", b, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := cc.opened.Load(); n > 8 {
		t.Fatalf("opened %d connections for 8 concurrent clients", n)
	}
	tr.Close()
	if n := cc.active.Load(); n != 0 {
		t.Fatalf("%d connections open after Close", n)
	}
	srv.Close()
	waitUntil(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}
