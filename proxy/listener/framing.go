package listener

import (
	"bytes"
	"math"
	"sync/atomic"

	"github.com/outrigger-mesh/outrigger/proxy/httpwire"
)

// rejectReason says why a request on an HTTP/1.1 connection is refused
// before it reaches the chain's handler.
type rejectReason uint32

const (
	rejectNone rejectReason = iota
	// rejectConflictingFraming: both Content-Length and Transfer-Encoding.
	rejectConflictingFraming
	// rejectBadTransferEncoding: a Transfer-Encoding other than exactly one
	// "chunked", or one on an HTTP/1.0 request.
	rejectBadTransferEncoding
	// rejectBadContentLength: duplicated or unparsable Content-Length.
	rejectBadContentLength
	// rejectMalformed: anything else that makes the message boundaries
	// ambiguous (obs-fold, bad chunk lines, bad request line, ...).
	rejectMalformed
	// rejectHeadersTooLarge: the header block is over the configured limit.
	rejectHeadersTooLarge
)

func (r rejectReason) String() string {
	switch r {
	case rejectNone:
		return "none"
	case rejectConflictingFraming:
		return "both Content-Length and Transfer-Encoding"
	case rejectBadTransferEncoding:
		return "unsupported Transfer-Encoding"
	case rejectBadContentLength:
		return "invalid or duplicated Content-Length"
	case rejectMalformed:
		return "malformed message framing"
	case rejectHeadersTooLarge:
		return "request headers too large"
	}
	return "unknown"
}

type scanState uint8

const (
	stHead        scanState = iota // reading a request line and header block
	stBody                         // skipping a Content-Length body
	stChunkSize                    // reading a chunk-size line
	stChunkData                    // skipping chunk data
	stChunkCR                      // expecting the CR after chunk data
	stChunkLF                      // expecting the LF after chunk data
	stTrailer                      // reading trailer lines
	stPrefaceTail                  // after "PRI * HTTP/2.0\r\n\r\n", expecting "SM\r\n\r\n"
	stPassThrough                  // h2c, upgraded, or already condemned: stop looking
)

const (
	// maxChunkLine mirrors net/http's chunk-size line limit (its bufio size).
	maxChunkLine = 4096
	// maxTrailerBytes mirrors net/http's trailer limit (one bufio buffer).
	maxTrailerBytes = 4096
	// noReject is rejectAt's value while every request so far is clean.
	noReject = math.MaxInt64
)

var h2PrefaceTail = []byte("SM\r\n\r\n")

// framingScanner follows HTTP/1.1 request framing over the inbound byte
// stream of one connection, exactly as net/http's server will parse it, and
// records the index of the first request whose framing is ambiguous or
// refused. Every request from that index on is refused: once the framing is
// in doubt, nothing later on the connection can be trusted.
//
// scan is called only by the goroutine reading the connection (net/http
// reads a connection from one goroutine at a time); the verdict is read by
// handlers through atomics.
type framingScanner struct {
	state scanState
	// line holds a partial line split across reads; reused, so the steady
	// state allocates nothing.
	line []byte

	maxHead   int // exact header block limit; 0 = none
	headBytes int // header block bytes so far for the current request
	allowH2C  bool

	remain       uint64 // bytes left in the Content-Length body or chunk
	trailerBytes int

	// Facts of the request whose header block is being read.
	lineNo    int
	http10    bool
	isPRI     bool
	skipIndex bool // OPTIONS *: net/http answers it without our handler
	nCL, nTE  int
	cl        uint64
	teChunked bool

	next int64 // index the next counted request gets

	// onMessageEnd, when set (tests), is called with the stream offset at
	// which each request message ends.
	onMessageEnd func(offset int64)
	offset       int64

	rejectAt atomic.Int64
	reason   atomic.Uint32
}

func newFramingScanner(maxHead int, allowH2C bool) *framingScanner {
	s := &framingScanner{maxHead: maxHead, allowH2C: allowH2C}
	s.rejectAt.Store(noReject)
	return s
}

// verdict reports why request idx on this connection must be refused, or
// rejectNone.
func (s *framingScanner) verdict(idx int64) rejectReason {
	if idx < s.rejectAt.Load() {
		return rejectNone
	}
	return rejectReason(s.reason.Load())
}

// inHeader reports whether the scanner is part-way through a header block
// (or waiting for the first one), for counting header timeouts.
func (s *framingScanner) inHeader() bool {
	return s.state == stHead && (s.headBytes > 0 || s.next == 0)
}

func (s *framingScanner) passThrough() bool { return s.state == stPassThrough }

func (s *framingScanner) reject(r rejectReason) {
	s.reason.Store(uint32(r))
	s.rejectAt.Store(s.next)
	s.state = stPassThrough
	s.line = s.line[:0]
}

// scan consumes bytes just read from the connection.
func (s *framingScanner) scan(p []byte) {
	for len(p) > 0 {
		switch s.state {
		case stPassThrough:
			return
		case stBody, stChunkData:
			n := uint64(len(p))
			if n > s.remain {
				n = s.remain
			}
			s.remain -= n
			s.offset += int64(n)
			p = p[n:]
			if s.remain == 0 {
				if s.state == stBody {
					s.endMessage()
				} else {
					s.state = stChunkCR
				}
			}
		case stChunkCR, stChunkLF:
			want := byte('\r')
			if s.state == stChunkLF {
				want = '\n'
			}
			if p[0] != want {
				s.reject(rejectMalformed)
				return
			}
			p = p[1:]
			s.offset++
			if s.state == stChunkCR {
				s.state = stChunkLF
			} else {
				s.state = stChunkSize
			}
		case stPrefaceTail:
			n := min(len(p), len(h2PrefaceTail)-len(s.line))
			s.line = append(s.line, p[:n]...)
			p = p[n:]
			s.offset += int64(n)
			if !bytes.HasPrefix(h2PrefaceTail, s.line) {
				s.reject(rejectMalformed)
				return
			}
			if len(s.line) == len(h2PrefaceTail) {
				// h2c prior knowledge: HTTP/2 frames from here on.
				s.line = s.line[:0]
				s.state = stPassThrough
				return
			}
		default: // line-oriented states: stHead, stChunkSize, stTrailer
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				if !s.growLine(len(p)) {
					return
				}
				s.line = append(s.line, p...)
				s.offset += int64(len(p))
				return
			}
			if !s.growLine(i + 1) {
				return
			}
			line := p[:i+1]
			if len(s.line) > 0 {
				s.line = append(s.line, line...)
				line = s.line
			}
			p = p[i+1:]
			s.offset += int64(i + 1)
			s.onLine(line)
			s.line = s.line[:0]
		}
	}
}

// growLine accounts n more bytes of the current line against the limits of
// the state and reports whether scanning goes on.
func (s *framingScanner) growLine(n int) bool {
	switch s.state {
	case stHead:
		s.headBytes += n
		if s.maxHead > 0 && s.headBytes > s.maxHead {
			s.reject(rejectHeadersTooLarge)
			return false
		}
	case stChunkSize:
		if len(s.line)+n > maxChunkLine+2 {
			s.reject(rejectMalformed)
			return false
		}
	case stTrailer:
		s.trailerBytes += n
		if s.trailerBytes > maxTrailerBytes {
			s.reject(rejectMalformed)
			return false
		}
	}
	return true
}

// onLine handles one complete line, including its LF.
func (s *framingScanner) onLine(line []byte) {
	switch s.state {
	case stHead:
		s.onHeadLine(trimEOL(line))
	case stChunkSize:
		s.onChunkSizeLine(line)
	case stTrailer:
		// Like net/http's chunk lines, trailers must end in CRLF: a bare LF
		// here is where parsers disagree, so refuse it.
		if len(line) < 2 || line[len(line)-2] != '\r' {
			s.reject(rejectMalformed)
			return
		}
		l := line[:len(line)-2]
		if len(l) == 0 {
			s.endMessage()
			return
		}
		if l[0] == ' ' || l[0] == '\t' || bytes.IndexByte(l, ':') <= 0 {
			s.reject(rejectMalformed)
		}
	}
}

// trimEOL drops "\n" or "\r\n", as bufio.Reader.ReadLine does.
func trimEOL(line []byte) []byte {
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}

func (s *framingScanner) onHeadLine(l []byte) {
	if s.lineNo == 0 {
		s.lineNo++
		s.onRequestLine(l)
		return
	}
	s.lineNo++
	if len(l) == 0 {
		s.endHead()
		return
	}
	if l[0] == ' ' || l[0] == '\t' {
		// obs-fold: net/http joins it to the previous value, so a folded
		// Transfer-Encoding could change the framing. Envoy refuses it too.
		s.reject(rejectMalformed)
		return
	}
	colon := bytes.IndexByte(l, ':')
	if colon <= 0 {
		return // net/http refuses the request itself
	}
	key, val := l[:colon], trimOWS(l[colon+1:])
	switch {
	case asciiEqualFold(key, "content-length"):
		s.nCL++
		if s.nCL > 1 {
			s.reject(rejectBadContentLength)
			return
		}
		n, ok := parseDecimal(val)
		if !ok {
			s.reject(rejectBadContentLength)
			return
		}
		s.cl = n
	case asciiEqualFold(key, "transfer-encoding"):
		s.nTE++
		if s.nTE > 1 || !asciiEqualFold(val, "chunked") {
			s.reject(rejectBadTransferEncoding)
			return
		}
		s.teChunked = true
	}
}

func (s *framingScanner) onRequestLine(l []byte) {
	method, rest, ok1 := bytes.Cut(l, []byte{' '})
	target, proto, ok2 := bytes.Cut(rest, []byte{' '})
	if !ok1 || !ok2 || len(method) == 0 {
		s.reject(rejectMalformed)
		return
	}
	major, minor, ok := parseHTTPVersion(proto)
	if !ok {
		s.reject(rejectMalformed)
		return
	}
	if string(method) == "PRI" && string(target) == "*" && major == 2 && minor == 0 {
		if s.allowH2C && s.next == 0 && s.offset == int64(len(l))+2 {
			s.isPRI = true
			return
		}
		s.reject(rejectMalformed)
		return
	}
	if major != 1 {
		s.reject(rejectMalformed) // net/http answers 505 and closes
		return
	}
	s.http10 = minor == 0
	s.skipIndex = string(method) == "OPTIONS" && string(target) == "*"
}

func (s *framingScanner) endHead() {
	switch {
	case s.isPRI:
		if s.lineNo != 2 {
			s.reject(rejectMalformed)
			return
		}
		s.state = stPrefaceTail
		s.line = s.line[:0]
		return
	case s.nTE > 0 && s.nCL > 0:
		s.reject(rejectConflictingFraming)
		return
	case s.nTE > 0 && s.http10:
		// net/http ignores Transfer-Encoding on HTTP/1.0; others do not.
		s.reject(rejectBadTransferEncoding)
		return
	}
	chunked, cl := s.teChunked, s.cl
	s.resetRequest()
	switch {
	case chunked:
		s.state = stChunkSize
	case cl > 0:
		s.state = stBody
		s.remain = cl
	default:
		s.endMessage()
	}
}

func (s *framingScanner) onChunkSizeLine(line []byte) {
	// net/http: CRLF only, no other CR, extensions after ';' ignored, then
	// 1-16 hex digits with optional trailing whitespace.
	if len(line) < 2 || line[len(line)-2] != '\r' || bytes.IndexByte(line[:len(line)-2], '\r') >= 0 {
		s.reject(rejectMalformed)
		return
	}
	l := line[:len(line)-2]
	if len(l) >= maxChunkLine {
		s.reject(rejectMalformed)
		return
	}
	l = trimTrailingOWS(l)
	l, _, _ = bytes.Cut(l, []byte{';'})
	n, ok := httpwire.ParseChunkSize(l)
	if !ok {
		s.reject(rejectMalformed)
		return
	}
	if n == 0 {
		s.state = stTrailer
		s.trailerBytes = 0
		return
	}
	s.remain = uint64(n)
	s.state = stChunkData
}

// endMessage marks the end of one request message; the next byte starts
// a new request.
func (s *framingScanner) endMessage() {
	if s.onMessageEnd != nil {
		s.onMessageEnd(s.offset)
	}
	s.state = stHead
}

// resetRequest clears the per-request facts once the header block is done
// and counts the request.
func (s *framingScanner) resetRequest() {
	if !s.skipIndex {
		s.next++
	}
	s.headBytes = 0
	s.lineNo = 0
	s.http10, s.isPRI, s.skipIndex, s.teChunked = false, false, false, false
	s.nCL, s.nTE = 0, 0
	s.cl = 0
}

func parseHTTPVersion(p []byte) (major, minor int, ok bool) {
	if len(p) != len("HTTP/X.Y") || string(p[:5]) != "HTTP/" || p[6] != '.' {
		return 0, 0, false
	}
	if !isDigit(p[5]) || !isDigit(p[7]) {
		return 0, 0, false
	}
	return int(p[5] - '0'), int(p[7] - '0'), true
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// parseDecimal parses a Content-Length value the way net/http does: ASCII
// digits only, fitting in int64.
func parseDecimal(v []byte) (uint64, bool) {
	if len(v) == 0 {
		return 0, false
	}
	var n uint64
	for _, b := range v {
		if !isDigit(b) {
			return 0, false
		}
		if n > (math.MaxInt64-uint64(b-'0'))/10 {
			return 0, false
		}
		n = n*10 + uint64(b-'0')
	}
	return n, true
}

func isOWS(b byte) bool { return b == ' ' || b == '\t' }

func trimOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[0]) {
		b = b[1:]
	}
	return trimTrailingOWS(b)
}

func trimTrailingOWS(b []byte) []byte {
	for len(b) > 0 && isOWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// asciiEqualFold compares b with the lower-case ASCII string s.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
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
