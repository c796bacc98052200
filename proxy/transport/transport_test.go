package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// connCounter is a ConnObserver that counts.
type connCounter struct {
	opened, active, failed atomic.Int64
	mu                     sync.Mutex
	lastFail               *Error
}

func (c *connCounter) ConnOpened(string) func() {
	c.opened.Add(1)
	c.active.Add(1)
	return func() { c.active.Add(-1) }
}

func (c *connCounter) ConnectFailed(_ string, err *Error) {
	c.failed.Add(1)
	c.mu.Lock()
	c.lastFail = err
	c.mu.Unlock()
}

func newTransport(t *testing.T, o Options) *Transport {
	t.Helper()
	tr, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func newRequest(t *testing.T, ctx context.Context, tr *Transport, addr, path string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, tr.Scheme()+"://"+addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// get does a GET and returns the body, failing the test on any error.
func get(t *testing.T, tr *Transport, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("RoundTrip: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

func protoHandler(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Accept-Encoding", r.Header.Get("Accept-Encoding"))
	io.WriteString(w, r.Proto)
}

// listen returns a loopback listener closed at cleanup.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// serveRaw accepts connections and hands each to fn until the listener
// closes; stop is closed at cleanup, before waiting for fn to return.
func serveRaw(t *testing.T, fn func(c net.Conn, stop <-chan struct{})) string {
	t.Helper()
	ln := listen(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				fn(c, stop)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); close(stop); wg.Wait() })
	return ln.Addr().String()
}

func TestErrorClasses(t *testing.T) {
	closedAddr := func() string {
		ln := listen(t)
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}()
	acceptClose := serveRaw(t, func(c net.Conn, _ <-chan struct{}) {
		// Read the request so the close is not a reset of unread data.
		bufio.NewReader(c).ReadString('\n')
	})
	hang := serveRaw(t, func(c net.Conn, stop <-chan struct{}) {
		<-stop // hold the connection, unanswered, until the test ends
	})
	untrusted := httptest.NewTLSServer(http.HandlerFunc(protoHandler))
	t.Cleanup(untrusted.Close)
	untrustedAddr := strings.TrimPrefix(untrusted.URL, "https://")

	tests := []struct {
		name    string
		addr    string
		tls     bool
		timeout time.Duration
		cancel  bool
		want    error
		wantTLS bool
	}{
		{name: "closed port", addr: closedAddr, want: ErrConnect},
		{name: "accept then close", addr: acceptClose, want: ErrReset},
		{name: "hang until deadline", addr: hang, timeout: 100 * time.Millisecond, want: ErrTimeout},
		{name: "hang until canceled", addr: hang, cancel: true, want: ErrCanceled},
		{name: "untrusted certificate", addr: untrustedAddr, tls: true, want: ErrConnect, wantTLS: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc := &connCounter{}
			o := Options{Conns: cc, ConnectTimeout: 2 * time.Second}
			if tt.tls {
				o.TLS = &tls.Config{} // system roots: the test CA is not among them
			}
			tr := newTransport(t, o)
			ctx := t.Context()
			if tt.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.timeout)
				defer cancel()
			}
			if tt.cancel {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			resp, err := tr.RoundTrip(newRequest(t, ctx, tr, tt.addr, "/"))
			if err == nil {
				resp.Body.Close()
				t.Fatal("RoundTrip succeeded, want an error")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v (kind %v), want %v", err, KindOf(err), tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %T is not *Error", err)
			}
			if e.TLS != tt.wantTLS || e.AfterHeaders {
				t.Fatalf("err = %+v, want TLS=%v AfterHeaders=false", e, tt.wantTLS)
			}
			if e.Kind == KindConnect && (cc.failed.Load() != 1 || cc.opened.Load() != 0) {
				t.Fatalf("ConnectFailed called %d times, ConnOpened %d; want 1 and 0", cc.failed.Load(), cc.opened.Load())
			}
			if tt.want == ErrTimeout && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("timeout %v does not unwrap to context.DeadlineExceeded", err)
			}
		})
	}
}

func TestResetAfterHeaders(t *testing.T) {
	addr := serveRaw(t, func(c net.Conn, _ <-chan struct{}) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadString('\n')
			if err != nil || line == "\r\n" {
				break
			}
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
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
		t.Fatal("body read succeeded, want an error")
	}
	err = Classify(ctx, addr, err, true)
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindReset || !e.AfterHeaders {
		t.Fatalf("Classify = %v, want reset after headers", err)
	}
}

// fullListener returns the address of a loopback socket listening with a
// backlog of 0 that never accepts: once its queue holds a connection, the
// kernel drops further SYNs and a dial can only time out.
func fullListener(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	for i := 0; i < 8; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			return addr // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Skip("kernel kept accepting connections into a full backlog")
	return ""
}

func TestConnectTimeout(t *testing.T) {
	addr := fullListener(t)
	cc := &connCounter{}
	tr := newTransport(t, Options{Conns: cc, ConnectTimeout: 150 * time.Millisecond})
	resp, err := tr.RoundTrip(newRequest(t, t.Context(), tr, addr, "/"))
	if err == nil {
		resp.Body.Close()
		t.Fatal("RoundTrip succeeded, want a connect timeout")
	}
	if !errors.Is(err, ErrConnect) || !ConnectTimeout(err) {
		t.Fatalf("err = %v, want a connect timeout", err)
	}
	// A connect timeout is not the route's timeout: callers answer 503, not 504.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrTimeout) {
		t.Fatalf("connect timeout %v matches a route timeout", err)
	}
	if cc.failed.Load() != 1 {
		t.Fatalf("ConnectFailed called %d times, want 1", cc.failed.Load())
	}
}

type timeoutCause struct{}

func (timeoutCause) Error() string { return "route timeout" }
func (timeoutCause) Timeout() bool { return true }

// TestContextKind: a cancel whose cause reports Timeout() is a timeout (the
// router's own timers), any other cancel is the client leaving.
func TestContextKind(t *testing.T) {
	live := context.Background()
	deadline, cancelD := context.WithDeadline(live, time.Unix(1, 0))
	defer cancelD()
	timedOut, cancelT := context.WithCancelCause(live)
	cancelT(timeoutCause{})
	gone, cancelG := context.WithCancelCause(live)
	cancelG(context.Canceled)
	for name, tc := range map[string]struct {
		ctx  context.Context
		want Kind
	}{
		"live": {live, 0}, "deadline": {deadline, KindTimeout},
		"timeout cause": {timedOut, KindTimeout}, "client gone": {gone, KindCanceled},
	} {
		if got := contextKind(tc.ctx); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
		if tc.want != 0 {
			if got := KindOf(Classify(tc.ctx, "a:1", errors.New("read: connection closed"), false)); got != tc.want {
				t.Errorf("%s: Classify gives %v, want %v", name, got, tc.want)
			}
		}
	}
}
