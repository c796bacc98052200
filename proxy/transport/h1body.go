package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"unsafe"

	"github.com/outrigger-mesh/outrigger/proxy/httpwire"
)

// response is everything one HTTP/1.1 response needs, in one allocation:
// the http.Response, its body reader and the backing array of its header
// values. The head is a separate string of exactly its size that the
// values slice (nextHead): a 512-byte buffer here made this the largest
// piece of a proxied request's garbage, zeroed on every allocation.
type response struct {
	resp http.Response
	body body
	vals [8]string
}

// headString views a head read into b as a string without copying. b is
// never modified afterwards: it is a buffer readHead's appends filled.
func headString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// Body framing modes.
const (
	bodyNone    = iota // no body: HEAD, 1xx, 204, 304
	bodyLength         // Content-Length
	bodyChunked        // Transfer-Encoding: chunked
	bodyClose          // delimited by the connection closing
)

// Chunked decoder states.
const (
	chunkSize    = iota // expecting a chunk-size line
	chunkData           // inside a chunk's data
	chunkCRLF           // expecting the CRLF after a chunk's data
	chunkTrailer        // after the last chunk: trailers, then the blank line
)

var errBodyClosed = errors.New("read on closed response body")

// body is a response body read straight from the connection's buffered
// reader. At its end the connection goes back to the pool if both sides
// allow; a Close before the end closes the connection (closing is cheaper
// than draining an unbounded body). Read and Close may be called from
// different goroutines: a Close during a blocked Read aborts it.
type body struct {
	pc      *pconn // nil once the connection is released
	resp    *http.Response
	ctx     context.Context
	addr    string
	mode    uint8
	chunk   uint8
	reuse   bool  // the head allowed keep-alive
	remain  int64 // bodyLength: bytes left; bodyChunked: bytes left in the chunk
	err     error // sticky: io.EOF or the failure
	mu      sync.Mutex
	reading bool
	closed  bool
}

func (b *body) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return 0, errBodyClosed
	}
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	if len(p) == 0 {
		b.mu.Unlock()
		return 0, nil
	}
	b.reading = true
	b.mu.Unlock()

	n, err := b.read(p)

	b.mu.Lock()
	defer b.mu.Unlock()
	b.reading = false
	if b.closed && err == nil {
		// Close ran during the read and aborted the connection.
		err = errBodyClosed
	}
	if err != nil {
		if err != io.EOF {
			err = b.fail(err)
		}
		b.err = err
		b.release(err == io.EOF && !b.closed)
	}
	return n, err
}

// fail turns a read error into the *Error callers classify: the request's
// context ending, or the connection failing after the headers.
func (b *body) fail(err error) error {
	if err == errBodyClosed {
		return err
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return failure(b.ctx, b.addr, err, true)
}

// release hands the connection back exactly once. Called with mu held.
func (b *body) release(reuse bool) {
	if pc := b.pc; pc != nil {
		b.pc = nil
		pc.finish(reuse && b.reuse)
	}
}

func (b *body) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.reading {
		// Unblock the Read; it releases the connection when it returns.
		b.pc.abort()
		return nil
	}
	reuse := b.err == io.EOF || b.drainBuffered()
	b.release(reuse)
	if b.err == nil {
		b.err = errBodyClosed
	}
	return nil
}

// drainBuffered finishes a Content-Length body whose rest is already
// buffered, so an early Close still keeps the connection; anything that
// would need a network read closes the connection instead.
func (b *body) drainBuffered() bool {
	if b.pc == nil || b.err != nil {
		return false
	}
	switch b.mode {
	case bodyNone:
		return true
	case bodyLength:
		if b.remain <= int64(b.pc.br.Buffered()) {
			b.pc.br.Discard(int(b.remain))
			b.remain = 0
			return true
		}
	}
	return false
}

// read reads body bytes per the framing. It returns io.EOF together with
// the last bytes when it can tell the body ended without blocking.
func (b *body) read(p []byte) (int, error) {
	br := b.pc.br
	switch b.mode {
	case bodyNone:
		return 0, io.EOF
	case bodyLength:
		if b.remain == 0 {
			return 0, io.EOF
		}
		if int64(len(p)) > b.remain {
			p = p[:b.remain]
		}
		n, err := br.Read(p)
		b.remain -= int64(n)
		if b.remain == 0 {
			return n, io.EOF
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	case bodyClose:
		return br.Read(p)
	}
	return b.readChunked(br, p)
}

func (b *body) readChunked(br *bufio.Reader, p []byte) (int, error) {
	n := 0
	for {
		switch b.chunk {
		case chunkSize:
			if n > 0 && !lineBuffered(br) {
				return n, nil
			}
			size, err := readChunkSize(br)
			if err != nil {
				return n, err
			}
			if size == 0 {
				b.chunk = chunkTrailer
				continue
			}
			b.remain, b.chunk = size, chunkData
		case chunkTrailer:
			if n > 0 && !trailersBuffered(br) {
				return n, nil // finish on the next Read rather than block now
			}
			return n, b.readTrailers(br)
		case chunkData:
			if n == len(p) {
				return n, nil
			}
			q := p[n:]
			if int64(len(q)) > b.remain {
				q = q[:b.remain]
			}
			m, err := br.Read(q)
			n += m
			b.remain -= int64(m)
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return n, err
			}
			if b.remain > 0 {
				return n, nil
			}
			b.chunk = chunkCRLF
		case chunkCRLF:
			if n > 0 && br.Buffered() < 2 {
				return n, nil
			}
			crlf, err := br.Peek(2)
			if err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return n, err
			}
			if crlf[0] != '\r' || crlf[1] != '\n' {
				return n, malformed("chunk data not followed by CRLF")
			}
			br.Discard(2)
			b.chunk = chunkSize
		}
	}
}

// lineBuffered reports whether a whole line is buffered.
func lineBuffered(br *bufio.Reader) bool {
	buf, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(buf, '\n') >= 0
}

// trailersBuffered reports whether the trailer section after the last
// chunk is buffered up to its blank line.
func trailersBuffered(br *bufio.Reader) bool {
	buf, _ := br.Peek(br.Buffered())
	return bytes.HasPrefix(buf, []byte("\r\n")) || bytes.Contains(buf, []byte("\r\n\r\n"))
}

// maxChunkLine bounds a chunk-size line with its extensions.
const maxChunkLine = 4096

// readChunkSize reads "hex-size [;ext] CRLF" with a strict CRLF.
func readChunkSize(br *bufio.Reader) (int64, error) {
	line, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return 0, malformed("chunk size line too long")
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	if len(line) > maxChunkLine || len(line) < 2 || line[len(line)-2] != '\r' {
		return 0, malformed("bad chunk size line")
	}
	line = line[:len(line)-2]
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		line = line[:i] // chunk extensions are ignored
	}
	line = bytes.TrimRight(line, " \t") // BWS before extensions
	size, ok := httpwire.ParseChunkSize(line)
	if !ok {
		return 0, malformed("bad chunk size")
	}
	return size, nil
}

// readTrailers reads the trailer section after the last chunk into
// resp.Trailer, then reports io.EOF.
func (b *body) readTrailers(br *bufio.Reader) error {
	first, err := br.Peek(2)
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if first[0] == '\r' && first[1] == '\n' {
		br.Discard(2)
		return io.EOF
	}
	buf, err := readFields(br)
	if err != nil {
		return err
	}
	s := string(buf) // trailers are rare: a plain copy is fine
	if b.resp.Trailer == nil {
		b.resp.Trailer = make(http.Header)
	}
	for {
		var line string
		line, s = cutLine(s)
		if line == "" {
			break
		}
		k, v, err := parseField(line)
		if err != nil {
			return err
		}
		switch k {
		case "Transfer-Encoding", "Trailer", "Content-Length":
			continue
		}
		b.resp.Trailer[k] = append(b.resp.Trailer[k], v)
	}
	return io.EOF
}

// readFields reads header lines through the blank line, bounded like a head.
func readFields(br *bufio.Reader) ([]byte, error) {
	var buf []byte
	lineStart := 0
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > maxHeadBytes {
			return nil, errHeadTooLarge
		}
		buf = append(buf, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line := buf[lineStart:]
		if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			return buf, nil
		}
		lineStart = len(buf)
	}
}

// upgraded is a 101 response's body: the raw connection, read through the
// bytes already buffered. The connection never returns to the pool.
type upgraded struct {
	pc   *pconn
	once sync.Once
}

func (u *upgraded) Read(p []byte) (int, error) {
	if u.pc.br.Buffered() > 0 {
		return u.pc.br.Read(p)
	}
	return u.pc.nc.Read(p)
}

func (u *upgraded) Write(p []byte) (int, error) { return u.pc.nc.Write(p) }

func (u *upgraded) Close() error {
	u.once.Do(func() { u.pc.finish(false) })
	return nil
}

// CloseWrite half-closes a plaintext tunnel, when the connection can.
func (u *upgraded) CloseWrite() error {
	if cw, ok := u.pc.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// isIdempotent reports whether a request may be sent twice (RFC 9110
// §9.2.2), counting an Idempotency-Key as net/http does.
func isIdempotent(req *http.Request) bool {
	switch req.Method {
	case "", http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace,
		http.MethodPut, http.MethodDelete:
		return true
	}
	if _, ok := req.Header["Idempotency-Key"]; ok {
		return true
	}
	_, ok := req.Header["X-Idempotency-Key"]
	return ok
}

// hasBody reports whether req carries a body to send. As for net/http's
// client, a non-nil Body with ContentLength 0 is of unknown length.
func hasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody
}

// needsZeroLength: net/http sends "Content-Length: 0" for a bodiless
// POST/PUT/PATCH, which some servers require (411 otherwise).
func needsZeroLength(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}
