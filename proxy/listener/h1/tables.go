package h1

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/httpwire"
)

// commonKeys interns the canonical names of the headers most requests
// carry, so parsing them allocates nothing.
var commonKeys = func() map[string]string {
	names := []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Accept-Ranges",
		"Authorization", "Cache-Control", "Cdn-Loop", "Connection", "Content-Disposition",
		"Content-Encoding", "Content-Language", "Content-Length", "Content-Type", "Cookie",
		"Date", "Dnt", "Etag", "Expect", "Forwarded", "From", "Grpc-Timeout", "Grpc-Encoding",
		"Grpc-Accept-Encoding", "Host", "If-Match", "If-Modified-Since", "If-None-Match",
		"If-Range", "If-Unmodified-Since", "Keep-Alive", "Last-Modified", "Origin", "Pragma",
		"Priority", "Proxy-Authorization", "Proxy-Connection", "Range", "Referer",
		"Sec-Ch-Ua", "Sec-Ch-Ua-Mobile", "Sec-Ch-Ua-Platform", "Sec-Fetch-Dest",
		"Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User", "Sec-Websocket-Extensions",
		"Sec-Websocket-Key", "Sec-Websocket-Protocol", "Sec-Websocket-Version", "Te",
		"Trailer", "Traceparent", "Tracestate", "Transfer-Encoding", "Upgrade",
		"Upgrade-Insecure-Requests", "User-Agent", "Via", "X-B3-Parentspanid",
		"X-B3-Sampled", "X-B3-Spanid", "X-B3-Traceid", "X-Envoy-Attempt-Count",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip",
		"X-Request-Id", "X-Requested-With",
	}
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = n
	}
	return m
}()

// methods interns the request methods.
var methods = map[string]string{
	"GET": "GET", "HEAD": "HEAD", "POST": "POST", "PUT": "PUT", "DELETE": "DELETE",
	"CONNECT": "CONNECT", "OPTIONS": "OPTIONS", "TRACE": "TRACE", "PATCH": "PATCH", "PRI": "PRI",
}

// pathPlain marks the bytes a path may hold and still be its own escaped
// form for net/url (no '%' and nothing url.PathEscape would change), so
// Path is the raw text and RawPath stays empty.
var pathPlain = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

func isToken(s string) bool { return httpwire.IsToken(s) }

// validFieldValue is RFC 9110 field-value: visible ASCII, SP, HTAB and
// obs-text; no other control byte (so no bare CR).
func validFieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// hasToken reports whether a comma-separated header value holds token,
// case-insensitively.
func hasToken(vs []string, token string) bool {
	for _, v := range vs {
		for v != "" {
			var t string
			i := 0
			for i < len(v) && v[i] != ',' {
				i++
			}
			t, v = v[:i], v[min(i+1, len(v)):]
			if equalFold(trimOWS(t), token) {
				return true
			}
		}
	}
	return false
}

// equalFold compares ASCII case-insensitively; token is lower case.
func equalFold(s, token string) bool {
	if len(s) != len(token) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != token[i] {
			return false
		}
	}
	return true
}

// statusLines holds "HTTP/1.1 NNN Text\r\n" for every code with a text.
var statusLines = func() (t [600][]byte) {
	for code := 100; code < 600; code++ {
		if txt := http.StatusText(code); txt != "" {
			t[code] = []byte("HTTP/1.1 " + strconv.Itoa(code) + " " + txt + "\r\n")
		}
	}
	return t
}()

func appendStatusLine(b []byte, code int, http11 bool) []byte {
	if http11 && code < len(statusLines) && statusLines[code] != nil {
		return append(b, statusLines[code]...)
	}
	if http11 {
		b = append(b, "HTTP/1.1 "...)
	} else {
		b = append(b, "HTTP/1.0 "...)
	}
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	return append(b, "\r\n"...)
}

// dateCache formats the Date header once per second for the whole server.
type dateCache struct {
	v atomic.Pointer[dateLine]
}

type dateLine struct {
	sec  int64
	line []byte // "Date: ...\r\n"
}

func (d *dateCache) get(now time.Time) []byte {
	sec := now.Unix()
	if l := d.v.Load(); l != nil && l.sec == sec {
		return l.line
	}
	b := make([]byte, 0, 40)
	b = append(b, "Date: "...)
	b = now.UTC().AppendFormat(b, http.TimeFormat)
	b = append(b, "\r\n"...)
	d.v.Store(&dateLine{sec: sec, line: b})
	return b
}
