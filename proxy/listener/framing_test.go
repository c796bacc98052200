package listener

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"
)

// httpMessageEnds parses in as pipelined requests with net/http's own
// parser and returns the offset after each request it accepts fully.
func httpMessageEnds(in []byte) []int64 {
	cr := &countingReader{r: bytes.NewReader(in)}
	br := bufio.NewReader(cr)
	var ends []int64
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return ends
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return ends
		}
		if req.Method == "PRI" {
			return ends // the h2 preface; net/http hands the conn to HTTP/2
		}
		ends = append(ends, cr.n-int64(br.Buffered()))
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// scanEnds runs the scanner over in, split into pieces of step bytes.
func scanEnds(in []byte, step int) (ends []int64, s *framingScanner) {
	s = newFramingScanner(64<<10, true)
	s.onMessageEnd = func(off int64) { ends = append(ends, off) }
	for len(in) > 0 {
		n := min(step, len(in))
		s.scan(in[:n])
		in = in[n:]
	}
	return ends, s
}

var framingSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\nGET /2 HTTP/1.0\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\nGET /s HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
	"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nX: 1\r\n chunked\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nabGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\na\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
	"GET / HTTP/9.9\r\nHost: a\r\n\r\n",
}

func TestScannerAgreesWithNetHTTP(t *testing.T) {
	for _, seed := range framingSeeds {
		for _, step := range []int{1, 2, 7, 4096} {
			checkFraming(t, []byte(seed), step)
		}
	}
}

func TestScannerVerdicts(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantAt    int64
		wantWhy   rejectReason
		maxHeader int
	}{
		{"clean pipelined", framingSeeds[2], noReject, rejectNone, 0},
		{"CL+TE is request 0", framingSeeds[4], 0, rejectConflictingFraming, 0},
		{"second request bad", "GET / HTTP/1.1\r\nHost: a\r\n\r\n" + framingSeeds[4], 1, rejectConflictingFraming, 0},
		{"OPTIONS * not counted", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n" + framingSeeds[4], 0, rejectConflictingFraming, 0},
		{"TE list", framingSeeds[5], 0, rejectBadTransferEncoding, 0},
		{"dup CL", framingSeeds[6], 0, rejectBadContentLength, 0},
		{"TE on 1.0", framingSeeds[7], 0, rejectBadTransferEncoding, 0},
		{"obs-fold", framingSeeds[8], 0, rejectMalformed, 0},
		{"too large", "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789\r\n\r\n", 0, rejectHeadersTooLarge, 30},
		{"h2c preface passes through", framingSeeds[10], noReject, rejectNone, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, step := range []int{1, 3, 1 << 20} {
				s := newFramingScanner(tt.maxHeader, true)
				for in := []byte(tt.in); len(in) > 0; {
					n := min(step, len(in))
					s.scan(in[:n])
					in = in[n:]
				}
				if got := s.rejectAt.Load(); got != tt.wantAt {
					t.Errorf("step %d: rejectAt = %d, want %d", step, got, tt.wantAt)
				}
				if got := s.verdict(tt.wantAt); tt.wantAt != noReject && got != tt.wantWhy {
					t.Errorf("step %d: verdict = %v, want %v", step, got, tt.wantWhy)
				}
			}
		})
	}
}

// checkFraming: wherever the scanner has not condemned the stream, the
// request boundaries it found are the ones net/http found.
func checkFraming(t *testing.T, in []byte, step int) {
	t.Helper()
	ends, s := scanEnds(in, step)
	want := httpMessageEnds(in)
	clean := len(ends)
	if at := s.rejectAt.Load(); at != noReject {
		clean = min(clean, int(at))
	}
	for i := 0; i < clean && i < len(want); i++ {
		if ends[i] != want[i] {
			t.Fatalf("input %q step %d: message %d ends at %d, net/http says %d", in, step, i, ends[i], want[i])
		}
	}
}

func FuzzFramingScanner(f *testing.F) {
	for _, s := range framingSeeds {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(5))
	}
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		checkFraming(t, in, int(step)+1)
	})
}
