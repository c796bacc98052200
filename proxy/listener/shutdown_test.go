package listener

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// blockingHandler signals when a request arrived and answers when released.
type blockingHandler struct {
	arrived chan struct{}
	release chan struct{}
}

func newBlockingHandler() *blockingHandler {
	return &blockingHandler{arrived: make(chan struct{}, 16), release: make(chan struct{})}
}

func (h *blockingHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/block" {
		h.arrived <- struct{}{}
		<-h.release
	}
	_, _ = io.WriteString(w, "done")
}

func waitChan(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitRefused waits until new connections to addr are refused.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	waitFor(t, 10*time.Second, "new connections refused", func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	})
}

func TestShutdownHTTP1(t *testing.T) {
	checkNoGoroutineLeak(t)
	h := newBlockingHandler()
	l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", h, HTTPSettings{})}})
	addr := l.Addr().String()

	idle := dialRaw(t, l)
	_, _ = io.WriteString(idle, "GET /quick HTTP/1.1\r\nHost: a\r\n\r\n")
	idleBR := bufio.NewReader(idle)
	if resp, err := http.ReadResponse(idleBR, nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("idle conn first request: %v", err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}

	busy := dialRaw(t, l)
	_, _ = io.WriteString(busy, "GET /block HTTP/1.1\r\nHost: a\r\n\r\n")
	waitChan(t, h.arrived, "in-flight request")

	shutdownErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdownErr <- l.Shutdown(ctx)
	}()
	waitRefused(t, addr)
	if _, err := idleBR.ReadByte(); err != io.EOF {
		t.Errorf("idle keep-alive conn: read %v, want EOF", err)
	}
	close(h.release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("in-flight response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "done" || !resp.Close {
		t.Errorf("in-flight response %q close=%v, want done with Connection: close", b, resp.Close)
	}
	if err := <-shutdownErr; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestShutdownHTTP2GoAway(t *testing.T) {
	checkNoGoroutineLeak(t)
	h := newBlockingHandler()
	l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", h, HTTPSettings{})}})
	c := dialRaw(t, l)
	_, _ = io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb []byte
	enc := hpack.NewEncoder(writerFunc(func(p []byte) (int, error) { hb = append(hb, p...); return len(p), nil }))
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/block"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb, EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	waitChan(t, h.arrived, "in-flight stream")

	shutdownErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdownErr <- l.Shutdown(ctx)
	}()
	var sawGoAway, released, streamDone bool
	for !streamDone {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("read frame: %v (goaway=%v)", err, sawGoAway)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			sawGoAway = true
			if !released {
				released = true
				close(h.release)
			}
		case *http2.DataFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				streamDone = true
			}
		case *http2.HeadersFrame:
			if f.StreamID == 1 && f.StreamEnded() {
				streamDone = true
			}
		}
	}
	if !sawGoAway {
		t.Errorf("no GOAWAY before the stream completed")
	}
	if err := <-shutdownErr; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestShutdownDeadlineClosesAll(t *testing.T) {
	h := newBlockingHandler()
	t.Cleanup(func() { close(h.release) })
	l := startListener(t, Config{FilterChains: []FilterChain{plainChain("p", h, HTTPSettings{})}})
	c := dialRaw(t, l)
	_, _ = io.WriteString(c, "GET /block HTTP/1.1\r\nHost: a\r\n\r\n")
	waitChan(t, h.arrived, "in-flight request")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := l.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown with a stuck request returned nil, want the deadline error")
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after the drain deadline")
	}
	if got := l.Stats().DownstreamCxActive; got != 0 {
		t.Errorf("DownstreamCxActive = %d after Shutdown", got)
	}
}

func TestServeReturnsOnContextCancel(t *testing.T) {
	checkNoGoroutineLeak(t)
	l, err := New(Config{Name: "x", Address: "127.0.0.1:0", FilterChains: []FilterChain{plainChain("p", nil, HTTPSettings{})}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx) }()
	get(t, h1Client(t), "http://"+l.Addr().String()+"/")
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after ctx cancel")
	}
}
