package listener

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// An updated listener takes over the socket: connections opened after the
// handoff reach the new chains, a request in flight on the old one
// finishes there, and the address never refuses a connection.
func TestDetachAdoptKeepsAddressAndInFlight(t *testing.T) {
	checkNoGoroutineLeak(t)
	h := newBlockingHandler()
	old := startListener(t, Config{FilterChains: []FilterChain{plainChain("old", h, HTTPSettings{})}})
	addr := old.Addr().String()

	busy := dialRaw(t, old)
	_, _ = io.WriteString(busy, "GET /block HTTP/1.1\r\nHost: a\r\n\r\n")
	waitChan(t, h.arrived, "in-flight request")

	ln := old.Detach()
	if ln.Addr().String() != addr {
		t.Fatalf("Detach returned %s, want %s", ln.Addr(), addr)
	}
	next, err := Adopt(Config{Name: "next", FilterChains: []FilterChain{plainChain("new", okHandler("new"), HTTPSettings{})}},
		ln, hclog.NewNullLogger())
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- next.Serve(context.Background()) }()
	t.Cleanup(func() {
		_ = next.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		drained <- old.Shutdown(ctx)
	}()

	c := h1Client(t)
	for i := 0; i < 5; i++ {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("request %d after handoff: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if got := resp.Header.Get("X-Chain"); got != "new" {
			t.Fatalf("request %d served by chain %q, want new", i, got)
		}
	}

	close(h.release)
	resp, err := http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("in-flight response on the old listener: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "done" {
		t.Errorf("in-flight body %q, want done", b)
	}
	if err := <-drained; err != nil {
		t.Errorf("old Shutdown: %v", err)
	}
	// The old listener's drain must not have closed the shared socket.
	resp, err = c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("request after the old listener drained: %v", err)
	}
	_ = resp.Body.Close()
}

// Detach before Serve hands the socket over untouched.
func TestDetachBeforeServe(t *testing.T) {
	l, err := New(Config{Name: "a", Address: "127.0.0.1:0", FilterChains: []FilterChain{plainChain("a", okHandler("a"), HTTPSettings{})}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln := l.Detach()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Serve(context.Background()); err != nil {
		t.Fatalf("Serve after Detach: %v", err)
	}
	next, err := Adopt(Config{Name: "b", FilterChains: []FilterChain{plainChain("b", okHandler("b"), HTTPSettings{})}}, ln, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- next.Serve(context.Background()) }()
	resp, err := h1Client(t).Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.Header.Get("X-Chain") != "b" {
		t.Errorf("served by %q, want b", resp.Header.Get("X-Chain"))
	}
	_ = next.Close()
	<-done
}
