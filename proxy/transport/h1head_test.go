package transport

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// parse runs the head reader and parser over a raw response.
func parse(raw, method string) (*http.Response, head, error) {
	br := bufio.NewReaderSize(strings.NewReader(raw), 64)
	buf, err := readHead(br, nil)
	if err != nil {
		return nil, head{}, err
	}
	resp := new(http.Response)
	h, err := parseHead(string(buf), method, resp, make([]string, 2))
	return resp, h, err
}

func TestParseHeadFields(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    http.Header
		wantErr bool
	}{
		{name: "duplicates keep every value in order",
			raw:  "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nX-One: 1\r\nSet-Cookie: b=2\r\nset-cookie: c=3\r\n\r\n",
			want: http.Header{"Set-Cookie": {"a=1", "b=2", "c=3"}, "X-One": {"1"}}},
		{name: "empty values",
			raw:  "HTTP/1.1 200 OK\r\nX-Empty:\r\nX-Blank:   \r\n\r\n",
			want: http.Header{"X-Empty": {""}, "X-Blank": {""}}},
		{name: "colon in value, whitespace trimmed",
			raw:  "HTTP/1.1 200 OK\r\nLocation: \t http://a:80/x?y=z:1 \t\r\n\r\n",
			want: http.Header{"Location": {"http://a:80/x?y=z:1"}}},
		{name: "mixed case canonicalised",
			raw:  "HTTP/1.1 200 OK\r\ncontent-TYPE: text/plain\r\nx-request-id: r\r\nX-CUSTOM-thing: v\r\n\r\n",
			want: http.Header{"Content-Type": {"text/plain"}, "X-Request-Id": {"r"}, "X-Custom-Thing": {"v"}}},
		{name: "bare LF line ends",
			raw:  "HTTP/1.1 200 OK\nX-A: a\n\n",
			want: http.Header{"X-A": {"a"}}},
		{name: "obs-text allowed in values",
			raw:  "HTTP/1.1 200 OK\r\nX-Name: caf\xc3\xa9\r\n\r\n",
			want: http.Header{"X-Name": {"caf\xc3\xa9"}}},
		{name: "more headers than preallocated values",
			raw:  "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
			want: http.Header{"A": {"1"}, "B": {"2"}, "C": {"3"}, "D": {"4"}}},
		{name: "folded line", raw: "HTTP/1.1 200 OK\r\nX-A: a\r\n\tb\r\n\r\n", wantErr: true},
		{name: "space before colon", raw: "HTTP/1.1 200 OK\r\nX-A : a\r\n\r\n", wantErr: true},
		{name: "no colon", raw: "HTTP/1.1 200 OK\r\nX-A a\r\n\r\n", wantErr: true},
		{name: "empty name", raw: "HTTP/1.1 200 OK\r\n: a\r\n\r\n", wantErr: true},
		{name: "control byte in value", raw: "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n", wantErr: true},
		{name: "bare CR in value", raw: "HTTP/1.1 200 OK\r\nX-A: a\rb\r\n\r\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, _, err := parse(tt.raw, "GET")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				if !errors.Is(err, errMalformed) {
					t.Fatalf("err = %v, want errMalformed", err)
				}
				return
			}
			if !reflect.DeepEqual(resp.Header, tt.want) {
				t.Fatalf("header %q, want %q", resp.Header, tt.want)
			}
			// Appending to one value must never overwrite another.
			for k := range resp.Header {
				resp.Header[k] = append(resp.Header[k], "appended")
			}
			for k, vv := range tt.want {
				if got := resp.Header[k][:len(vv)]; !reflect.DeepEqual(got, vv) {
					t.Fatalf("after appends %s = %q, want %q", k, got, vv)
				}
			}
		})
	}
}

func TestParseHeadStatusAndFraming(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		method    string
		code      int
		status    string
		length    int64
		chunked   bool
		noBody    bool
		keepAlive bool
		wantErr   bool
	}{
		{name: "content length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n", code: 200, status: "200 OK", length: 12, keepAlive: true},
		{name: "no reason phrase", raw: "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", code: 404, status: "404", keepAlive: true},
		{name: "identical duplicate lengths", raw: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", code: 200, status: "200 OK", length: 3, keepAlive: true},
		{name: "chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", code: 200, status: "200 OK", length: -1, chunked: true, keepAlive: true},
		{name: "close delimited", raw: "HTTP/1.1 200 OK\r\n\r\n", code: 200, status: "200 OK", length: -1},
		{name: "connection close", raw: "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\n", code: 200, status: "200 OK", length: 1},
		{name: "HTTP/1.0 default close", raw: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", code: 200, status: "200 OK", length: 1},
		{name: "HTTP/1.0 keep-alive", raw: "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n", code: 200, status: "200 OK", length: 1, keepAlive: true},
		{name: "HTTP/1.0 ignores chunked", raw: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", code: 200, status: "200 OK", length: -1},
		{name: "HEAD keeps the length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", method: "HEAD", code: 200, status: "200 OK", length: 99, noBody: true, keepAlive: true},
		{name: "HEAD without length", raw: "HTTP/1.1 200 OK\r\n\r\n", method: "HEAD", code: 200, status: "200 OK", length: -1, noBody: true, keepAlive: true},
		{name: "204 ignores framing", raw: "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", code: 204, status: "204 No Content", noBody: true, keepAlive: true},
		{name: "304", raw: "HTTP/1.1 304 Not Modified\r\n\r\n", code: 304, status: "304 Not Modified", noBody: true, keepAlive: true},
		{name: "100", raw: "HTTP/1.1 100 Continue\r\n\r\n", code: 100, status: "100 Continue", noBody: true, keepAlive: true},
		{name: "CL and TE", raw: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: true},
		{name: "TE twice", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", wantErr: true},
		{name: "gzip, chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", wantErr: true},
		{name: "negative length", raw: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", wantErr: true},
		{name: "signed length", raw: "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n", wantErr: true},
		{name: "huge length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", wantErr: true},
		{name: "HTTP/2 status line", raw: "HTTP/2.0 200 OK\r\n\r\n", wantErr: true},
		{name: "two digit status", raw: "HTTP/1.1 20 OK\r\n\r\n", wantErr: true},
		{name: "status letters", raw: "HTTP/1.1 2x0 OK\r\n\r\n", wantErr: true},
		{name: "status too long", raw: "HTTP/1.1 2000 OK\r\n\r\n", wantErr: true},
		{name: "status below 100", raw: "HTTP/1.1 099 Hm\r\n\r\n", wantErr: true},
		{name: "lower case version", raw: "http/1.1 200 OK\r\n\r\n", wantErr: true},
		{name: "blank first line", raw: "\r\nHTTP/1.1 200 OK\r\n\r\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = "GET"
			}
			resp, h, err := parse(tt.raw, method)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if resp.StatusCode != tt.code || resp.Status != tt.status || resp.ContentLength != tt.length {
				t.Fatalf("got %d %q length %d, want %d %q %d", resp.StatusCode, resp.Status, resp.ContentLength, tt.code, tt.status, tt.length)
			}
			if h.chunked != tt.chunked || h.noBody != tt.noBody || h.keepAlive != tt.keepAlive {
				t.Fatalf("framing %+v, want chunked=%v noBody=%v keepAlive=%v", h, tt.chunked, tt.noBody, tt.keepAlive)
			}
			if _, ok := resp.Header["Transfer-Encoding"]; ok {
				t.Fatal("Transfer-Encoding left in the header")
			}
		})
	}
}

func TestReadHeadLimit(t *testing.T) {
	under := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", maxHeadBytes-40) + "\r\n\r\n"
	over := "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", maxHeadBytes) + "\r\n\r\n"
	if _, _, err := parse(under, "GET"); err != nil {
		t.Fatalf("head under the limit: %v", err)
	}
	if _, _, err := parse(over, "GET"); !errors.Is(err, errHeadTooLarge) {
		t.Fatalf("head over the limit: err = %v, want errHeadTooLarge", err)
	}
}

// FuzzResponse feeds arbitrary bytes through the head parser and the body
// reader: nothing may panic, and a parsed head must be self-consistent.
func FuzzResponse(f *testing.F) {
	seeds := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-T: v\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 200 OK\r\n\r\nuntil close",
		"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
		"HTTP/1.1 200 OK\nset-cookie: a\nSET-COOKIE: b\n\n",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		br := bufio.NewReaderSize(strings.NewReader(raw), 64)
		buf, err := readHead(br, nil)
		if err != nil {
			return
		}
		if len(buf) > maxHeadBytes {
			t.Fatalf("head of %d bytes passed the limit", len(buf))
		}
		resp := new(http.Response)
		h, err := parseHead(string(buf), "GET", resp, make([]string, 8))
		if err != nil {
			return
		}
		if resp.StatusCode < 100 || resp.StatusCode > 999 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if h.chunked && resp.Header.Get("Content-Length") != "" {
			t.Fatal("chunked with Content-Length accepted")
		}
		for k := range resp.Header {
			if k != http.CanonicalHeaderKey(k) {
				t.Fatalf("header name %q not canonical", k)
			}
		}
		b := &body{pc: &pconn{br: br}, resp: resp}
		switch {
		case h.noBody:
			b.mode = bodyNone
		case h.chunked:
			b.mode = bodyChunked
		case h.length >= 0:
			b.mode, b.remain = bodyLength, h.length
		default:
			b.mode = bodyClose
		}
		p := make([]byte, 7)
		total := 0
		for i := 0; i < 1<<12; i++ {
			n, err := b.read(p)
			total += n
			if err != nil {
				break
			}
		}
		if h.length >= 0 && !h.noBody && int64(total) > h.length {
			t.Fatalf("read %d body bytes past Content-Length %d", total, h.length)
		}
	})
}

// nextHead takes the buffered fast path or falls back to readHead; either
// way it must return what readHead returns and leave the reader at the same
// place.
func TestNextHeadMatchesReadHead(t *testing.T) {
	inputs := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
		"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\nX: y\n\nbody",
		"HTTP/1.1 200 OK\r\nX: y\r\n\nbody",
		"HTTP/1.1 200 OK\r\nX: " + strings.Repeat("v", 300) + "\r\n\r\n",
		"\r\nHTTP/1.1 200 OK\r\n\r\n", // blank status line: refused
		"\nHTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: y\r\n", // ends inside the head
		"HTTP/1.1 200 OK\r\nX: y\r\n\r",
		"",
	}
	for _, in := range inputs {
		for _, size := range []int{16, 64, 4096} {
			want := bufio.NewReaderSize(strings.NewReader(in), size)
			wantBuf, wantErr := readHead(want, nil)
			wantRest, _ := io.ReadAll(want)

			got := bufio.NewReaderSize(strings.NewReader(in), size)
			_, _ = got.Peek(1) // fill the buffer as a read from the connection would
			s, n, err := nextHead(got)
			gotRest, _ := io.ReadAll(got)
			if (err != nil) != (wantErr != nil) {
				t.Fatalf("%q size %d: error %v, readHead's %v", in, size, err, wantErr)
			}
			if err == nil && s != string(wantBuf) {
				t.Fatalf("%q size %d: head %q, readHead's %q", in, size, s, wantBuf)
			}
			if err != nil && n != len(wantBuf) {
				t.Fatalf("%q size %d: %d bytes read before the error, readHead %d", in, size, n, len(wantBuf))
			}
			if err == nil && string(gotRest) != string(wantRest) {
				t.Fatalf("%q size %d: left %q, readHead left %q", in, size, gotRest, wantRest)
			}
		}
	}
}
