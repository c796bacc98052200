package grpcweb

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrBadText is the error a text-mode request body reads with when it is
// not base64 (or ends in the middle of a 4-character group). The
// connection manager answers it as a bad request, as Envoy does.
var ErrBadText = errors.New("grpc-web: request body is not valid base64")

// textReader decodes a base64 request body as it streams. Padding may end
// any 4-character group (a client may encode each message on its own), and
// there is no whitespace, as in Envoy.
type textReader struct {
	src io.ReadCloser
	// raw holds base64 read but not yet decoded, raw[lo:hi]. It comes
	// from rawPool at the first Read and goes back once the body has
	// ended or failed: Reads are never concurrent, and nothing else
	// touches it.
	raw    *[rawSize]byte
	lo, hi int
	part   [3]byte // a decoded group that did not fit the caller's buffer
	plo    int
	phi    int
	pos    int64 // characters decoded so far, for errors
	eof    bool
	err    error
}

func (t *textReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if t.plo < t.phi {
		n := copy(p, t.part[t.plo:t.phi])
		t.plo += n
		return n, nil
	}
	for {
		if t.err != nil {
			if t.raw != nil {
				rawPool.Put(t.raw)
				t.raw = nil
			}
			return 0, t.err
		}
		if t.raw == nil {
			t.raw = rawPool.Get().(*[rawSize]byte)
		}
		if t.hi-t.lo >= 4 {
			if n := t.decode(p); n > 0 {
				return n, nil
			}
			continue // t.err is set
		}
		if t.eof {
			if t.hi > t.lo {
				t.err = fmt.Errorf("%w: it ends with %d characters of an incomplete group", ErrBadText, t.hi-t.lo)
			} else {
				t.err = io.EOF
			}
			continue
		}
		if t.lo > 0 {
			t.hi = copy(t.raw[:], t.raw[t.lo:t.hi])
			t.lo = 0
		}
		n, err := t.src.Read(t.raw[t.hi:])
		t.hi += n
		switch {
		case err == io.EOF:
			t.eof = true
		case err != nil:
			t.err = err
		}
	}
}

// decode decodes whole groups into p, stopping after a padded group. A
// buffer too small for one group gets its start and keeps the rest.
func (t *textReader) decode(p []byte) int {
	groups := (t.hi - t.lo) / 4
	small := len(p) < 3
	if !small {
		groups = min(groups, len(p)/3)
	} else {
		groups = 1
	}
	src := t.raw[t.lo : t.lo+4*groups]
	if i := bytes.IndexByte(src, '='); i >= 0 {
		src = src[:i/4*4+4]
	}
	// encoding/base64 skips CR and LF, so four of them in a window would
	// pass unnoticed; the text format has no whitespace.
	if i := lineBreak(src); i >= 0 {
		t.err = fmt.Errorf("%w: bad character at offset %d", ErrBadText, t.pos+int64(i))
		return 0
	}
	dst := p
	if small {
		dst = t.part[:]
	}
	n, err := base64.StdEncoding.Decode(dst, src)
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			err = fmt.Errorf("%w: bad character at offset %d", ErrBadText, t.pos+int64(ce))
		} else {
			err = fmt.Errorf("%w: %v", ErrBadText, err)
		}
		t.err = err
		return 0
	}
	t.lo += len(src)
	t.pos += int64(len(src))
	if small {
		t.plo, t.phi = copy(p, t.part[:n]), n
		return t.plo
	}
	return n
}

// lineBreak is the index of the first CR or LF in b, or -1.
func lineBreak(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	if j := bytes.IndexByte(b, '\r'); j >= 0 && (i < 0 || j < i) {
		i = j
	}
	return i
}

func (t *textReader) Close() error { return t.src.Close() }

const rawSize = 4096

var rawPool = sync.Pool{New: func() any { return new([rawSize]byte) }}

// encodeBuf holds base64 output on its way to the client.
var encodeBuf = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// encoder base64-encodes a stream of gRPC frames. Each frame is encoded on
// its own and padded at its end, as Envoy does, so a client decodes every
// message as soon as its last byte arrives; inside a frame, the bytes that
// do not fill a 3-byte group wait for the next write, so write boundaries
// never break the encoding.
type encoder struct {
	rem  [3]byte
	nrem int
	hdr  int    // bytes of the current frame's 5-byte header seen
	left uint32 // bytes of the current frame's payload still to come
}

// write encodes p to dst.
func (e *encoder) write(dst io.Writer, p []byte) error {
	bp := encodeBuf.Get().(*[]byte)
	out := (*bp)[:0]
	var err error
	for len(p) > 0 && err == nil {
		var n int
		end := false
		if e.hdr < 5 {
			n = min(5-e.hdr, len(p))
			for _, c := range p[:n] {
				if e.hdr == 0 {
					e.left = 0
				} else {
					e.left = e.left<<8 | uint32(c)
				}
				e.hdr++
			}
			end = e.hdr == 5 && e.left == 0
		} else {
			n = int(min(uint64(e.left), uint64(len(p))))
			e.left -= uint32(n)
			end = e.left == 0
		}
		out, err = e.encode(dst, out, p[:n], end)
		if end {
			e.hdr = 0
		}
		p = p[n:]
	}
	if err == nil && len(out) > 0 {
		_, err = dst.Write(out)
	}
	*bp = out[:0]
	encodeBuf.Put(bp)
	return err
}

// finish pads out a frame the body ended in the middle of.
func (e *encoder) finish(dst io.Writer) error {
	if e.nrem == 0 {
		return nil
	}
	var b [4]byte
	base64.StdEncoding.Encode(b[:], e.rem[:e.nrem])
	e.nrem, e.hdr = 0, 0
	_, err := dst.Write(b[:])
	return err
}

// encode appends the encoding of chunk to out, writing out to dst when it
// is full; end pads the group the frame ends in.
func (e *encoder) encode(dst io.Writer, out, chunk []byte, end bool) ([]byte, error) {
	var err error
	if e.nrem > 0 {
		k := copy(e.rem[e.nrem:], chunk)
		e.nrem += k
		chunk = chunk[k:]
		if e.nrem == 3 {
			if out, err = room(dst, out, 4); err != nil {
				return out, err
			}
			out = base64.StdEncoding.AppendEncode(out, e.rem[:])
			e.nrem = 0
		}
	}
	for whole := len(chunk) / 3 * 3; whole > 0; {
		m := min(whole, (cap(out)-len(out))/4*3)
		if m == 0 {
			if out, err = room(dst, out, cap(out)); err != nil {
				return out, err
			}
			continue
		}
		out = base64.StdEncoding.AppendEncode(out, chunk[:m])
		chunk, whole = chunk[m:], whole-m
	}
	e.nrem += copy(e.rem[e.nrem:], chunk)
	if end && e.nrem > 0 {
		if out, err = room(dst, out, 4); err != nil {
			return out, err
		}
		out = base64.StdEncoding.AppendEncode(out, e.rem[:e.nrem])
		e.nrem = 0
	}
	return out, nil
}

// room writes out to dst unless n more bytes fit.
func room(dst io.Writer, out []byte, n int) ([]byte, error) {
	if cap(out)-len(out) >= n {
		return out, nil
	}
	_, err := dst.Write(out)
	return out[:0], err
}
