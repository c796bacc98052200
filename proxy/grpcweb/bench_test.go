package grpcweb

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// A request that is not gRPC-Web costs Detect only: no allocation.
func BenchmarkDetectOther(b *testing.B) {
	r := httptest.NewRequest("POST", "/api", nil)
	r.Header.Set("Content-Type", "application/json")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if Detect(r) != 0 {
			b.Fatal("detected")
		}
	}
}

func TestDetectOtherAllocatesNothing(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	if n := testing.AllocsPerRun(100, func() { Detect(r) }); n != 0 {
		t.Errorf("Detect allocates %v times", n)
	}
}

// discardRW is a ResponseWriter that keeps nothing.
type discardRW struct{ h http.Header }

func (d *discardRW) Header() http.Header         { return d.h }
func (d *discardRW) WriteHeader(int)             {}
func (d *discardRW) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardRW) Flush()                      {}

// One response of two 1 KiB messages and trailers through the writer.
func benchResponse(b *testing.B, text bool) {
	msg := frame(0, bytes.Repeat([]byte("m"), 1024))
	rw := &discardRW{h: http.Header{}}
	status := []string{"0"}
	grpc := []string{"application/grpc"}
	b.ReportAllocs()
	b.SetBytes(int64(2 * len(msg)))
	for i := 0; i < b.N; i++ {
		clear(rw.h)
		rw.h["Content-Type"] = grpc
		w := &ResponseWriter{w: rw, text: text}
		w.WriteHeader(200)
		_, _ = w.Write(msg)
		w.Flush()
		_, _ = w.Write(msg)
		w.Flush()
		rw.h[http.TrailerPrefix+"Grpc-Status"] = status
		_, _ = w.Finish()
	}
}

func BenchmarkResponseBinary(b *testing.B) { benchResponse(b, false) }
func BenchmarkResponseText(b *testing.B)   { benchResponse(b, true) }

func BenchmarkTextRequest(b *testing.B) {
	enc := []byte(base64.StdEncoding.EncodeToString(frame(0, bytes.Repeat([]byte("q"), 300))))
	src := bytes.NewReader(nil)
	buf := make([]byte, 32*1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for i := 0; i < b.N; i++ {
		src.Reset(enc)
		t := &textReader{src: io.NopCloser(src)}
		for {
			if _, err := t.Read(buf); err != nil {
				break
			}
		}
	}
}
