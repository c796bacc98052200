package grpcweb

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		ct, accept string
		want       Mode
	}{
		{"application/grpc-web", "", Web},
		{"application/grpc-web+proto", "", Web},
		{"application/grpc-web-text", "", Web | TextRequest},
		{"application/grpc-web-text+proto", "application/grpc-web-text", Web | TextRequest | TextResponse},
		{"application/grpc-web+proto", "application/grpc-web-text+proto", Web | TextResponse},
		{"application/grpc-web", "application/grpc-web", Web},
		{"application/grpc", "", 0},
		{"application/grpc+proto", "", 0},
		{"application/grpc-web+json", "", 0}, // Envoy implements proto only
		{"application/grpc-web; charset=utf-8", "", 0},
		{"text/plain", "application/grpc-web-text", 0},
		{"", "", 0},
	} {
		r := httptest.NewRequest("POST", "/s/M", nil)
		if tc.ct != "" {
			r.Header.Set("Content-Type", tc.ct)
		}
		if tc.accept != "" {
			r.Header.Set("Accept", tc.accept)
		}
		if got := Detect(r); got != tc.want {
			t.Errorf("%q accept %q: got %b, want %b", tc.ct, tc.accept, got, tc.want)
		}
	}
}

func TestBeginRewritesTheRequest(t *testing.T) {
	msg := frame(0, []byte("hello, upstream"))
	t.Run("binary", func(t *testing.T) {
		r := httptest.NewRequest("POST", "/s/M", bytes.NewReader(msg))
		r.Header.Set("Content-Type", ContentTypeProto)
		r.Header.Set("Content-Length", "20")
		r.Header.Set("X-Grpc-Web", "1")
		body := r.Body
		Begin(httptest.NewRecorder(), r, Detect(r))
		want := http.Header{
			"Content-Type":         {"application/grpc"},
			"Te":                   {"trailers"},
			"Grpc-Accept-Encoding": {"identity"},
			"X-Grpc-Web":           {"1"},
		}
		if !equalHeader(r.Header, want) {
			t.Errorf("headers %v, want %v", r.Header, want)
		}
		if r.ContentLength != -1 || r.Body != body {
			t.Errorf("content length %d, body replaced %v", r.ContentLength, r.Body != body)
		}
	})
	t.Run("text keeps grpc-accept-encoding", func(t *testing.T) {
		r := httptest.NewRequest("POST", "/s/M", strings.NewReader(base64.StdEncoding.EncodeToString(msg)))
		r.Header.Set("Content-Type", ContentTypeText)
		r.Header.Set("Grpc-Accept-Encoding", "gzip")
		Begin(httptest.NewRecorder(), r, Detect(r))
		if got := r.Header.Get("Grpc-Accept-Encoding"); got != "gzip" {
			t.Errorf("grpc-accept-encoding %q", got)
		}
		got, err := io.ReadAll(r.Body)
		if err != nil || !bytes.Equal(got, msg) {
			t.Errorf("body %q %v, want %q", got, err, msg)
		}
	})
	t.Run("no body", func(t *testing.T) {
		r := httptest.NewRequest("POST", "/s/M", nil)
		r.Header.Set("Content-Type", ContentTypeText)
		Begin(httptest.NewRecorder(), r, Detect(r))
		if r.ContentLength != 0 || r.Body != http.NoBody {
			t.Errorf("content length %d, body %T", r.ContentLength, r.Body)
		}
	})
}

func TestTextReader(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdefghij"), 700) // 14000 bytes: several raw buffers
	enc := base64.StdEncoding.EncodeToString(data)
	// Two messages encoded on their own: padding in the middle.
	a, b := frame(0, []byte("x")), frame(0, []byte("yz"))
	twoPadded := base64.StdEncoding.EncodeToString(a) + base64.StdEncoding.EncodeToString(b)
	ab := append(append([]byte{}, a...), b...)

	read := func(src io.Reader, bufSize int) ([]byte, error) {
		tr := &textReader{src: io.NopCloser(src)}
		var out []byte
		buf := make([]byte, bufSize)
		for {
			n, err := tr.Read(buf)
			out = append(out, buf[:n]...)
			if err == io.EOF {
				return out, nil
			}
			if err != nil {
				return out, err
			}
		}
	}
	for _, tc := range []struct {
		name    string
		src     func() io.Reader
		bufSize int
		want    []byte
	}{
		{"whole", func() io.Reader { return strings.NewReader(enc) }, 32 * 1024, data},
		{"one byte at a time", func() io.Reader { return iotest.OneByteReader(strings.NewReader(enc)) }, 32 * 1024, data},
		{"half reads", func() io.Reader { return iotest.HalfReader(strings.NewReader(enc)) }, 1000, data},
		{"one-byte buffer", func() io.Reader { return strings.NewReader(enc[:400]) }, 1, data[:300]},
		{"two-byte buffer", func() io.Reader { return strings.NewReader(enc[:400]) }, 2, data[:300]},
		{"padding between messages", func() io.Reader { return strings.NewReader(twoPadded) }, 64, ab},
		{"padding between messages, one byte reads", func() io.Reader { return iotest.OneByteReader(strings.NewReader(twoPadded)) }, 1, ab},
		{"data with EOF", func() io.Reader { return iotest.DataErrReader(strings.NewReader(enc)) }, 4096, data},
		{"empty", func() io.Reader { return strings.NewReader("") }, 16, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := read(tc.src(), tc.bufSize)
			if err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, %v; want %d bytes", len(got), err, len(tc.want))
			}
		})
	}

	for _, tc := range []struct {
		name, in, wantErr string
	}{
		{"bad character", "QUJD!UJD", "bad character at offset 4"},
		{"bad character after a padded group", "QQ==QU*D", "bad character at offset 6"},
		{"incomplete group", "QUJDQU", "2 characters of an incomplete group"},
		{"newline", "QUJD\nQUJD", "not valid base64"},
		// encoding/base64 would skip them: four make a whole group.
		{"four line breaks", "QUJD\r\n\r\nQUJD", "bad character at offset 4"},
		{"padding inside a group", "Q=JD", "not valid base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := read(strings.NewReader(tc.in), 64)
			if !errors.Is(err, ErrBadText) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want ErrBadText with %q", err, tc.wantErr)
			}
		})
	}
	t.Run("the body's own error", func(t *testing.T) {
		boom := errors.New("client went away")
		_, err := read(iotest.ErrReader(boom), 64)
		if !errors.Is(err, boom) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("close", func(t *testing.T) {
		c := &closeRecorder{Reader: strings.NewReader("")}
		tr := &textReader{src: c}
		if err := tr.Close(); err != nil || !c.closed {
			t.Fatalf("close: %v %v", err, c.closed)
		}
	})
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }

// TestEncoderFramesAtAnySplit: however the stream of frames is cut into
// writes, the output is each frame's own padded base64, and every frame's
// encoding is complete once its last byte was written.
func TestEncoderFramesAtAnySplit(t *testing.T) {
	frames := [][]byte{
		frame(0, []byte("a")),
		frame(0, nil),
		frame(0, bytes.Repeat([]byte{0xfe}, 5000)), // more than one output buffer
		frame(0, []byte("bc")),
		frame(0x80, []byte("grpc-status:0\r\n")),
	}
	var stream []byte
	var want string
	var ends []int // stream offsets where a frame ends
	for _, f := range frames {
		stream = append(stream, f...)
		want += base64.StdEncoding.EncodeToString(f)
		ends = append(ends, len(stream))
	}
	for _, step := range []int{1, 2, 3, 4, 5, 7, 100, 4096, len(stream)} {
		var out bytes.Buffer
		var e encoder
		endAt := 0
		for off := 0; off < len(stream); off += step {
			chunk := stream[off:min(off+step, len(stream))]
			if err := e.write(&out, chunk); err != nil {
				t.Fatal(err)
			}
			// Every frame finished by now is fully decodable.
			for endAt < len(ends) && ends[endAt] <= off+len(chunk) {
				endAt++
			}
			prefix := 0
			for _, f := range frames[:endAt] {
				prefix += base64.StdEncoding.EncodedLen(len(f))
			}
			if out.Len() < prefix || out.String()[:prefix] != want[:prefix] {
				t.Fatalf("step %d: after %d bytes, %d frames are not all out (%d of %d chars)", step, off+len(chunk), endAt, out.Len(), prefix)
			}
		}
		if err := e.finish(&out); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("step %d: output differs from per-frame base64", step)
		}
	}
	t.Run("a body that ends inside a frame is padded out", func(t *testing.T) {
		var out bytes.Buffer
		var e encoder
		f := frame(0, []byte("hello"))[:7]
		must(t, e.write(&out, f))
		must(t, e.finish(&out))
		if got, want := out.String(), base64.StdEncoding.EncodeToString(f); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("write errors come back", func(t *testing.T) {
		var e encoder
		boom := errors.New("broken pipe")
		if err := e.write(failWriter{boom}, frame(0, bytes.Repeat([]byte("x"), 10000))); !errors.Is(err, boom) {
			t.Fatalf("got %v", err)
		}
		if err := e.write(failWriter{boom}, []byte("x")); err != nil {
			t.Fatalf("a write that only buffers: %v", err)
		}
		if err := e.finish(failWriter{boom}); !errors.Is(err, boom) {
			t.Fatalf("finish: %v", err)
		}
	})
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestResponseWriter(t *testing.T) {
	msg1, msg2 := frame(0, []byte("first")), frame(0, bytes.Repeat([]byte("z"), 3000))
	for _, text := range []bool{false, true} {
		name := map[bool]string{false: "binary", true: "text"}[text]
		t.Run(name+" stream with undeclared trailers", func(t *testing.T) {
			rec := httptest.NewRecorder()
			w := &ResponseWriter{w: rec, text: text}
			h := w.Header()
			h.Set("Content-Type", "application/grpc")
			h.Set("Content-Length", "99")
			w.WriteHeader(200)
			mustWrite(t, w, msg1[:3])
			mustWrite(t, w, msg1[3:])
			must(t, w.FlushError())
			if !rec.Flushed {
				t.Error("not flushed")
			}
			mustWrite(t, w, msg2)
			h[http.TrailerPrefix+"Grpc-Status"] = []string{"0"}
			h[http.TrailerPrefix+"X-Trailer"] = []string{"a", "b"}
			h[http.TrailerPrefix+"Grpc-Message"] = []string{"ok"}
			gs, err := w.Finish()
			if gs != "" || err != nil {
				t.Errorf("finish: %q %v", gs, err)
			}
			res := rec.Result()
			wantCT := map[bool]string{false: ContentTypeProto, true: ContentTypeTextProto}[text]
			if ct := res.Header.Get("Content-Type"); ct != wantCT || res.Header.Get("Content-Length") != "" {
				t.Errorf("headers %v", res.Header)
			}
			if len(res.Trailer) != 0 {
				t.Errorf("HTTP trailers sent: %v", res.Trailer)
			}
			frames := parseBody(t, rec.Body.Bytes(), text)
			if len(frames) != 3 || !bytes.Equal(frames[0], msg1) || !bytes.Equal(frames[1], msg2) {
				t.Fatalf("frames %q", frames)
			}
			if got, want := string(frames[2][5:]), "grpc-status:0\r\ngrpc-message:ok\r\nx-trailer:a\r\nx-trailer:b\r\n"; frames[2][0] != 0x80 || got != want {
				t.Errorf("trailer frame %x %q, want %q", frames[2][0], got, want)
			}
		})
	}
	t.Run("declared trailers", func(t *testing.T) {
		rec := httptest.NewRecorder()
		w := &ResponseWriter{w: rec}
		h := w.Header()
		h.Set("Content-Type", "application/grpc+proto")
		h.Set("Trailer", "Grpc-Status, grpc-message")
		w.WriteHeader(200)
		mustWrite(t, w, msg1)
		h.Set("Grpc-Status", "5")
		h.Set("Grpc-Message", "not found")
		_, _ = w.Finish()
		res := rec.Result()
		if res.Header.Get("Trailer") != "" || len(res.Trailer) != 0 || res.Header.Get("Grpc-Status") != "" {
			t.Errorf("HTTP trailers sent: %v %v", res.Header, res.Trailer)
		}
		frames := parseBody(t, rec.Body.Bytes(), false)
		if len(frames) != 2 || string(frames[1][5:]) != "grpc-status:5\r\ngrpc-message:not found\r\n" {
			t.Fatalf("frames %q", frames)
		}
	})
	t.Run("trailers-only", func(t *testing.T) {
		rec := httptest.NewRecorder()
		w := &ResponseWriter{w: rec, text: true}
		h := w.Header()
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", "14")
		h.Set("Grpc-Message", "unavailable")
		w.WriteHeader(200)
		gs, _ := w.Finish()
		if gs != "" || rec.Code != 200 || rec.Body.Len() != 0 || rec.Header().Get("Grpc-Status") != "14" || rec.Header().Get("Content-Type") != ContentTypeTextProto {
			t.Errorf("got %d %v %q (%q)", rec.Code, rec.Header(), rec.Body, gs)
		}
	})
	t.Run("a response that is not gRPC becomes a status", func(t *testing.T) {
		rec := httptest.NewRecorder()
		w := &ResponseWriter{w: rec}
		h := w.Header()
		h.Set("Content-Type", "text/html")
		h.Set("Content-Length", "20000")
		w.WriteHeader(503)
		mustWrite(t, w, []byte("upstream is 100% "))
		mustWrite(t, w, bytes.Repeat([]byte("\n"), 20000))
		must(t, w.FlushError())
		if rec.Flushed || rec.Code != 200 || len(rec.Header()["Grpc-Status"]) != 0 {
			t.Fatalf("sent before Finish: flushed %v", rec.Flushed)
		}
		h[http.TrailerPrefix+"X-Stray"] = []string{"1"}
		gs, _ := w.Finish()
		res := rec.Result()
		msg := res.Header.Get("Grpc-Message")
		if gs != "14" || res.StatusCode != 503 || res.Header.Get("Grpc-Status") != "14" || res.Header.Get("Content-Type") != ContentTypeProto ||
			res.Header.Get("Content-Length") != "0" || rec.Body.Len() != 0 || len(res.Trailer) != 0 {
			t.Errorf("got %q %d %v body %d bytes", gs, res.StatusCode, res.Header, rec.Body.Len())
		}
		if !strings.HasPrefix(msg, "upstream is 100%25 %0A%0A") || len(msg) != len("upstream is 100%25 ")+3*(MaxErrorMessage-len("upstream is 100% ")) {
			t.Errorf("grpc-message %d chars: %.40q", len(msg), msg)
		}
	})
	t.Run("status mapping", func(t *testing.T) {
		for code, want := range map[int]string{400: "13", 401: "16", 403: "7", 404: "12", 429: "14", 502: "14", 504: "14", 302: "2", 500: "2", 200: "2"} {
			rec := httptest.NewRecorder()
			w := &ResponseWriter{w: rec}
			w.WriteHeader(code)
			if gs, _ := w.Finish(); gs != want || rec.Code != code || rec.Header().Get("Grpc-Message") != "" {
				t.Errorf("%d: grpc-status %q, HTTP %d, want %s", code, gs, rec.Code, want)
			}
		}
	})
	t.Run("write without WriteHeader", func(t *testing.T) {
		rec := httptest.NewRecorder()
		w := &ResponseWriter{w: rec}
		w.Header().Set("Content-Type", "application/grpc")
		mustWrite(t, w, msg1)
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), msg1) {
			t.Errorf("got %d %q", rec.Code, rec.Body)
		}
	})
	t.Run("informational passes through", func(t *testing.T) {
		rec := &codes{ResponseRecorder: httptest.NewRecorder()}
		w := &ResponseWriter{w: rec}
		w.WriteHeader(100)
		w.Header().Set("Content-Type", "application/grpc")
		w.WriteHeader(200)
		w.WriteHeader(500) // superfluous
		if got := rec.codes; len(got) != 2 || got[0] != 100 || got[1] != 200 {
			t.Errorf("codes %v", got)
		}
	})
	t.Run("nothing written: nothing sent", func(t *testing.T) {
		rec := &codes{ResponseRecorder: httptest.NewRecorder()}
		w := &ResponseWriter{w: rec}
		if gs, err := w.Finish(); gs != "" || err != nil || len(rec.codes) != 0 {
			t.Errorf("got %q %v %v", gs, err, rec.codes)
		}
		if _, err := w.Write([]byte("late")); err == nil {
			t.Error("write after Finish accepted")
		}
	})
	t.Run("write errors stick", func(t *testing.T) {
		boom := errors.New("client gone")
		for _, text := range []bool{false, true} {
			fw := &failingRW{ResponseRecorder: httptest.NewRecorder(), err: boom}
			w := &ResponseWriter{w: fw, text: text}
			w.Header().Set("Content-Type", "application/grpc")
			if _, err := w.Write(msg2); !errors.Is(err, boom) {
				t.Fatalf("text %v: write: %v", text, err)
			}
			if _, err := w.Write(msg1); !errors.Is(err, boom) {
				t.Fatalf("text %v: second write: %v", text, err)
			}
			if err := w.FlushError(); !errors.Is(err, boom) {
				t.Fatalf("text %v: flush: %v", text, err)
			}
			w.Header()[http.TrailerPrefix+"Grpc-Status"] = []string{"0"}
			if _, err := w.Finish(); !errors.Is(err, boom) {
				t.Fatalf("text %v: finish: %v", text, err)
			}
		}
	})
	t.Run("unwrap", func(t *testing.T) {
		rec := httptest.NewRecorder()
		w := &ResponseWriter{w: rec}
		if w.Unwrap() != rec {
			t.Error("Unwrap")
		}
		w.WriteHeader(200)
		w.Flush() // not gRPC: ignored
		if rec.Flushed {
			t.Error("flushed a held-back response")
		}
	})
}

type codes struct {
	*httptest.ResponseRecorder
	codes []int
}

func (c *codes) WriteHeader(code int) {
	c.codes = append(c.codes, code)
	c.ResponseRecorder.WriteHeader(code)
}

type failingRW struct {
	*httptest.ResponseRecorder
	err error
}

func (f *failingRW) Write([]byte) (int, error) { return 0, f.err }

// frame is one gRPC length-prefixed message.
func frame(flags byte, payload []byte) []byte {
	f := make([]byte, 5, 5+len(payload))
	f[0] = flags
	binary.BigEndian.PutUint32(f[1:], uint32(len(payload)))
	return append(f, payload...)
}

// parseBody splits a gRPC-Web body into frames (header included),
// decoding text mode group by group as clients do.
func parseBody(t *testing.T, body []byte, text bool) [][]byte {
	t.Helper()
	if text {
		var dec []byte
		for len(body) > 0 {
			if len(body) < 4 {
				t.Fatalf("text body ends with %q", body)
			}
			g, err := base64.StdEncoding.DecodeString(string(body[:4]))
			if err != nil {
				t.Fatalf("text body: %v", err)
			}
			dec = append(dec, g...)
			body = body[4:]
		}
		body = dec
	}
	var frames [][]byte
	for len(body) > 0 {
		if len(body) < 5 {
			t.Fatalf("body ends with %x", body)
		}
		n := 5 + int(binary.BigEndian.Uint32(body[1:5]))
		if n > len(body) {
			t.Fatalf("frame of %d bytes, %d left", n, len(body))
		}
		frames = append(frames, body[:n])
		body = body[n:]
	}
	return frames
}

func mustWrite(t *testing.T, w io.Writer, p []byte) {
	t.Helper()
	if n, err := w.Write(p); n != len(p) || err != nil {
		t.Fatalf("write: %d %v", n, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w := b[k]
		if len(v) != len(w) {
			return false
		}
		for i := range v {
			if v[i] != w[i] {
				return false
			}
		}
	}
	return true
}
