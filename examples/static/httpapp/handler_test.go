package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// startApp serves the app on a loopback port and stops it when the test ends.
func startApp(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, ln, name, hclog.NewNullLogger()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestHandler(t *testing.T) {
	addr := startApp(t, "httpapp")
	client := &http.Client{Timeout: 5 * time.Second}

	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		wantStatus int
		check      func(t *testing.T, body []byte)
	}{
		{
			name: "hello reports instance and forwarding headers", method: http.MethodGet, path: "/hello?x=1",
			header: map[string]string{
				"X-Request-Id":      "req-1",
				"X-Forwarded-For":   "10.0.0.1",
				"X-Forwarded-Proto": "http",
				"X-Not-Reported":    "secret",
			},
			wantStatus: http.StatusOK,
			check: func(t *testing.T, body []byte) {
				var got helloResponse
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatalf("decode %q: %v", body, err)
				}
				if got.Service != "httpapp" || got.Instance != addr || got.Path != "/hello?x=1" || got.Proto != "HTTP/1.1" {
					t.Errorf("got %+v", got)
				}
				for k, want := range map[string]string{"x-request-id": "req-1", "x-forwarded-for": "10.0.0.1", "x-forwarded-proto": "http"} {
					if got.Headers[k] != want {
						t.Errorf("header %s = %q, want %q", k, got.Headers[k], want)
					}
				}
				if _, ok := got.Headers["x-not-reported"]; ok {
					t.Errorf("unselected header reported: %v", got.Headers)
				}
			},
		},
		{name: "hello subpath", method: http.MethodGet, path: "/hello/world", wantStatus: http.StatusOK},
		{
			name: "healthz", method: http.MethodGet, path: "/healthz", wantStatus: http.StatusOK,
			check: func(t *testing.T, body []byte) {
				if string(body) != "ok\n" {
					t.Errorf("body = %q", body)
				}
			},
		},
		{name: "unknown path", method: http.MethodGet, path: "/nope", wantStatus: http.StatusNotFound},
		{name: "echo needs POST", method: http.MethodGet, path: "/echo", wantStatus: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, "http://"+addr+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", tt.method, tt.path, err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %q)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}
}

// TestEchoStreams checks that /echo answers each chunk while the upload is
// still open, over HTTP/1.1 and h2c: the body is streamed, not buffered.
func TestEchoStreams(t *testing.T) {
	addr := startApp(t, "httpapp")
	tests := []struct {
		name      string
		protocols func() *http.Protocols
		wantMajor int
	}{
		{name: "http1", protocols: func() *http.Protocols { p := new(http.Protocols); p.SetHTTP1(true); return p }, wantMajor: 1},
		{name: "h2c", protocols: func() *http.Protocols { p := new(http.Protocols); p.SetUnencryptedHTTP2(true); return p }, wantMajor: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{Protocols: tt.protocols()}
			t.Cleanup(tr.CloseIdleConnections)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()

			pr, pw := io.Pipe()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/echo", pr)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "text/plain")
			respc := make(chan *http.Response, 1)
			errc := make(chan error, 1)
			go func() {
				resp, err := tr.RoundTrip(req)
				if err != nil {
					errc <- err
					return
				}
				respc <- resp
			}()

			first := []byte("first chunk\n")
			if _, err := pw.Write(first); err != nil {
				t.Fatalf("write first chunk: %v", err)
			}
			var resp *http.Response
			select {
			case resp = <-respc:
			case err := <-errc:
				t.Fatalf("round trip: %v", err)
			case <-ctx.Done():
				t.Fatal("no response headers while the upload is open")
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != tt.wantMajor || resp.Header.Get("Content-Type") != "text/plain" {
				t.Fatalf("proto %s, content-type %q", resp.Proto, resp.Header.Get("Content-Type"))
			}
			got := make([]byte, len(first))
			if _, err := io.ReadFull(resp.Body, got); err != nil {
				t.Fatalf("read first echo before closing the upload: %v", err)
			}
			if !bytes.Equal(got, first) {
				t.Fatalf("first echo = %q", got)
			}

			rest := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
			go func() {
				_, err := pw.Write(rest)
				pw.CloseWithError(err)
			}()
			tail, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatalf("read rest: %v", err)
			}
			if !bytes.Equal(tail, rest) {
				t.Fatalf("echoed %d bytes, want %d identical bytes", len(tail), len(rest))
			}
		})
	}
}
