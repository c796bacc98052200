package telemetry

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// Format is a compiled Envoy access-log format (SubstitutionFormatString):
// a text format string, or a json_format object whose values are format
// strings. It is immutable and safe for concurrent use.
type Format struct {
	text      []segment   // text format; nil for JSON
	json      []jsonField // json_format, keys sorted as Envoy sorts them
	isJSON    bool
	omitEmpty bool
}

// JSONField is one key of a json_format and its format string.
type JSONField struct {
	Key    string
	Format string
}

type jsonField struct {
	key  string // already quoted, with the trailing colon
	segs []segment
	// typed: the value is exactly one command, rendered as a JSON number
	// when it is numeric (Envoy's typed json_format values).
	typed bool
}

// segment is a literal or one command operator.
type segment struct {
	lit string
	op  *operator
}

type opKind int

const (
	opStartTime opKind = iota + 1
	opReq
	opResp
	opTrailer
	opResponseCode
	opResponseFlags
	opDuration
	opBytesReceived
	opBytesSent
	opProtocol
	opUpstreamHost
	opUpstreamCluster
	opRemoteAddr
	opRemoteAddrNoPort
	opRouteName
	opHostname
	opGRPCStatus
	opAttempts
	opTraceID
)

// commands maps Envoy's command operator names to ours; numeric marks the
// ones a typed json_format value renders as a number.
var commands = map[string]struct {
	kind    opKind
	numeric bool
}{
	"START_TIME":                             {opStartTime, false},
	"REQ":                                    {opReq, false},
	"RESP":                                   {opResp, false},
	"TRAILER":                                {opTrailer, false},
	"RESPONSE_CODE":                          {opResponseCode, true},
	"RESPONSE_FLAGS":                         {opResponseFlags, false},
	"DURATION":                               {opDuration, true},
	"BYTES_RECEIVED":                         {opBytesReceived, true},
	"BYTES_SENT":                             {opBytesSent, true},
	"PROTOCOL":                               {opProtocol, false},
	"UPSTREAM_HOST":                          {opUpstreamHost, false},
	"UPSTREAM_CLUSTER":                       {opUpstreamCluster, false},
	"DOWNSTREAM_REMOTE_ADDRESS":              {opRemoteAddr, false},
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": {opRemoteAddrNoPort, false},
	"ROUTE_NAME":                             {opRouteName, false},
	"HOSTNAME":                               {opHostname, false},
	"GRPC_STATUS":                            {opGRPCStatus, false},
	"UPSTREAM_REQUEST_ATTEMPT_COUNT":         {opAttempts, true},
	"TRACE_ID":                               {opTraceID, false},
}

// SupportedCommands lists the command operators CompileText and
// CompileJSON accept, sorted.
func SupportedCommands() []string {
	out := make([]string, 0, len(commands))
	for k := range commands {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

type operator struct {
	kind    opKind
	numeric bool
	// REQ/RESP/TRAILER: the canonical header key and its fallback;
	// pseudo is the request pseudo-header (":path", ...) if key is one.
	key, alt        string
	pseudo, pseudo2 string
	max             int // :N, 0 for no limit
	timeFmt         []timePart
	value           string // HOSTNAME, resolved once
}

// ErrBadFormat is wrapped by the compilers' errors.
var ErrBadFormat = errors.New("bad access log format")

// hostname is looked up once, for HOSTNAME.
var hostname = sync.OnceValue(func() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
})

// CompileText compiles an Envoy text format string. With omitEmpty a
// missing value prints nothing instead of "-". No newline is added: as in
// Envoy, a format that wants one ends with "\n".
func CompileText(s string, omitEmpty bool) (*Format, error) {
	segs, err := parseFormat(s)
	if err != nil {
		return nil, err
	}
	return &Format{text: segs, omitEmpty: omitEmpty}, nil
}

// CompileJSON compiles a json_format: one JSON object per line with these
// keys (sorted, as Envoy sorts them), each value the rendering of its
// format string. A value that is exactly one numeric command
// (RESPONSE_CODE, DURATION, BYTES_RECEIVED, BYTES_SENT,
// UPSTREAM_REQUEST_ATTEMPT_COUNT) is a JSON number; a missing value is
// null, or the key is left out with omitEmpty.
func CompileJSON(fields []JSONField, omitEmpty bool) (*Format, error) {
	f := &Format{isJSON: true, omitEmpty: omitEmpty}
	sorted := slices.Clone(fields)
	slices.SortFunc(sorted, func(a, b JSONField) int { return strings.Compare(a.Key, b.Key) })
	for i, fl := range sorted {
		if i > 0 && sorted[i-1].Key == fl.Key {
			return nil, fmt.Errorf("%w: key %q twice", ErrBadFormat, fl.Key)
		}
		segs, err := parseFormat(fl.Format)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", fl.Key, err)
		}
		jf := jsonField{segs: segs, typed: len(segs) == 1 && segs[0].op != nil}
		jf.key = string(appendJSONString(nil, fl.Key)) + ":"
		f.json = append(f.json, jf)
	}
	return f, nil
}

// parseFormat splits s into literals and command operators:
// %COMMAND%, %COMMAND(arg)%, %COMMAND(arg):N% and %% for a percent sign.
func parseFormat(s string) ([]segment, error) {
	var segs []segment
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			segs = append(segs, segment{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			lit.WriteByte(c)
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			lit.WriteByte('%')
			i += 2
			continue
		}
		op, n, err := parseCommand(s[i+1:])
		if err != nil {
			return nil, err
		}
		flush()
		segs = append(segs, segment{op: op})
		i += 1 + n
	}
	flush()
	return segs, nil
}

// parseCommand parses one operator after its opening '%' and returns how
// many bytes it used, the closing '%' included.
func parseCommand(s string) (*operator, int, error) {
	i := 0
	for i < len(s) && (s[i] >= 'A' && s[i] <= 'Z' || s[i] >= '0' && s[i] <= '9' || s[i] == '_') {
		i++
	}
	name := s[:i]
	if name == "" {
		return nil, 0, fmt.Errorf("%w: a %% not followed by a command (write %%%% for a percent sign)", ErrBadFormat)
	}
	var arg string
	hasArg := false
	if i < len(s) && s[i] == '(' {
		end := strings.IndexByte(s[i:], ')')
		if end < 0 {
			return nil, 0, fmt.Errorf("%w: %%%s: unterminated argument", ErrBadFormat, name)
		}
		arg, hasArg = s[i+1:i+end], true
		i += end + 1
	}
	maxLen := 0
	if i < len(s) && s[i] == ':' {
		j := i + 1
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(s[i+1 : j])
		if err != nil || n <= 0 {
			return nil, 0, fmt.Errorf("%w: %%%s: bad max length %q", ErrBadFormat, name, s[i+1:j])
		}
		maxLen, i = n, j
	}
	if i >= len(s) || s[i] != '%' {
		return nil, 0, fmt.Errorf("%w: %%%s: missing closing %%", ErrBadFormat, name)
	}
	cmd, ok := commands[name]
	if !ok {
		return nil, 0, fmt.Errorf("%w: command %%%s%% is not supported (supported: %s)", ErrBadFormat, name, strings.Join(SupportedCommands(), ", "))
	}
	op := &operator{kind: cmd.kind, numeric: cmd.numeric, max: maxLen}
	switch cmd.kind {
	case opReq, opResp, opTrailer:
		if !hasArg || arg == "" {
			return nil, 0, fmt.Errorf("%w: %%%s%% needs a header name: %%%s(name)%%", ErrBadFormat, name, name)
		}
		k, alt, _ := strings.Cut(arg, "?")
		if k == "" || strings.Contains(alt, "?") || strings.Contains(arg, "?") && alt == "" {
			return nil, 0, fmt.Errorf("%w: %%%s(%s)%%: want name or name?alternative", ErrBadFormat, name, arg)
		}
		var err error
		if op.key, op.pseudo, err = headerKey(cmd.kind, name, k); err != nil {
			return nil, 0, err
		}
		if alt != "" {
			if op.alt, op.pseudo2, err = headerKey(cmd.kind, name, alt); err != nil {
				return nil, 0, err
			}
		}
	case opStartTime:
		if hasArg && arg != "" {
			tf, err := parseTimeFormat(arg)
			if err != nil {
				return nil, 0, err
			}
			op.timeFmt = tf
		}
	default:
		if hasArg {
			return nil, 0, fmt.Errorf("%w: %%%s%% takes no argument", ErrBadFormat, name)
		}
	}
	if cmd.kind == opHostname {
		op.value = hostname()
	}
	return op, i + 1, nil
}

// requestPseudo are the request pseudo-headers REQ() can read.
var requestPseudo = []string{":method", ":path", ":authority"}

func headerKey(kind opKind, cmd, h string) (key, pseudo string, err error) {
	h = strings.ToLower(h)
	if strings.HasPrefix(h, ":") {
		if kind == opReq && slices.Contains(requestPseudo, h) {
			return "", h, nil
		}
		if kind == opResp && h == ":status" {
			return "", h, nil
		}
		return "", "", fmt.Errorf("%w: %%%s(%s)%%: pseudo-header %s is not supported (REQ: %s; RESP: :status)", ErrBadFormat, cmd, h, h, strings.Join(requestPseudo, ", "))
	}
	if h == "host" && kind == opReq {
		return "", ":authority", nil
	}
	return http.CanonicalHeaderKey(h), "", nil
}

// Append appends e's line to b: for JSON, one object and a newline; for
// text, the format as it is. It does not allocate once b has room.
func (f *Format) Append(b []byte, e *Entry) []byte {
	if !f.isJSON {
		for i := range f.text {
			b = f.appendSeg(b, &f.text[i], e)
		}
		return b
	}
	b = append(b, '{')
	first := true
	for i := range f.json {
		jf := &f.json[i]
		mark := len(b)
		if !first {
			b = append(b, ',')
		}
		b = append(b, jf.key...)
		if jf.typed {
			op := jf.segs[0].op
			if op.numeric && op.max == 0 {
				n, _ := numericValue(op, e)
				b = strconv.AppendInt(b, n, 10)
				first = false
				continue
			}
			start := len(b)
			v, ok := f.value(b, op, e)
			if !ok {
				if f.omitEmpty {
					b = b[:mark]
					continue
				}
				b = append(b, "null"...)
				first = false
				continue
			}
			if op.max > 0 && len(v)-start > op.max {
				v = v[:start+op.max]
			}
			b = appendQuotedInPlace(v[:start], v[start:])
			first = false
			continue
		}
		// A mixed value: render the text past the key, then quote it into place.
		start := len(b)
		for k := range jf.segs {
			b = f.appendSeg(b, &jf.segs[k], e)
		}
		b = appendQuotedInPlace(b[:start], b[start:])
		first = false
	}
	return append(b, '}', '\n')
}

// appendQuotedInPlace writes raw (which aliases dst's spare capacity) as a
// JSON string at the end of dst. raw is copied first when quoting could
// overwrite it.
func appendQuotedInPlace(dst, raw []byte) []byte {
	var tmp [256]byte
	if len(raw) == 0 {
		return append(dst, '"', '"')
	}
	var src []byte
	if len(raw) <= len(tmp) {
		src = tmp[:copy(tmp[:], raw)]
	} else {
		src = slices.Clone(raw)
	}
	return appendJSONString(dst, unsafe.String(unsafe.SliceData(src), len(src)))
}

// appendSeg appends one segment; a missing value is "-", or nothing with
// omitEmpty.
func (f *Format) appendSeg(b []byte, s *segment, e *Entry) []byte {
	if s.op == nil {
		return append(b, s.lit...)
	}
	start := len(b)
	v, ok := f.value(b, s.op, e)
	if !ok {
		if f.omitEmpty {
			return b
		}
		return append(b, '-')
	}
	b = v
	if s.op.max > 0 && len(b)-start > s.op.max {
		b = b[:start+s.op.max]
	}
	return b
}

// numericValue is the value of a numeric command as an integer.
func numericValue(op *operator, e *Entry) (int64, bool) {
	switch op.kind {
	case opResponseCode:
		return int64(e.Status), true
	case opDuration:
		return e.Duration.Milliseconds(), true
	case opBytesReceived:
		return e.BytesReceived, true
	case opBytesSent:
		return e.BytesSent, true
	case opAttempts:
		return int64(e.Attempts), true
	}
	return 0, false
}

// value appends op's value to b; ok is false when there is none (Envoy's
// "-"), in which case b is returned unchanged.
func (f *Format) value(b []byte, op *operator, e *Entry) ([]byte, bool) {
	if n, ok := numericValue(op, e); ok {
		return strconv.AppendInt(b, n, 10), true
	}
	var s string
	switch op.kind {
	case opStartTime:
		if e.Start.IsZero() {
			return b, false
		}
		if op.timeFmt == nil {
			return e.Start.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z"), true
		}
		return appendTime(b, e.Start, op.timeFmt), true
	case opReq:
		s = reqHeader(e, op.key, op.pseudo)
		if s == "" && (op.alt != "" || op.pseudo2 != "") {
			s = reqHeader(e, op.alt, op.pseudo2)
		}
	case opResp:
		if op.pseudo == ":status" {
			if e.Status == 0 {
				return b, false
			}
			return strconv.AppendInt(b, int64(e.Status), 10), true
		}
		s = respHeader(e, op.key, op.pseudo)
		if s == "" && (op.alt != "" || op.pseudo2 != "") {
			s = respHeader(e, op.alt, op.pseudo2)
		}
	case opTrailer:
		s = trailer(e, op.key)
		if s == "" && op.alt != "" {
			s = trailer(e, op.alt)
		}
	case opResponseFlags:
		s = e.ResponseFlags
	case opProtocol:
		s = envoyProtocol(e.Protocol)
	case opUpstreamHost:
		s = e.UpstreamHost
	case opUpstreamCluster:
		s = e.UpstreamCluster
	case opRemoteAddr:
		s = e.ClientAddress
	case opRemoteAddrNoPort:
		s = stripPort(e.ClientAddress)
	case opRouteName:
		s = e.Route
	case opHostname:
		s = op.value
	case opGRPCStatus:
		s = grpcStatusName(e.GRPCStatus)
	case opTraceID:
		s = e.TraceID
	}
	if s == "" {
		return b, false
	}
	return append(b, s...), true
}

func reqHeader(e *Entry, key, pseudo string) string {
	switch pseudo {
	case ":method":
		return e.Method
	case ":path":
		return e.Path
	case ":authority":
		return e.Authority
	}
	if v := e.RequestHeaders[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func respHeader(e *Entry, key, pseudo string) string {
	if pseudo == ":status" {
		// Only as the alternative of RESP(x?:status).
		if e.Status == 0 {
			return ""
		}
		return strconv.Itoa(e.Status)
	}
	if v := e.ResponseHeaders[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// trailer reads a response trailer: the forwarder stores trailers in the
// response header map, under http.TrailerPrefix or, when announced in a
// Trailer header, under their own name.
func trailer(e *Entry, key string) string {
	h := e.ResponseHeaders
	if h == nil {
		return ""
	}
	if v := h[http.TrailerPrefix+key]; len(v) > 0 {
		return v[0]
	}
	for _, ann := range h["Trailer"] {
		for part := range strings.SplitSeq(ann, ",") {
			if strings.EqualFold(strings.TrimSpace(part), key) {
				if v := h[key]; len(v) > 0 {
					return v[0]
				}
			}
		}
	}
	return ""
}

// stripPort drops the port from host:port (and the brackets of an IPv6
// literal); a bare host is returned as it is.
func stripPort(a string) string {
	if a == "" {
		return ""
	}
	if h, _, err := net.SplitHostPort(a); err == nil {
		return h
	}
	return a
}

// grpcNames are gRPC's status code names, which Envoy's GRPC_STATUS prints.
var grpcNames = [...]string{
	"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition",
	"Aborted", "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss",
	"Unauthenticated",
}

func grpcStatusName(s string) string {
	if s == "" {
		return ""
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n < len(grpcNames) {
		return grpcNames[n]
	}
	return s
}

// envoyProtocol spells Go's request protocols as Envoy does.
func envoyProtocol(p string) string {
	switch p {
	case "HTTP/2.0":
		return "HTTP/2"
	case "HTTP/3.0":
		return "HTTP/3"
	}
	return p
}
