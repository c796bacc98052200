package transport

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/outrigger-mesh/outrigger/proxy/httpwire"
)

// maxHeadBytes bounds one response head (status line and headers) and one
// trailer section. Envoy's default max_response_headers_kb is 60.
const maxHeadBytes = 64 << 10

var (
	// errMalformed marks a response that breaks HTTP/1.1 framing: the
	// connection cannot be trusted any further, so it is a reset.
	errMalformed = errors.New("malformed HTTP/1.1 response")
	// errHeadTooLarge: the upstream sent more than maxHeadBytes of head.
	errHeadTooLarge = fmt.Errorf("%w: response headers exceed %d KiB", errMalformed, maxHeadBytes>>10)
)

func malformed(what string) error { return fmt.Errorf("%w: %s", errMalformed, what) }

// readHead appends one head, from its first line through the blank line
// that ends it, to buf. A head whose first line is blank is malformed.
// Lines may end in CRLF or a bare LF (RFC 9112 §2.2 lets a recipient accept
// LF); parseHead strips either.
func readHead(br *bufio.Reader, buf []byte) ([]byte, error) {
	start := len(buf)
	lineStart := len(buf)
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)-start+len(frag) > maxHeadBytes {
			return buf, errHeadTooLarge
		}
		buf = append(buf, frag...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return buf, err
		}
		line := buf[lineStart:]
		if len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			if lineStart == start {
				return buf, malformed("blank status line")
			}
			return buf, nil
		}
		lineStart = len(buf)
	}
}

// nextHead returns the next head as a string, for parseHead. When the
// reader's buffer already holds all of it (one read usually brings a small
// head whole) that is one copy of exactly its size; otherwise readHead
// assembles it in a buffer of its own. n is how much of a failed head was
// read: a connection the upstream closed while idle fails with none.
func nextHead(br *bufio.Reader) (s string, n int, err error) {
	if _, err := br.Peek(1); err != nil {
		return "", 0, err // as readHead: nothing read
	}
	if b, _ := br.Peek(br.Buffered()); b[0] != '\r' && b[0] != '\n' {
		// A head starting with a blank line is readHead's to refuse.
		if end := headEnd(b); end > 0 && end <= maxHeadBytes {
			s = string(b[:end])
			_, _ = br.Discard(end)
			return s, end, nil
		}
	}
	buf, err := readHead(br, make([]byte, 0, 512))
	if err != nil {
		return "", len(buf), err
	}
	return headString(buf), len(buf), nil
}

// headEnd returns the length of the head at the start of b through the
// blank line that ends it (where readHead would stop), or 0 when b does not
// hold that line.
func headEnd(b []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j + 1
		switch {
		case i < len(b) && b[i] == '\n':
			return i + 1
		case i+1 < len(b) && b[i] == '\r' && b[i+1] == '\n':
			return i + 2
		}
	}
}

// head is what parseHead learns about a response beyond what it stores in
// the http.Response.
type head struct {
	// length is the body length: -1 when chunked or delimited by close, 0
	// when the response has no body (HEAD, 1xx, 204, 304).
	length  int64
	chunked bool
	noBody  bool
	// keepAlive: the upstream lets the connection carry another request.
	keepAlive bool
}

// parseHead parses a head returned by readHead into resp (Status,
// StatusCode, Proto*, Header, ContentLength, TransferEncoding, Trailer) and
// decides the body's framing (RFC 9112 §6). method is the request's. The
// header values are substrings of s, and vals, when long enough, backs the
// value slices so a typical response costs the map and nothing more.
func parseHead(s string, method string, resp *http.Response, vals []string) (head, error) {
	var h head
	line, rest := cutLine(s)
	if err := parseStatusLine(line, resp); err != nil {
		return h, err
	}
	n := strings.Count(rest, "\n") - 1 // minus the blank line
	if n > len(vals) {
		vals = make([]string, n)
	}
	hdr := make(http.Header, n)
	for {
		line, rest = cutLine(rest)
		if line == "" {
			break
		}
		k, v, err := parseField(line)
		if err != nil {
			return h, err
		}
		if vv, ok := hdr[k]; ok {
			hdr[k] = append(vv, v) // cap is 1: copies, never touches vals
			continue
		}
		vals[0] = v
		hdr[k] = vals[0:1:1]
		vals = vals[1:]
	}
	resp.Header = hdr
	return h, frame(&h, hdr, method, resp)
}

// cutLine splits s after its first line, returning the line without its
// CRLF or LF. A blank line comes back as "".
func cutLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	if i < 0 {
		return s, ""
	}
	line, rest = s[:i], s[i+1:]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, rest
}

func parseStatusLine(line string, resp *http.Response) error {
	// HTTP-version SP status-code SP [reason-phrase]
	if len(line) < 12 || line[8] != ' ' || !strings.HasPrefix(line, "HTTP/1.") {
		return malformed("bad status line")
	}
	switch line[7] {
	case '1':
		resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.1", 1, 1
	case '0':
		resp.Proto, resp.ProtoMajor, resp.ProtoMinor = "HTTP/1.0", 1, 0
	default:
		return malformed("unsupported HTTP version")
	}
	code := 0
	for _, c := range []byte(line[9:12]) {
		if c < '0' || c > '9' {
			return malformed("bad status code")
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 || (len(line) > 12 && line[12] != ' ') {
		return malformed("bad status code")
	}
	for i := 12; i < len(line); i++ {
		if c := line[i]; c < ' ' && c != '\t' || c == 0x7f {
			return malformed("control character in reason phrase")
		}
	}
	resp.StatusCode = code
	resp.Status = line[9:]
	return nil
}

// parseField splits one header line into its canonical name and its value
// without surrounding whitespace. Folded lines (obs-fold), names with
// whitespace or non-token bytes, and control bytes in values are errors, as
// in net/textproto.
func parseField(line string) (string, string, error) {
	if line[0] == ' ' || line[0] == '\t' {
		return "", "", malformed("folded header line")
	}
	i := strings.IndexByte(line, ':')
	if i <= 0 {
		return "", "", malformed("header line without a name")
	}
	k, err := canonicalKey(line[:i])
	if err != nil {
		return "", "", err
	}
	v := line[i+1:]
	for len(v) > 0 && (v[0] == ' ' || v[0] == '\t') {
		v = v[1:]
	}
	for len(v) > 0 && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
		v = v[:len(v)-1]
	}
	for j := 0; j < len(v); j++ {
		if c := v[j]; c < ' ' && c != '\t' || c == 0x7f {
			return "", "", malformed("control character in header value")
		}
	}
	return k, v, nil
}

// canonicalKey returns name in canonical form (Content-Type): name itself
// when already canonical, an interned string for common names, else a copy.
func canonicalKey(name string) (string, error) {
	canonical := true
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isTokenByte(c) {
			return "", malformed("invalid header name")
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
		}
		upper = c == '-'
	}
	if canonical {
		return name, nil
	}
	var stack [64]byte
	var b []byte
	if len(name) <= len(stack) {
		b = stack[:len(name)]
	} else {
		b = make([]byte, len(name))
	}
	upper = true
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case upper && 'a' <= c && c <= 'z':
			c -= 'a' - 'A'
		case !upper && 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if k, ok := commonHeader[string(b)]; ok { // no allocation for the lookup
		return k, nil
	}
	return string(b), nil
}

func isTokenByte(c byte) bool { return httpwire.IsTokenByte(c) }

// commonHeader interns the names upstreams commonly send in lower case, so
// canonicalizing them allocates nothing.
var commonHeader = func() map[string]string {
	names := []string{
		"Accept-Ranges", "Access-Control-Allow-Credentials", "Access-Control-Allow-Headers",
		"Access-Control-Allow-Methods", "Access-Control-Allow-Origin", "Access-Control-Expose-Headers",
		"Access-Control-Max-Age", "Age", "Alt-Svc", "Cache-Control", "Connection",
		"Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
		"Content-Location", "Content-Range", "Content-Security-Policy", "Content-Type", "Date",
		"Etag", "Expires", "Grpc-Message", "Grpc-Status", "Keep-Alive", "Last-Modified", "Link",
		"Location", "Pragma", "Proxy-Authenticate", "Referrer-Policy", "Retry-After", "Server",
		"Set-Cookie", "Strict-Transport-Security", "Trailer", "Transfer-Encoding", "Upgrade",
		"Vary", "Via", "Www-Authenticate", "X-Content-Type-Options", "X-Frame-Options",
		"X-Powered-By", "X-Request-Id", "X-Xss-Protection",
	}
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = n
	}
	return m
}()

// frame applies RFC 9112 §6.3 to decide the body's length, and §9.3 to
// decide whether the connection persists. Conflicting or invalid framing
// is an error: a proxy that guessed could desynchronize the connection.
func frame(h *head, hdr http.Header, method string, resp *http.Response) error {
	code := resp.StatusCode
	h.keepAlive = resp.ProtoMinor == 1
	for _, v := range hdr["Connection"] {
		switch {
		case hasToken(v, "close"):
			h.keepAlive = false
		case resp.ProtoMinor == 0 && hasToken(v, "keep-alive"):
			h.keepAlive = true
		}
	}
	te, hasTE := hdr["Transfer-Encoding"]
	if hasTE && resp.ProtoMinor == 0 {
		// HTTP/1.0 has no transfer codings; like net/http, ignore it and
		// read to close.
		delete(hdr, "Transfer-Encoding")
		hasTE = false
		h.keepAlive = false
	}
	if hasTE {
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return malformed("unsupported Transfer-Encoding")
		}
		if _, ok := hdr["Content-Length"]; ok {
			return malformed("both Content-Length and Transfer-Encoding")
		}
	}
	cl, hasCL, err := contentLength(hdr["Content-Length"])
	if err != nil {
		return err
	}

	switch {
	case code < 200 || code == http.StatusNoContent || code == http.StatusNotModified:
		h.noBody, h.length = true, 0
	case method == http.MethodHead:
		h.noBody, h.length = true, -1
		if hasCL {
			h.length = cl // what a GET would have returned
		}
	case hasTE:
		h.chunked, h.length = true, -1
	case hasCL:
		h.length = cl
	default:
		h.length = -1 // delimited by close
		h.keepAlive = false
	}
	resp.ContentLength = h.length
	if hasTE {
		delete(hdr, "Transfer-Encoding") // as net/http: it moves to the field
		if h.chunked {
			resp.TransferEncoding = []string{"chunked"}
		}
	}
	if h.chunked {
		announceTrailers(hdr, resp)
	}
	return nil
}

// contentLength validates Content-Length values: digits only, and several
// values only when all agree.
func contentLength(vv []string) (int64, bool, error) {
	if len(vv) == 0 {
		return 0, false, nil
	}
	var n int64 = -1
	for _, v := range vv {
		if v == "" || len(v) > 18 {
			return 0, false, malformed("bad Content-Length")
		}
		var x int64
		for i := 0; i < len(v); i++ {
			c := v[i]
			if c < '0' || c > '9' {
				return 0, false, malformed("bad Content-Length")
			}
			x = x*10 + int64(c-'0')
		}
		if n >= 0 && x != n {
			return 0, false, malformed("conflicting Content-Length values")
		}
		n = x
	}
	return n, true, nil
}

// announceTrailers moves the Trailer header's names into resp.Trailer with
// nil values, as net/http does, so callers can announce them downstream
// before the body; the values arrive after the last chunk.
func announceTrailers(hdr http.Header, resp *http.Response) {
	vv, ok := hdr["Trailer"]
	if !ok {
		return
	}
	delete(hdr, "Trailer")
	for _, v := range vv {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			name = strings.TrimSpace(name)
			k, err := canonicalKey(name)
			if name == "" || err != nil {
				continue
			}
			switch k {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				continue // forbidden as trailers (RFC 9110 §6.5.1)
			}
			if resp.Trailer == nil {
				resp.Trailer = make(http.Header, 2)
			}
			resp.Trailer[k] = nil
		}
	}
}

// hasToken reports whether a comma-separated header value holds token,
// ignoring case.
func hasToken(v, token string) bool {
	for v != "" {
		var t string
		t, v, _ = strings.Cut(v, ",")
		if strings.EqualFold(strings.TrimSpace(t), token) {
			return true
		}
	}
	return false
}
