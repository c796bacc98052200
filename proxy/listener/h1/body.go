package h1

import (
	"bufio"
	"errors"
	"io"
	"math"
	"net/http"
	"sync"

	"github.com/outrigger-mesh/outrigger/proxy/httpwire"
)

const (
	// maxPostHandlerReadBytes is how much unread request body is drained
	// to keep a connection, as in net/http; more closes the connection.
	maxPostHandlerReadBytes = 256 << 10
	// maxTrailerBytes bounds the trailer block (net/http: one bufio buffer).
	maxTrailerBytes = 4096
)

var errMalformedChunk = errors.New("h1: malformed chunked encoding")

// body is a request body: Content-Length or chunked. One is allocated per
// request that has a body, so a reader left behind by a handler (an
// upstream transport still copying) can never read the next request: after
// the handler returns the body is closed under mu and such reads fail.
type body struct {
	c *conn
	r *http.Request // receives trailers

	mu        sync.Mutex
	chunked   bool
	remain    int64 // Content-Length left, or bytes left in the current chunk
	needCRLF  bool  // chunked: the CRLF after chunk data is next
	sawEOF    bool
	closed    bool
	err       error
	cont      bool // Expect: 100-continue not answered yet
	bgStarted bool // onBodyEOF ran
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.readLocked(p, len(p))
	eof := b.sawEOF && !b.bgStarted
	if eof {
		b.bgStarted = true
	}
	b.mu.Unlock()
	if eof {
		b.c.onBodyEOF()
	}
	return n, err
}

// finish closes the body after the handler returned. When the connection
// is to be kept it drains up to maxPostHandlerReadBytes of what the handler
// left; it reports whether the body was consumed to its end.
func (b *body) finish(keep bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.sawEOF:
	case b.closed, b.err != nil, b.cont, !keep:
		b.closed = true
		return false
	case !b.chunked && b.remain > maxPostHandlerReadBytes:
		b.closed = true
		return false
	default:
		ok, err := b.discardLocked(maxPostHandlerReadBytes)
		if !ok || err != nil {
			b.closed = true
			return false
		}
	}
	b.closed = true
	return true
}

// Close, as net/http's server body: later reads fail with
// http.ErrBodyReadAfterClose; up to maxPostHandlerReadBytes of what is left
// is drained so the connection can be kept.
func (b *body) Close() error {
	b.mu.Lock()
	eof := false
	if !b.closed && !b.sawEOF && b.err == nil && !b.cont &&
		(b.chunked || b.remain <= maxPostHandlerReadBytes) {
		_, _ = b.discardLocked(maxPostHandlerReadBytes)
	}
	if b.sawEOF && !b.bgStarted {
		b.bgStarted, eof = true, true
	}
	b.closed = true
	b.mu.Unlock()
	if eof {
		b.c.onBodyEOF()
	}
	return nil
}

// readLocked reads up to want body bytes into p, or skips them when p is
// nil.
func (b *body) readLocked(p []byte, want int) (int, error) {
	switch {
	case b.closed:
		return 0, http.ErrBodyReadAfterClose
	case b.sawEOF:
		return 0, io.EOF
	case b.err != nil:
		return 0, b.err
	case want == 0:
		return 0, nil
	}
	if b.cont {
		b.cont = false
		b.c.writeContinue()
	}
	br := b.c.br
	if !b.chunked {
		return b.readData(br, p, want)
	}
	for {
		if b.remain > 0 {
			return b.readData(br, p, want)
		}
		if b.needCRLF {
			if err := expectCRLF(br); err != nil {
				return 0, b.fail(err)
			}
			b.needCRLF = false
		}
		size, err := readChunkSize(br)
		if err != nil {
			return 0, b.fail(err)
		}
		if size == 0 {
			if err := readTrailers(br, b.r, &b.c.keyBuf); err != nil {
				return 0, b.fail(err)
			}
			b.sawEOF = true
			return 0, io.EOF
		}
		b.remain = size
	}
}

// readData reads from the current Content-Length body or chunk.
func (b *body) readData(br *bufio.Reader, p []byte, want int) (int, error) {
	if int64(want) > b.remain {
		want = int(b.remain)
	}
	var (
		n   int
		err error
	)
	if p == nil {
		// Skip what is buffered, or wait for at least one byte.
		n, err = br.Discard(min(want, max(br.Buffered(), 1)))
	} else {
		n, err = br.Read(p[:want])
	}
	b.remain -= int64(n)
	if b.remain == 0 {
		if b.chunked {
			b.needCRLF = true
			return n, nil
		}
		b.sawEOF = true
		return n, io.EOF
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

func (b *body) fail(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if errors.Is(err, errMalformedChunk) {
		b.c.s.reject(RejectFraming)
	}
	b.err = err
	return err
}

// discardLocked skips up to limit bytes of body; it reports whether the
// body ended within them.
func (b *body) discardLocked(limit int64) (bool, error) {
	var total int64
	for total <= limit {
		n, err := b.readLocked(nil, int(min(limit+1-total, math.MaxInt32)))
		total += int64(n)
		if err == io.EOF {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

func expectCRLF(br *bufio.Reader) error {
	b, err := br.Peek(2)
	if err != nil {
		return err
	}
	if b[0] != '\r' || b[1] != '\n' {
		return errMalformedChunk
	}
	_, _ = br.Discard(2)
	return nil
}

// readChunkSize parses a chunk-size line as net/http does, but CRLF only:
// hex size, optional trailing whitespace, extensions after ';' ignored.
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return 0, errMalformedChunk // longer than net/http's limit too
	}
	if err != nil {
		return 0, err
	}
	n := len(line)
	if n < 2 || line[n-2] != '\r' {
		return 0, errMalformedChunk
	}
	line = line[:n-2]
	for _, c := range line {
		if c == '\r' {
			return 0, errMalformedChunk
		}
	}
	for len(line) > 0 && (line[len(line)-1] == ' ' || line[len(line)-1] == '\t') {
		line = line[:len(line)-1]
	}
	for i, c := range line {
		if c == ';' {
			line = line[:i]
			break
		}
	}
	v, ok := httpwire.ParseChunkSize(line)
	if !ok {
		return 0, errMalformedChunk
	}
	return v, nil
}

// readTrailers reads the trailer block after the last chunk into
// r.Trailer.
func readTrailers(br *bufio.Reader, r *http.Request, keyBuf *[]byte) error {
	total := 0
	for {
		line, err := br.ReadSlice('\n')
		total += len(line)
		if err == bufio.ErrBufferFull || total > maxTrailerBytes {
			return errMalformedChunk
		}
		if err != nil {
			return err
		}
		n := len(line)
		if n < 2 || line[n-2] != '\r' {
			return errMalformedChunk // bare LF: where parsers disagree
		}
		l := line[:n-2]
		if len(l) == 0 {
			return nil
		}
		if l[0] == ' ' || l[0] == '\t' {
			return errMalformedChunk
		}
		colon := -1
		for i, c := range l {
			if c == ':' {
				colon = i
				break
			}
		}
		if colon <= 0 {
			return errMalformedChunk
		}
		k, v := string(l[:colon]), trimOWS(string(l[colon+1:]))
		if !isToken(k) || !validFieldValue(v) {
			return errMalformedChunk
		}
		k = canonicalKey(k, keyBuf)
		if r.Trailer == nil {
			r.Trailer = http.Header{}
		}
		r.Trailer[k] = append(r.Trailer[k], v)
	}
}
