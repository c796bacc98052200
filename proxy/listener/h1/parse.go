package h1

import (
	"bufio"
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// Reject classifies why a request is refused before it reaches the
// handler; Hooks.Rejected receives it for the listener's statistics.
type Reject uint8

const (
	// RejectFraming: the message boundaries are ambiguous (Content-Length
	// with Transfer-Encoding, a Transfer-Encoding other than one "chunked",
	// Transfer-Encoding on HTTP/1.0, duplicated or invalid Content-Length,
	// obs-fold, a bad request line, bad chunk framing): a smuggling attempt
	// or a broken peer.
	RejectFraming Reject = iota + 1
	// RejectMalformed: framing is clear but the request is invalid (bad
	// header name or value, bare CR, bad target, missing Host).
	RejectMalformed
	// RejectHeadersTooLarge: the header block is over the limit (431).
	RejectHeadersTooLarge
	// RejectVersion: an HTTP version other than 1.x (505).
	RejectVersion
)

// requestError is a refused request: the status to answer with, then the
// connection is closed.
type requestError struct {
	kind   Reject
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(kind Reject, msg string) *requestError {
	return &requestError{kind: kind, status: http.StatusBadRequest, msg: msg}
}

var (
	errHeadersTooLarge = &requestError{kind: RejectHeadersTooLarge, status: http.StatusRequestHeaderFieldsTooLarge, msg: "request headers too large"}
	errBadRequestLine  = badRequest(RejectFraming, "malformed request line")
	errObsFold         = badRequest(RejectFraming, "obs-fold in header block")
	errBareCR          = badRequest(RejectMalformed, "bare CR in header block")
	errBadHeaderName   = badRequest(RejectMalformed, "invalid header name")
	errBadHeaderValue  = badRequest(RejectMalformed, "invalid header value")
	errMissingHost     = badRequest(RejectMalformed, "missing required Host header")
	errBadHost         = badRequest(RejectMalformed, "malformed Host header")
	errTooManyHosts    = badRequest(RejectMalformed, "too many Host headers")
	errBadTarget       = badRequest(RejectMalformed, "invalid request target")
	errConflict        = badRequest(RejectFraming, "both Content-Length and Transfer-Encoding")
	errBadTE           = badRequest(RejectFraming, "unsupported Transfer-Encoding")
	errBadCL           = badRequest(RejectFraming, "invalid or duplicated Content-Length")
	errBadTrailerKey   = badRequest(RejectMalformed, "bad trailer key")
	errVersion         = &requestError{kind: RejectVersion, status: http.StatusHTTPVersionNotSupported, msg: "unsupported protocol version"}
)

// errIncompleteHead is returned by readHead when the connection ended or
// failed part-way through a header block.
var errIncompleteHead = errors.New("h1: connection ended inside a header block")

// readHead reads one header block (request line through the empty line)
// into buf, enforcing limit on its whole size including line ends. It
// returns the block, or the read error (with any partial block).
func readHead(br *bufio.Reader, buf []byte, limit int) ([]byte, error) {
	buf = buf[:0]
	lineStart := 0
	for {
		frag, err := br.ReadSlice('\n')
		if limit > 0 && len(buf)+len(frag) > limit {
			return buf, errHeadersTooLarge
		}
		buf = append(buf, frag...)
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err != nil:
			return buf, err
		}
		line := buf[lineStart:]
		if lineStart > 0 && (len(line) == 1 || len(line) == 2 && line[0] == '\r') {
			return buf, nil
		}
		lineStart = len(buf)
	}
}

// headBuffered reports whether br already holds the blank line that ends
// the header block it starts with, so that readHead will not read from the
// connection: every line before it is whole in the buffer too.
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return false
		}
		b = b[i+1:]
		if len(b) > 0 && b[0] == '\n' || len(b) > 1 && b[0] == '\r' && b[1] == '\n' {
			return true
		}
	}
}

// parsed holds what the parser learned about a request's framing.
type parsed struct {
	chunked        bool
	contentLength  int64 // -1 with chunked
	expectContinue bool
	expectOther    bool
	wantsClose     bool // the client asked to close, or HTTP/1.0 without keep-alive
	keepAlive10    bool // HTTP/1.0 with Connection: keep-alive
}

// chunkedTE is the TransferEncoding of every chunked request; handlers
// must not modify it (net/http's requests own theirs).
var chunkedTE = []string{"chunked"}

// parseRequest parses a header block read by readHead into r, reusing hdr
// and u. The block is copied once into a string that every value slices.
func parseRequest(block []byte, r *http.Request, hdr http.Header, u *url.URL, keyBuf *[]byte) (parsed, *requestError) {
	var p parsed
	s := string(block)
	// Request line.
	nl := strings.IndexByte(s, '\n')
	line := s[:nl]
	s = s[nl+1:]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if strings.IndexByte(line, '\r') >= 0 {
		return p, errBareCR
	}
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !isToken(method) || target == "" {
		return p, errBadRequestLine
	}
	major, minor, ok := parseVersion(proto)
	if !ok {
		return p, errBadRequestLine
	}
	if major != 1 {
		if major == 2 && minor == 0 && method == "PRI" {
			return p, errBadRequestLine // an h2 preface where HTTP/1.1 is served
		}
		return p, errVersion
	}
	if m, ok := methods[method]; ok {
		method = m
	}
	switch {
	case minor == 1 && proto == "HTTP/1.1":
		proto = "HTTP/1.1"
	case minor == 0 && proto == "HTTP/1.0":
		proto = "HTTP/1.0"
	}

	// Header lines: count them first so one array backs every value.
	clear(hdr)
	vals := make([]string, strings.Count(s, "\n"))
	nv := 0
	var (
		nCL, nTE, nHost int
		clVal, teVal    string
	)
	for {
		nl := strings.IndexByte(s, '\n')
		if nl < 0 {
			break
		}
		line := s[:nl]
		s = s[nl+1:]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if line == "" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return p, errObsFold
		}
		if strings.IndexByte(line, '\r') >= 0 {
			return p, errBareCR
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return p, errBadHeaderName
		}
		rawKey, v := line[:colon], trimOWS(line[colon+1:])
		if !isToken(rawKey) {
			return p, errBadHeaderName
		}
		if !validFieldValue(v) {
			return p, errBadHeaderValue
		}
		key := canonicalKey(rawKey, keyBuf)
		switch key {
		case "Content-Length":
			nCL++
			clVal = v
		case "Transfer-Encoding":
			nTE++
			teVal = v
			continue // net/http moves it to r.TransferEncoding
		case "Host":
			nHost++
		}
		if old, ok := hdr[key]; ok {
			hdr[key] = append(old, v)
			continue
		}
		vals[nv] = v
		hdr[key] = vals[nv : nv+1 : nv+1]
		nv++
	}

	// Framing: refuse anything two parsers could split differently (smuggling).
	switch {
	case nTE > 0 && nCL > 0:
		return p, errConflict
	case nTE > 0 && minor == 0:
		return p, errBadTE // net/http would ignore it; other hops might not
	case nTE > 1 || nTE == 1 && !equalFold(teVal, "chunked"):
		return p, errBadTE
	case nCL > 1:
		return p, errBadCL
	}
	p.contentLength = 0
	if nTE == 1 {
		p.chunked = true
		p.contentLength = -1
	} else if nCL == 1 {
		n, ok := parseContentLength(clVal)
		if !ok {
			return p, errBadCL
		}
		p.contentLength = n
	}

	// Target.
	*u = url.URL{}
	target0 := target
	if !parseOriginForm(target, u) {
		raw := target
		justAuthority := method == "CONNECT" && !strings.HasPrefix(target, "/")
		if justAuthority {
			raw = "http://" + target
		}
		pu, err := url.ParseRequestURI(raw)
		if err != nil {
			return p, errBadTarget
		}
		if justAuthority {
			pu.Scheme = ""
		}
		*u = *pu
	}

	// Host: required on HTTP/1.1 (except CONNECT), at most one, valid.
	hosts := hdr["Host"]
	if nHost > 1 {
		return p, errTooManyHosts
	}
	if minor >= 1 && nHost == 0 && method != "CONNECT" {
		return p, errMissingHost
	}
	host := u.Host
	if nHost == 1 {
		if !httpguts.ValidHostHeader(hosts[0]) {
			return p, errBadHost
		}
		if host == "" {
			host = hosts[0]
		}
	}
	delete(hdr, "Host")

	conn := hdr["Connection"]
	if minor == 0 {
		p.keepAlive10 = hasToken(conn, "keep-alive")
		p.wantsClose = hasToken(conn, "close") || !p.keepAlive10
	} else {
		p.wantsClose = hasToken(conn, "close")
	}
	if ex, ok := hdr["Expect"]; ok && len(ex) > 0 && ex[0] != "" {
		if hasToken(ex[:1], "100-continue") {
			p.expectContinue = true
		} else {
			p.expectOther = true
		}
	}
	// net/http's fixPragmaCacheControl.
	if pr, ok := hdr["Pragma"]; ok && len(pr) > 0 && pr[0] == "no-cache" {
		if _, ok := hdr["Cache-Control"]; !ok {
			hdr["Cache-Control"] = []string{"no-cache"}
		}
	}

	resetRequest(r)
	r.Method = method
	r.URL = u
	r.Proto = proto
	r.ProtoMajor = major
	r.ProtoMinor = minor
	r.Header = hdr
	r.ContentLength = p.contentLength
	r.Close = p.wantsClose
	r.Host = host
	r.RequestURI = target0
	if p.chunked {
		r.TransferEncoding = chunkedTE
		if tr, ok := hdr["Trailer"]; ok {
			t, err := announcedTrailers(tr)
			if err != nil {
				return p, err
			}
			r.Trailer = t
			delete(hdr, "Trailer") // as net/http: it lives in r.Trailer now
		}
	}
	return p, nil
}

// resetRequest zeroes every exported field of r and keeps its context: the
// connection sets its context once (WithContext copies the whole request, an
// allocation per request otherwise). TestResetRequestCoversEveryField keeps
// this list complete when net/http grows a field.
func resetRequest(r *http.Request) {
	r.Method, r.URL, r.Proto, r.ProtoMajor, r.ProtoMinor = "", nil, "", 0, 0
	r.Header, r.Body, r.GetBody, r.ContentLength, r.TransferEncoding = nil, nil, nil, 0, nil
	r.Close, r.Host, r.Form, r.PostForm, r.MultipartForm = false, "", nil, nil, nil
	r.Trailer, r.RemoteAddr, r.RequestURI, r.TLS, r.Cancel = nil, "", "", nil, nil
	r.Response, r.Pattern = nil, ""
}

// announcedTrailers is net/http's fixTrailer for requests.
func announcedTrailers(vs []string) (http.Header, *requestError) {
	t := http.Header{}
	for _, v := range vs {
		for _, k := range strings.Split(v, ",") {
			k = http.CanonicalHeaderKey(trimOWS(k))
			switch k {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return nil, errBadTrailerKey
			case "":
				continue
			}
			t[k] = nil
		}
	}
	if len(t) == 0 {
		return nil, nil
	}
	return t, nil
}

// parseOriginForm fills u for the common origin-form target "/path?query"
// when net/url would return Path as the raw text; it reports false for
// anything else (escapes, "//", absolute-form, ...), which net/url parses.
func parseOriginForm(t string, u *url.URL) bool {
	if len(t) == 0 || t[0] != '/' || len(t) > 1 && t[1] == '/' {
		return false
	}
	i := 0
	for i < len(t) && pathPlain[t[i]] {
		i++
	}
	if i < len(t) && t[i] != '?' {
		return false
	}
	q := t[i:]
	for j := 1; j < len(q); j++ {
		if c := q[j]; c < ' ' || c == 0x7f {
			return false
		}
	}
	u.Path = t[:i]
	switch {
	case q == "?":
		u.ForceQuery = true
	case q != "":
		u.RawQuery = q[1:]
	}
	return true
}

func parseVersion(p string) (major, minor int, ok bool) {
	switch p {
	case "HTTP/1.1":
		return 1, 1, true
	case "HTTP/1.0":
		return 1, 0, true
	}
	if len(p) != len("HTTP/X.Y") || p[:5] != "HTTP/" || p[6] != '.' {
		return 0, 0, false
	}
	if p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9' {
		return 0, 0, false
	}
	return int(p[5] - '0'), int(p[7] - '0'), true
}

// parseContentLength accepts ASCII digits only, fitting in int64.
func parseContentLength(v string) (int64, bool) {
	if v == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		b := v[i]
		if b < '0' || b > '9' {
			return 0, false
		}
		if n > (1<<63-1-int64(b-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(b-'0')
	}
	return n, true
}

// canonicalKey returns the canonical form of a valid token key: interned
// for common names, the key itself when already canonical, else a copy.
func canonicalKey(k string, buf *[]byte) string {
	if v, ok := commonKeys[k]; ok {
		return v
	}
	b := append((*buf)[:0], k...)
	upper := true
	for i, c := range b {
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	*buf = b
	if v, ok := commonKeys[string(b)]; ok {
		return v
	}
	if string(b) == k {
		return k
	}
	return string(b)
}
