package h1

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// A connection handed over after a drain began (accepted in time, still in
// protocol detection when Shutdown started) is served once, with
// Connection: close, instead of being reset; after Close it is refused.
func TestServeDuringDrainAnswersWithClose(t *testing.T) {
	s := New(Config{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with no connections: %v", err)
	}
	client, server := net.Pipe()
	defer client.Close()
	if err := s.Serve(server); err != nil {
		t.Fatalf("Serve during a drain: %v", err)
	}
	_ = client.SetDeadline(time.Now().Add(5 * time.Second))
	go func() { _, _ = io.WriteString(client, "GET / HTTP/1.1\r\nHost: a\r\n\r\n") }()
	resp, err := http.ReadResponse(bufio.NewReader(client), nil)
	if err != nil {
		t.Fatalf("response: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "ok" || !resp.Close {
		t.Errorf("got %d %q close=%v, want 200 ok with Connection: close", resp.StatusCode, b, resp.Close)
	}

	_ = s.Close()
	c2, s2 := net.Pipe()
	defer c2.Close()
	if err := s.Serve(s2); err != ErrServerClosed {
		t.Errorf("Serve after Close = %v, want ErrServerClosed", err)
	}
}
