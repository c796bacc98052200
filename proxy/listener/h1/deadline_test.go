package h1

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestHeadBuffered(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"empty", "", false},
		{"request line only", "GET / HTTP/1.1\r\n", false},
		{"headers without the blank line", "GET / HTTP/1.1\r\nHost: a\r\n", false},
		{"blank line's LF missing", "GET / HTTP/1.1\r\nHost: a\r\n\r", false},
		{"whole head", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
		{"whole head and a body", "POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", true},
		{"bare LF line ends", "GET / HTTP/1.1\nHost: a\n\n", true},
		{"leading blank line", "\r\n\r\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), bufSize)
			_, _ = br.Peek(len(tt.in)) // buffer everything, as a read would
			if got := headBuffered(br); got != tt.want {
				t.Fatalf("headBuffered(%q) = %v, want %v", tt.in, got, tt.want)
			}
			if !tt.want {
				return
			}
			// What headBuffered promises: readHead ends without a read
			// from the (now exhausted) source.
			if _, err := readHead(br, nil, DefaultMaxRequestHeadersBytes); err != nil {
				t.Fatalf("readHead after headBuffered: %v", err)
			}
		})
	}
}

// A keep-alive request whose header block arrives slowly is cut off by the
// header timeout even though the previous one arrived whole (and so ran
// without a header deadline).
func TestSlowHeadersOnKeepAliveCutOff(t *testing.T) {
	var timeouts atomic.Int32
	_, addr := startServer(t, Config{
		Handler:               http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}),
		RequestHeadersTimeout: 200 * time.Millisecond,
		Hooks:                 Hooks{HeaderTimeout: func() { timeouts.Add(1) }},
	})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	start := time.Now()
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("read after a partial header block = %v, want EOF", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("cut off after %v, want about 200ms", el)
	}
	if n := timeouts.Load(); n != 1 {
		t.Fatalf("header timeouts = %d, want 1", n)
	}
}

// A header block split across packets is read whole (the header deadline
// path) and served.
func TestSplitHeaderBlockServed(t *testing.T) {
	_, addr := startServer(t, Config{
		Handler:               http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, r.Header.Get("X-Part")) }),
		RequestHeadersTimeout: 5 * time.Second,
	})
	c := dial(t, addr)
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nX-Pa")
	time.Sleep(20 * time.Millisecond) // let the codec read the first part alone
	_, _ = io.WriteString(c, "rt: two\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "two" {
		t.Fatalf("body = %q, want %q", b, "two")
	}
}

// With no header timeout, the idle timeout's deadline (set while waiting for
// a keep-alive request) must not outlive the wait: a handler reading a body
// for longer than the idle timeout gets all of it.
func TestIdleDeadlineClearedForHandler(t *testing.T) {
	got := make(chan string, 1)
	_, addr := startServer(t, Config{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				got <- "error: " + err.Error()
				return
			}
			got <- string(b)
		}),
		IdleTimeout: 100 * time.Millisecond,
	})
	c := dial(t, addr)
	br := bufio.NewReader(c)
	// The first request makes the second one wait under the idle deadline.
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	if resp, err := http.ReadResponse(br, nil); err != nil {
		t.Fatal(err)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
		<-got
	}
	_, _ = io.WriteString(c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
	time.Sleep(300 * time.Millisecond) // longer than the idle timeout
	_, _ = io.WriteString(c, "cd")
	if b := <-got; b != "abcd" {
		t.Fatalf("handler read %q, want %q", b, "abcd")
	}
}
