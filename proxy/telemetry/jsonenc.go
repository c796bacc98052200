package telemetry

import (
	"strconv"
	"time"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// jsonSafe[b] is true for ASCII bytes that can be copied into a JSON string
// verbatim. strconv.AppendQuote is not usable: it emits Go escapes such as
// \x00 and \a, which JSON does not have.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\'
	}
	return t
}()

// appendJSONString appends s as a quoted JSON string. Control characters are
// escaped, and invalid UTF-8 becomes U+FFFD (as encoding/json does) so every
// line stays valid JSON whatever a client sent in a header.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but end lines in JavaScript;
		// escaping them keeps a log line safe to embed anywhere.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendJSONStringOrDash writes "-" for an empty value, as Envoy's access log
// does, so every line carries every key with a string value.
func appendJSONStringOrDash(b []byte, s string) []byte {
	if s == "" {
		return append(b, `"-"`...)
	}
	return appendJSONString(b, s)
}

// AppendJSON appends e as one JSON object followed by a newline. Every key is
// always present, in a fixed order; empty strings are written as "-".
func (e *Entry) AppendJSON(b []byte) []byte {
	b = append(b, `{"start_time":`...)
	if e.Start.IsZero() {
		b = append(b, `"-"`...)
	} else {
		b = append(b, '"')
		b = e.Start.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, `,"method":`...)
	b = appendJSONStringOrDash(b, e.Method)
	b = append(b, `,"authority":`...)
	b = appendJSONStringOrDash(b, e.Authority)
	b = append(b, `,"path":`...)
	b = appendJSONStringOrDash(b, e.Path)
	b = append(b, `,"protocol":`...)
	b = appendJSONStringOrDash(b, e.Protocol)
	b = append(b, `,"response_code":`...)
	b = strconv.AppendInt(b, int64(e.Status), 10)
	b = append(b, `,"bytes_received":`...)
	b = strconv.AppendInt(b, e.BytesReceived, 10)
	b = append(b, `,"bytes_sent":`...)
	b = strconv.AppendInt(b, e.BytesSent, 10)
	b = append(b, `,"duration_ms":`...)
	// Microsecond resolution is what a proxy's latency needs; more digits are noise.
	b = strconv.AppendFloat(b, float64(e.Duration)/float64(time.Millisecond), 'f', 3, 64)
	b = append(b, `,"upstream_cluster":`...)
	b = appendJSONStringOrDash(b, e.UpstreamCluster)
	b = append(b, `,"upstream_host":`...)
	b = appendJSONStringOrDash(b, e.UpstreamHost)
	b = append(b, `,"x_request_id":`...)
	b = appendJSONStringOrDash(b, e.RequestID)
	b = append(b, `,"response_flags":`...)
	b = appendJSONStringOrDash(b, e.ResponseFlags)
	b = append(b, `,"downstream_remote_address":`...)
	b = appendJSONStringOrDash(b, e.ClientAddress)
	b = append(b, `,"user_agent":`...)
	b = appendJSONStringOrDash(b, e.UserAgent)
	b = append(b, `,"grpc_status":`...)
	b = appendJSONStringOrDash(b, e.GRPCStatus)
	b = append(b, `,"listener":`...)
	b = appendJSONStringOrDash(b, e.Listener)
	b = append(b, `,"route_name":`...)
	b = appendJSONStringOrDash(b, e.Route)
	if e.TraceID != "" {
		// Only with tracing: the line is unchanged without it.
		b = append(b, `,"trace_id":`...)
		b = appendJSONStringOrDash(b, e.TraceID)
	}
	return append(b, '}', '\n')
}
