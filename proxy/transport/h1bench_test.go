package transport

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// cannedBackend answers every GET with the same small response, parsing
// as little as possible, so the benchmarks measure the client.
func cannedBackend(b *testing.B) string {
	b.Helper()
	const resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Mon, 02 Jan 2006 15:04:05 GMT\r\nContent-Length: 5\r\n\r\nhello"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// Requests have no body: a head ends the request.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if bytes.Equal(line, []byte("\r\n")) {
							break
						}
					}
					if _, err := io.WriteString(c, resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func netHTTPBackend(b *testing.B) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello")
	}))
	b.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// BenchmarkH1 compares this package's HTTP/1.1 client with net/http's
// Transport (configured as this package used to) on one keep-alive
// connection, against the same backend.
func BenchmarkH1(b *testing.B) {
	backends := []struct {
		name  string
		start func(*testing.B) string
	}{
		{name: "canned", start: cannedBackend},
		{name: "nethttp-server", start: netHTTPBackend},
	}
	for _, be := range backends {
		addr := be.start(b)
		tr, err := New(Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tr.Close() })
		clients := []struct {
			name string
			rt   func(*http.Request) (*http.Response, error)
		}{
			{name: "outrigger", rt: tr.RoundTrip},
			{name: "http.Transport", rt: func(r *http.Request) (*http.Response, error) { return tr.For(r).RoundTrip(r) }},
		}
		for _, c := range clients {
			b.Run(be.name+"/"+c.name, func(b *testing.B) {
				req, err := http.NewRequestWithContext(b.Context(), "GET", "http://"+addr+"/bench?x=1", nil)
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("User-Agent", "bench")
				req.Header.Set("Accept", "*/*")
				buf := make([]byte, 512)
				b.ReportAllocs()
				for b.Loop() {
					resp, err := c.rt(req)
					if err != nil {
						b.Fatal(err)
					}
					for {
						if _, err := resp.Body.Read(buf); err != nil {
							break
						}
					}
					resp.Body.Close()
				}
			})
		}
	}
}
