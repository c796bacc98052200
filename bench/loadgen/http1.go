package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// The HTTP/1.1 client is a minimal keep-alive client over a raw connection:
// a prebuilt request, then status line, headers and a Content-Length or
// chunked body read with one bufio.Reader. net/http's client costs several
// times more CPU per request, and on a two-core machine shared with the
// proxy and the backend that cost would land on the figures being measured.

type http1Client struct {
	t   Target
	req []byte
	// idle holds connections of closed sessions, so consecutive runs against
	// one target (warm-up, then each rate) reuse warm connections.
	mu   sync.Mutex
	idle []*http1Conn
}

type http1Conn struct {
	conn net.Conn
	br   *bufio.Reader
}

func newHTTP1Client(t Target) (Client, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: outrigger-bench\r\n", t.method(), t.path(), t.host())
	if len(t.Body) > 0 || t.method() == "POST" || t.method() == "PUT" {
		fmt.Fprintf(&b, "Content-Length: %d\r\nContent-Type: application/octet-stream\r\n", len(t.Body))
	}
	b.WriteString("\r\n")
	b.Write(t.Body)
	return &http1Client{t: t, req: b.Bytes()}, nil
}

func (c *http1Client) NewSession() (Session, error) {
	s := &http1Session{c: c}
	c.mu.Lock()
	if n := len(c.idle); n > 0 {
		s.http1Conn = *c.idle[n-1]
		c.idle = c.idle[:n-1]
	}
	c.mu.Unlock()
	return s, nil
}

func (c *http1Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ic := range c.idle {
		_ = ic.conn.Close()
	}
	c.idle = nil
	return nil
}

type http1Session struct {
	c *http1Client
	http1Conn
}

func (s *http1Session) dial(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.c.t.Addr)
	if err != nil {
		return fmt.Errorf("http1: dial %s: %w", s.c.t.Addr, err)
	}
	s.conn = conn
	if s.br == nil {
		s.br = bufio.NewReaderSize(conn, 32<<10)
	} else {
		s.br.Reset(conn)
	}
	return nil
}

func (s *http1Session) Do(ctx context.Context) error {
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(s.c.t.timeout())
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := s.conn.SetDeadline(deadline); err != nil {
		return s.fail(fmt.Errorf("http1: set deadline: %w", err))
	}
	if _, err := s.conn.Write(s.c.req); err != nil {
		return s.fail(fmt.Errorf("http1: write: %w", err))
	}
	keep, err := readResponse(s.br)
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) && keep {
			return err // the response was well formed; the connection stays usable
		}
		return s.fail(err)
	}
	if !keep {
		s.closeConn()
	}
	return nil
}

// fail drops the connection after an error so the next request redials.
func (s *http1Session) fail(err error) error {
	s.closeConn()
	return err
}

func (s *http1Session) closeConn() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

// Close hands a healthy connection back to the client for the next run.
func (s *http1Session) Close() error {
	if s.conn == nil {
		return nil
	}
	ic := s.http1Conn
	s.conn, s.br = nil, nil
	s.c.mu.Lock()
	s.c.idle = append(s.c.idle, &ic)
	s.c.mu.Unlock()
	return nil
}

var errMalformed = errors.New("http1: malformed response")

// readResponse reads one response and discards its body. keep says whether
// the connection may carry another request.
func readResponse(br *bufio.Reader) (keep bool, err error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return false, fmt.Errorf("http1: read status line: %w", err)
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return false, fmt.Errorf("%w: status line %q", errMalformed, bytes.TrimSpace(line))
	}
	code := line[9:12]
	status, err := strconv.Atoi(string(code))
	if err != nil {
		return false, fmt.Errorf("%w: status line %q", errMalformed, bytes.TrimSpace(line))
	}
	http10 := line[7] == '0'
	contentLength := int64(-1)
	chunked := false
	keep = !http10
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return false, fmt.Errorf("http1: read header: %w", err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		colon := bytes.IndexByte(h, ':')
		if colon <= 0 {
			return false, fmt.Errorf("%w: header line %q", errMalformed, h)
		}
		name, value := h[:colon], bytes.TrimSpace(h[colon+1:])
		switch {
		case asciiEqualFold(name, "content-length"):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 {
				return false, fmt.Errorf("%w: content-length %q", errMalformed, value)
			}
			contentLength = n
		case asciiEqualFold(name, "transfer-encoding"):
			chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
		case asciiEqualFold(name, "connection"):
			v := bytes.ToLower(value)
			if bytes.Contains(v, []byte("close")) {
				keep = false
			} else if bytes.Contains(v, []byte("keep-alive")) {
				keep = true
			}
		}
	}
	switch {
	case status == 204 || status == 304 || (status >= 100 && status < 200):
		// no body
	case chunked:
		if err := discardChunked(br); err != nil {
			return false, err
		}
	case contentLength >= 0:
		if _, err := br.Discard(int(contentLength)); err != nil {
			return false, fmt.Errorf("http1: read body: %w", err)
		}
	default:
		// Body until close.
		if _, err := io.Copy(io.Discard, br); err != nil {
			return false, fmt.Errorf("http1: read body: %w", err)
		}
		keep = false
	}
	if status < 200 || status > 299 {
		return keep, &StatusError{Protocol: HTTP1, Status: string(code)}
	}
	return keep, nil
}

func discardChunked(br *bufio.Reader) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("http1: read chunk size: %w", err)
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if size == 0 {
			// Trailers, then the blank line.
			for {
				t, err := br.ReadSlice('\n')
				if err != nil {
					return fmt.Errorf("http1: read trailer: %w", err)
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if _, err := br.Discard(int(size)); err != nil {
			return fmt.Errorf("http1: read chunk: %w", err)
		}
		cr, err1 := br.ReadByte()
		lf, err2 := br.ReadByte()
		if err1 != nil || err2 != nil || cr != '\r' || lf != '\n' {
			return fmt.Errorf("%w: chunk not followed by CRLF", errMalformed)
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
