package transport

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// errInvalidRequest marks a request this transport refuses to write: a
// header that would let a value inject lines into the upstream stream.
var errInvalidRequest = errors.New("invalid request")

// writeHead writes the request line and headers and flushes them. last
// sends Connection: close. Errors from the connection come back as
// *writeErr; a request that cannot be written safely as errInvalidRequest.
func (pc *pconn) writeHead(req *http.Request, last, withBody bool) error {
	method := req.Method
	if method == "" {
		method = http.MethodGet
	}
	if !validMethod(method) {
		return fmt.Errorf("%w: method %q", errInvalidRequest, method)
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return fmt.Errorf("%w: host %q", errInvalidRequest, host)
	}
	bw := pc.bw
	bw.WriteString(method)
	bw.WriteByte(' ')
	if err := writeTarget(bw, req.URL, method); err != nil {
		return err
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")

	for k, vv := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue // written from the request's fields
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("%w: header name %q", errInvalidRequest, k)
		}
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("%w: value of header %q", errInvalidRequest, k)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	switch {
	case withBody && req.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), req.ContentLength, 10))
		bw.WriteString("\r\n")
	case withBody:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
		if len(req.Trailer) > 0 {
			if err := writeTrailerNames(bw, req.Trailer); err != nil {
				return err
			}
		}
	case needsZeroLength(method):
		bw.WriteString("Content-Length: 0\r\n")
	}
	if last {
		if _, ok := req.Header["Connection"]; !ok {
			bw.WriteString("Connection: close\r\n")
		}
	}
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		return &writeErr{err}
	}
	return nil
}

// stringWriter is what the head writers need of a bufio.Writer.
type stringWriter interface {
	io.Writer
	io.StringWriter
	WriteByte(byte) error
}

// writeTarget writes the request-target (RFC 9112 §3.2) without building
// RequestURI's string.
func writeTarget(w stringWriter, u *url.URL, method string) error {
	var target string
	switch {
	case method == http.MethodConnect && u.Path == "":
		target = u.Host // authority-form
	case u.Opaque != "":
		target = u.RequestURI() // rare: pay for the allocation
	default:
		target = u.EscapedPath()
		if target == "" {
			target = "/"
		}
	}
	if !validTarget(target) {
		return fmt.Errorf("%w: request target %q", errInvalidRequest, target)
	}
	w.WriteString(target)
	if u.Opaque == "" && (u.ForceQuery || u.RawQuery != "") {
		if !validTarget(u.RawQuery) {
			return fmt.Errorf("%w: query %q", errInvalidRequest, u.RawQuery)
		}
		w.WriteByte('?')
		w.WriteString(u.RawQuery)
	}
	return nil
}

// validTarget rejects bytes that would break the request line.
func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !isTokenByte(m[i]) {
			return false
		}
	}
	return m != ""
}

// writeTrailerNames announces request trailers, sorted for a stable wire
// form.
func writeTrailerNames(w stringWriter, tr http.Header) error {
	keys := make([]string, 0, len(tr))
	for k := range tr {
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("%w: trailer name %q", errInvalidRequest, k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w.WriteString("Trailer: ")
	w.WriteString(strings.Join(keys, ", "))
	w.WriteString("\r\n")
	return nil
}

// copyBufPool holds the request body copy buffers.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writeBody streams the request body, flushing after every read so a
// streaming body is not held back, then closes it (a RoundTripper always
// closes the request body) and reports on pc.wrote. A failure aborts the
// connection: the upstream would otherwise wait for the rest forever.
func (pc *pconn) writeBody(req *http.Request) {
	err := pc.copyBody(req)
	if cerr := req.Body.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		pc.abort()
	}
	pc.wrote <- err
}

// errBodyLength: the body's length differs from its Content-Length.
var errBodyLength = errors.New("request body length differs from Content-Length")

func (pc *pconn) copyBody(req *http.Request) error {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	bw := pc.bw
	chunked := req.ContentLength <= 0
	remain := req.ContentLength
	for {
		p := buf
		if !chunked && int64(len(p)) > remain {
			p = p[:remain+1] // one byte more detects a body that runs long
		}
		n, rerr := req.Body.Read(p)
		if n > 0 {
			if !chunked {
				if int64(n) > remain {
					return errBodyLength
				}
				remain -= int64(n)
				if _, err := bw.Write(p[:n]); err != nil {
					return &writeErr{err}
				}
			} else {
				bw.Write(strconv.AppendUint(bw.AvailableBuffer(), uint64(n), 16))
				bw.WriteString("\r\n")
				bw.Write(p[:n])
				if _, err := bw.WriteString("\r\n"); err != nil {
					return &writeErr{err}
				}
			}
			if err := bw.Flush(); err != nil {
				return &writeErr{err}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("read request body: %w", rerr)
		}
	}
	if !chunked {
		if remain != 0 {
			return errBodyLength
		}
		return nil
	}
	bw.WriteString("0\r\n")
	for k, vv := range req.Trailer {
		for _, v := range vv {
			if !httpguts.ValidHeaderFieldName(k) || !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("%w: trailer %q", errInvalidRequest, k)
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		return &writeErr{err}
	}
	return nil
}
