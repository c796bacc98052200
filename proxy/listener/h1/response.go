package h1

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// response is the http.ResponseWriter of one connection, reused across its
// requests; like net/http's, it must not be used after ServeHTTP returns.
// It implements what http.ResponseController uses.
type response struct {
	c      *conn
	req    *http.Request
	header http.Header

	status      int
	wroteHeader bool // the final status is set (guarded by c.wmu for writeContinue)
	sentCont    bool // a 100 Continue went out
	committed   bool // the header block is in c.bw
	handlerDone bool
	chunked     bool
	closeAfter  bool
	fullDuplex  bool
	head        bool
	http11      bool
	wantsClose  bool
	keepAlive10 bool

	declaredCL int64 // Content-Length set by the handler, or -1
	written    int64

	// Snapshot of the handler's header at WriteHeader (net/http clones it).
	hdrOut       []byte
	hasDate      bool
	hasCT        bool
	noSniff      bool
	handlerClose bool
	trailers     []string // the Trailer header's values

	buf  []byte // body written before the header block is committed
	line []byte // scratch for the status line and Content-Length
	err  error  // sticky write error
}

func (w *response) reset(r *http.Request, p *parsed) {
	clear(w.header)
	*w = response{
		c:           w.c,
		req:         r,
		header:      w.header,
		hdrOut:      w.hdrOut[:0],
		buf:         w.buf[:0],
		line:        w.line[:0],
		declaredCL:  -1,
		head:        r.Method == http.MethodHead,
		http11:      r.ProtoMinor >= 1,
		wantsClose:  p.wantsClose,
		keepAlive10: p.keepAlive10,
	}
}

func (w *response) Header() http.Header { return w.header }

func bodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199 || status == 204 || status == 304)
}

func (w *response) WriteHeader(code int) {
	if w.c.hijacked {
		w.c.s.log.Debug("WriteHeader on a hijacked connection", "remote", w.c.remoteAddr)
		return
	}
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.writeInformational(code)
		return
	}
	w.c.wmu.Lock()
	w.wroteHeader = true
	w.c.wmu.Unlock()
	w.status = code
	w.snapshot()
}

// writeInformational sends a 1xx with the current header map, which stays
// as it is for the final response (RFC 8297).
func (w *response) writeInformational(code int) {
	w.c.wmu.Lock()
	defer w.c.wmu.Unlock()
	if code == http.StatusContinue {
		if w.sentCont {
			return
		}
		w.sentCont = true
	}
	bw := w.c.bw
	_, _ = bw.Write(appendStatusLine(w.hdrOut[:0], code, w.http11))
	for k, vv := range w.header {
		if k == "Content-Length" || k == "Transfer-Encoding" {
			continue
		}
		w.hdrOut = appendField(w.hdrOut[:0], k, vv)
		_, _ = bw.Write(w.hdrOut)
	}
	_, _ = bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		w.err = err
	}
	w.hdrOut = w.hdrOut[:0]
}

// snapshot serializes the handler's header now, except the fields the
// server decides at commit, so later edits (trailer values) do not leak in.
func (w *response) snapshot() {
	b := w.hdrOut[:0]
	for k, vv := range w.header {
		switch k {
		case "Content-Length":
			if len(vv) > 0 {
				if n, err := strconv.ParseInt(vv[0], 10, 64); err == nil && n >= 0 {
					w.declaredCL = n
				} else {
					w.c.s.log.Debug("invalid Content-Length from handler", "value", vv[0])
				}
			}
			continue
		case "Transfer-Encoding":
			continue
		case "Date":
			w.hasDate = true
		case "Content-Type":
			w.hasCT = true
			if w.status == http.StatusNotModified {
				continue
			}
		case "X-Content-Type-Options":
			w.noSniff = hasToken(vv, "nosniff")
		case "Connection":
			w.handlerClose = hasToken(vv, "close")
		case "Trailer":
			w.trailers = vv
		}
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		b = appendField(b, k, vv)
	}
	w.hdrOut = b
	if w.status == http.StatusNoContent || w.status == http.StatusNotModified || w.status < 200 {
		w.declaredCL = -1
	}
}

// appendField writes "Key: value\r\n" per value, dropping invalid names and
// turning CR/LF in values into spaces (no response splitting).
func appendField(b []byte, k string, vv []string) []byte {
	if !httpguts.ValidHeaderFieldName(k) {
		return b
	}
	for _, v := range vv {
		b = append(b, k...)
		b = append(b, ": "...)
		start := len(b)
		b = append(b, trimOWS(v)...)
		for i := start; i < len(b); i++ {
			if b[i] == '\r' || b[i] == '\n' {
				b[i] = ' '
			}
		}
		b = append(b, "\r\n"...)
	}
	return b
}

func (w *response) Write(p []byte) (int, error) {
	if w.c.hijacked {
		return 0, http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.err != nil {
		return 0, w.err
	}
	w.written += int64(len(p))
	if w.declaredCL >= 0 && w.written > w.declaredCL {
		return 0, http.ErrContentLength
	}
	if !w.committed {
		if len(w.buf)+len(p) <= bufSize {
			if w.buf == nil {
				w.buf = make([]byte, 0, bufSize) // kept for the connection's life
			}
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		if err := w.commitAndFlushBuf(p); err != nil {
			return 0, err
		}
	}
	if w.head {
		return len(p), nil
	}
	return w.writeBody(p)
}

func (w *response) WriteString(s string) (int, error) {
	// The handler's string is copied into the buffer; no conversion alloc
	// for the small, common case.
	if !w.wroteHeader && !w.c.hijacked {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed && len(w.buf)+len(s) <= bufSize && w.wroteHeader && bodyAllowed(w.status) && w.err == nil && !w.c.hijacked {
		w.written += int64(len(s))
		if w.declaredCL >= 0 && w.written > w.declaredCL {
			return 0, http.ErrContentLength
		}
		if w.buf == nil {
			w.buf = make([]byte, 0, bufSize)
		}
		w.buf = append(w.buf, s...)
		return len(s), nil
	}
	return w.Write([]byte(s))
}

// writeBody writes p after the header block, chunk-framed when chunked.
func (w *response) writeBody(p []byte) (int, error) {
	bw := w.c.bw
	var err error
	if w.chunked {
		var hex [20]byte
		h := strconv.AppendInt(hex[:0], int64(len(p)), 16)
		h = append(h, '\r', '\n')
		if _, err = bw.Write(h); err == nil {
			if _, err = bw.Write(p); err == nil {
				_, err = bw.WriteString("\r\n")
			}
		}
	} else {
		_, err = bw.Write(p)
	}
	if err != nil {
		w.err = err
		return 0, err
	}
	return len(p), nil
}

// commitAndFlushBuf writes the header block (sniffing from the buffered
// body or next) and moves the buffered body behind it.
func (w *response) commitAndFlushBuf(next []byte) error {
	sniff := w.buf
	if len(sniff) == 0 {
		sniff = next
	}
	w.commit(sniff)
	if len(w.buf) > 0 && !w.head {
		if _, err := w.writeBody(w.buf); err != nil {
			return err
		}
	}
	w.buf = w.buf[:0]
	return w.err
}

// commit writes the status line and header block, choosing the framing
// like net/http: the handler's Content-Length, else the whole body's length
// when the handler is already done, else chunked (HTTP/1.1) or close.
func (w *response) commit(sniff []byte) {
	w.committed = true
	if w.wantsClose || w.handlerClose || w.c.s.draining.Load() || w.c.gone {
		w.closeAfter = true
	}
	w.checkRequestBody()
	bodyOK := bodyAllowed(w.status)
	hasTrailers := len(w.trailers) > 0
	if !hasTrailers && w.handlerDone {
		for k := range w.header {
			if strings.HasPrefix(k, http.TrailerPrefix) {
				hasTrailers = true
				break
			}
		}
	}
	cl := int64(-1)
	switch {
	case w.status == http.StatusSwitchingProtocols:
		w.closeAfter = true // upgrades go through Hijack
	case !bodyOK:
	case w.declaredCL >= 0:
		cl = w.declaredCL
	case w.head:
		if w.handlerDone && w.written > 0 {
			cl = w.written
		}
	case w.handlerDone && !hasTrailers:
		cl = w.written
	case w.http11:
		w.chunked = true
	default:
		w.closeAfter = true // HTTP/1.0: the body ends at close
	}
	keepAlive10 := false
	if !w.http11 {
		if w.keepAlive10 && !w.closeAfter {
			keepAlive10 = true
		} else {
			w.closeAfter = true
		}
	}

	bw := w.c.bw
	line := appendStatusLine(w.line[:0], w.status, w.http11)
	_, _ = bw.Write(line)
	_, _ = bw.Write(w.hdrOut)
	if !w.hasCT && !w.noSniff && bodyOK && len(sniff) > 0 {
		_, _ = bw.WriteString("Content-Type: ")
		_, _ = bw.WriteString(http.DetectContentType(sniff))
		_, _ = bw.WriteString("\r\n")
	}
	if !w.hasDate {
		_, _ = bw.Write(w.c.s.dates.get(time.Now()))
	}
	switch {
	case cl >= 0:
		b := append(line[:0], "Content-Length: "...)
		b = strconv.AppendInt(b, cl, 10)
		_, _ = bw.Write(append(b, '\r', '\n'))
	case w.chunked:
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	switch {
	case w.closeAfter && !w.handlerClose:
		_, _ = bw.WriteString("Connection: close\r\n")
	case keepAlive10:
		_, _ = bw.WriteString("Connection: keep-alive\r\n")
	}
	if _, err := bw.WriteString("\r\n"); err != nil {
		w.err = err
	}
	w.line = line[:0]
}

// checkRequestBody applies net/http's rule when the response starts: a
// client that offered 100-continue and was not asked for the body gets
// the connection closed; otherwise, unless full duplex, the rest of the
// body is drained (up to 256 KiB) so a client that sends its whole request
// before reading cannot deadlock.
func (w *response) checkRequestBody() {
	b := w.c.body
	if b == nil {
		return
	}
	b.mu.Lock()
	eof := false
	switch {
	case b.sawEOF:
	case b.cont:
		w.closeAfter = true
	case w.closeAfter || w.fullDuplex:
	case b.closed || b.err != nil:
		w.closeAfter = true
	case !b.chunked && b.remain >= maxPostHandlerReadBytes:
		w.closeAfter = true
	default:
		ok, err := b.discardLocked(maxPostHandlerReadBytes)
		if ok && err == nil {
			b.closed = true
			eof = !b.bgStarted
			b.bgStarted = true
		} else {
			w.closeAfter = true
		}
	}
	b.mu.Unlock()
	if eof {
		w.c.onBodyEOF()
	}
}

// finish completes the response after the handler returned.
func (w *response) finish() {
	if w.c.hijacked {
		return
	}
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		_ = w.commitAndFlushBuf(nil)
	}
	bw := w.c.bw
	if w.chunked && w.err == nil {
		_, _ = bw.WriteString("0\r\n")
		w.writeTrailers()
		_, _ = bw.WriteString("\r\n")
	}
	if w.declaredCL >= 0 && !w.head && bodyAllowed(w.status) && w.written != w.declaredCL {
		w.closeAfter = true // the body does not match its length: out of sync
	}
	if err := bw.Flush(); err != nil {
		w.err = err
	}
}

// writeTrailers writes the announced trailers and TrailerPrefix ones.
func (w *response) writeTrailers() {
	bw := w.c.bw
	for _, v := range w.trailers {
		for v != "" {
			var k string
			i := strings.IndexByte(v, ',')
			if i < 0 {
				k, v = v, ""
			} else {
				k, v = v[:i], v[i+1:]
			}
			k = http.CanonicalHeaderKey(trimOWS(k))
			if vv, ok := w.header[k]; ok && httpguts.ValidTrailerHeader(k) {
				w.hdrOut = appendField(w.hdrOut[:0], k, vv)
				_, _ = bw.Write(w.hdrOut)
			}
		}
	}
	for k, vv := range w.header {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok && httpguts.ValidTrailerHeader(name) {
			w.hdrOut = appendField(w.hdrOut[:0], name, vv)
			_, _ = bw.Write(w.hdrOut)
		}
	}
	w.hdrOut = w.hdrOut[:0]
}

// FlushError sends what is buffered; the header block is committed first.
func (w *response) FlushError() error {
	if w.c.hijacked {
		return http.ErrHijacked
	}
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		if err := w.commitAndFlushBuf(nil); err != nil {
			return err
		}
	}
	if w.err != nil {
		return w.err
	}
	if err := w.c.bw.Flush(); err != nil {
		w.err = err
		return err
	}
	return nil
}

func (w *response) Flush() { _ = w.FlushError() }

// Hijack hands the connection to the handler. The ReadWriter's reader
// holds the bytes already read from the client.
func (w *response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c := w.c
	if c.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.wroteHeader && !w.committed {
		_ = w.commitAndFlushBuf(nil)
	}
	if err := c.bw.Flush(); err != nil {
		return nil, nil, err
	}
	c.stopWatch()
	c.wmu.Lock()
	c.hijacked = true
	c.wmu.Unlock()
	c.state.Store(stateHijacked)
	_ = c.rwc.SetDeadline(time.Time{})
	if c.cr.hasByte {
		if _, err := c.br.Peek(c.br.Buffered() + 1); err != nil {
			return nil, nil, fmt.Errorf("h1: reading the buffered byte before hijack: %w", err)
		}
	}
	c.s.forget(c)
	return c.rwc, bufio.NewReadWriter(c.br, c.bw), nil
}

func (w *response) SetReadDeadline(t time.Time) error  { return w.c.rwc.SetReadDeadline(t) }
func (w *response) SetWriteDeadline(t time.Time) error { return w.c.rwc.SetWriteDeadline(t) }

// EnableFullDuplex lets the handler read the request body while writing
// the response (no drain when the response starts).
func (w *response) EnableFullDuplex() error {
	w.fullDuplex = true
	return nil
}
