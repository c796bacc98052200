package h1

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
)

// The codec against net/http's server on the same handler and the same raw
// keep-alive client; allocs/op counts the server and the client.

var benchHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "hello")
})

const benchRequest = "GET /api/v1/items?id=42 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: bench\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n\r\n"

func benchKeepAlive(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte(benchRequest)
	// The response is parsed minimally: read the header block, then the
	// 5-byte body, so the client costs the same against both servers.
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(line) <= 2 {
				break
			}
		}
		if _, err := br.Discard(5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkServeH1(b *testing.B) {
	_, addr := startServer(b, Config{Handler: benchHandler})
	benchKeepAlive(b, addr)
}

func BenchmarkServeNetHTTP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: benchHandler}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	benchKeepAlive(b, ln.Addr().String())
}
