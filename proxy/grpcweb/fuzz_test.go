package grpcweb

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"testing"
)

// FuzzGRPCWebText feeds arbitrary bodies to the text-mode decoder, with the
// body arriving in arbitrary pieces (sizes from srcSizes, data and io.EOF
// in one Read when dataEOF) and read into buffers of arbitrary sizes (from
// bufSizes). Whatever the cutting, the decoder must produce exactly the
// reference decoding, or fail with ErrBadText after a prefix of it.
func FuzzGRPCWebText(f *testing.F) {
	msg := base64.StdEncoding.EncodeToString([]byte{0, 0, 0, 0, 3, 'a', 'b', 'c'})
	two := base64.StdEncoding.EncodeToString([]byte{0, 0, 0, 0, 1, 'x'}) + base64.StdEncoding.EncodeToString([]byte{0, 0, 0, 0, 2, 'y', 'z'})
	for _, s := range []string{"", msg, two, "QQ==QUJD", "QUJD\nQUJD", "QUJD\n\n\n\nQUJD", "Q=JD", "QUJDQU", "QR==", "====", "QUJD\r\nQU\r\nJD"} {
		f.Add([]byte(s), []byte{1, 3, 200}, []byte{1, 2, 5, 0}, false)
		f.Add([]byte(s), []byte{0}, []byte{0}, true)
	}
	f.Fuzz(func(t *testing.T, body, srcSizes, bufSizes []byte, dataEOF bool) {
		if len(body) > 1<<16 {
			return
		}
		want, wantErr := referenceText(body)
		src := &pieceReader{data: body, sizes: srcSizes, dataEOF: dataEOF}
		tr := &textReader{src: io.NopCloser(src)}
		var got []byte
		var err error
		for i := 0; ; i++ {
			size := 4096
			if len(bufSizes) > 0 {
				if b := bufSizes[i%len(bufSizes)]; b != 0 {
					size = int(b)
				}
			}
			buf := make([]byte, size)
			var n int
			n, err = tr.Read(buf)
			if n < 0 || n > size {
				t.Fatalf("Read returned %d for a buffer of %d", n, size)
			}
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
			if i > 4*len(body)+16 {
				t.Fatalf("no end after %d reads of %d characters", i, len(body))
			}
		}
		if wantErr {
			if !errors.Is(err, ErrBadText) {
				t.Fatalf("body %q: err %v, want ErrBadText", body, err)
			}
			if !bytes.HasPrefix(want, got) {
				t.Fatalf("body %q: decoded %x before failing, not a prefix of %x", body, got, want)
			}
			return
		}
		if err != io.EOF {
			t.Fatalf("body %q: err %v, want io.EOF after %x", body, err, want)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("body %q: decoded %x, want %x", body, got, want)
		}
		// A reader that has ended keeps saying so.
		if n, err := tr.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Fatalf("read after EOF: %d, %v", n, err)
		}
	})
}

// referenceText decodes a text-mode body the plain way: concatenated
// base64 chunks, each a whole number of 4-character groups with padding
// only at its end, nothing else (no whitespace). It returns what decodes
// before the first bad group and whether there was one.
func referenceText(body []byte) (out []byte, bad bool) {
	for len(body) > 0 {
		if len(body) < 4 {
			return out, true
		}
		g := body[:4]
		body = body[4:]
		// encoding/base64 skips CR and LF; the gRPC-Web text format has no
		// whitespace.
		if bytes.ContainsAny(g, "\r\n") {
			return out, true
		}
		var dst [3]byte
		n, err := base64.StdEncoding.Decode(dst[:], g)
		if err != nil {
			return out, true
		}
		out = append(out, dst[:n]...)
	}
	return out, false
}

// pieceReader hands out data in pieces of the given sizes (cycled; 0 is
// taken as 1), optionally returning io.EOF with the last piece.
type pieceReader struct {
	data    []byte
	sizes   []byte
	i       int
	dataEOF bool
}

func (r *pieceReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := 1
	if len(r.sizes) > 0 {
		n = max(int(r.sizes[r.i%len(r.sizes)]), 1)
	}
	r.i++
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	if r.dataEOF && len(r.data) == 0 {
		return n, io.EOF
	}
	return n, nil
}

// FuzzGRPCWebEncoder feeds an arbitrary upstream body (gRPC frames, or
// not) to the text-mode response encoder in writes of arbitrary sizes:
// the output is each frame's own padded base64, the frame the body ends
// inside padded out, and every frame complete by a write is fully out
// after it.
func FuzzGRPCWebEncoder(f *testing.F) {
	two := append([]byte{0, 0, 0, 0, 1, 'x'}, 0x80, 0, 0, 0, 15)
	two = append(two, "grpc-status:0\r\n"...)
	for _, b := range [][]byte{nil, two, {0, 0, 0, 0, 0}, {0, 0xff, 0xff, 0xff, 0xff, 1, 2}, {1, 0, 0}, bytes.Repeat([]byte{0, 0, 0, 0, 2, 'a', 'b'}, 50)} {
		f.Add(b, []byte{1, 2, 3, 7})
	}
	f.Fuzz(func(t *testing.T, body, sizes []byte) {
		if len(body) > 1<<16 {
			return
		}
		// The reference: frame by frame.
		var want string
		var ends []int
		for rest, off := body, 0; len(rest) > 0; {
			n := len(rest)
			if len(rest) >= 5 {
				if total := 5 + (uint64(rest[1])<<24 | uint64(rest[2])<<16 | uint64(rest[3])<<8 | uint64(rest[4])); total <= uint64(len(rest)) {
					n = int(total)
					ends = append(ends, off+n)
				}
			}
			want += base64.StdEncoding.EncodeToString(rest[:n])
			rest, off = rest[n:], off+n
		}
		var out bytes.Buffer
		var e encoder
		done, i := 0, 0
		for off := 0; off < len(body); i++ {
			step := len(body)
			if len(sizes) > 0 {
				step = max(int(sizes[i%len(sizes)]), 1)
			}
			end := min(off+step, len(body))
			if err := e.write(&out, body[off:end]); err != nil {
				t.Fatal(err)
			}
			off = end
			for done < len(ends) && ends[done] <= off {
				done++
			}
			if done > 0 {
				full := 0
				for k, start := 0, 0; k < done; k++ {
					full += base64.StdEncoding.EncodedLen(ends[k] - start)
					start = ends[k]
				}
				if out.Len() < full || out.String()[:full] != want[:full] {
					t.Fatalf("after %d bytes, %d whole frames are not out: %q, want a prefix %q", off, done, out.String(), want[:full])
				}
			}
		}
		if err := e.finish(&out); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("body %x: encoded %q, want %q", body, out.String(), want)
		}
	})
}
