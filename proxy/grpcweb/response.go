package grpcweb

import (
	"encoding/binary"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/outrigger-mesh/outrigger/proxy/forward"
)

// MaxErrorMessage bounds how much of a response that is not gRPC is kept
// to become its grpc-message (Envoy's limit).
const MaxErrorMessage = 16 * 1024

type state uint8

const (
	statePending   state = iota // no final status yet
	stateGRPC                   // a gRPC response: relayed as it streams
	stateTransform              // not gRPC: buffered, becomes an error status
	stateDone
)

// ResponseWriter turns the gRPC response written to it into gRPC-Web on the
// writer it wraps. A gRPC response (HTTP 200 with a gRPC content type, or
// any status with grpc-status in its headers: trailers-only) is relayed as
// it streams, with its content type set to application/grpc-web+proto or
// application/grpc-web-text+proto; its trailers (announced in the Trailer
// header, or set with http.TrailerPrefix) become the trailer frame at
// Finish. Any other response is held back and, at Finish, answered with
// its HTTP status, an empty body, grpc-status mapped from that status and
// grpc-message from its body, as Envoy does.
//
// It implements FlushError and Unwrap for http.ResponseController. Like the
// writer it wraps, it is not safe for concurrent use.
type ResponseWriter struct {
	w      http.ResponseWriter
	text   bool
	state  state
	status int
	err    error    // sticky write error
	trail  []string // the Trailer header at WriteHeader
	msg    []byte   // stateTransform: the body, up to MaxErrorMessage
	enc    encoder  // text mode
}

// Header returns the wrapped writer's header map.
func (w *ResponseWriter) Header() http.Header { return w.w.Header() }

// Unwrap returns the wrapped writer, for http.ResponseController.
func (w *ResponseWriter) Unwrap() http.ResponseWriter { return w.w }

// WriteHeader decides whether the response is gRPC and, if it is, sends
// its headers as gRPC-Web's. Informational statuses pass through.
func (w *ResponseWriter) WriteHeader(code int) {
	if w.state != statePending {
		return
	}
	if code < 200 {
		w.w.WriteHeader(code)
		return
	}
	h := w.w.Header()
	w.status = code
	if !isGRPCResponse(h, code) {
		w.state = stateTransform
		return
	}
	w.state = stateGRPC
	delete(h, "Content-Length")
	w.setContentType(h)
	// The trailers go into the body: the wrapped writer must not send
	// them as HTTP trailers.
	if t, ok := h["Trailer"]; ok {
		w.trail = t
		delete(h, "Trailer")
	}
	w.w.WriteHeader(code)
}

func (w *ResponseWriter) setContentType(h http.Header) {
	if w.text {
		h["Content-Type"] = textProtoType
	} else {
		h["Content-Type"] = protoType
	}
}

// isGRPCResponse is Envoy's test: a trailers-only response (grpc-status in
// the headers), or 200 with a gRPC content type; a gRPC-Web response
// (a backend that speaks gRPC-Web itself) is relayed too.
func isGRPCResponse(h http.Header, code int) bool {
	if len(h["Grpc-Status"]) > 0 {
		return true
	}
	if code != http.StatusOK {
		return false
	}
	ct := h["Content-Type"]
	if len(ct) == 0 {
		return false
	}
	v := ct[0]
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = strings.TrimRight(v[:i], " \t")
	}
	const grpc = "application/grpc"
	if strings.HasPrefix(v, grpc) && (len(v) == len(grpc) || v[len(grpc)] == '+') {
		return true
	}
	return strings.EqualFold(v, ContentType) || strings.EqualFold(v, ContentTypeProto)
}

// Write relays body bytes (base64-encoded in text mode) or, for a response
// that is not gRPC, keeps them for grpc-message. It reports len(p) on
// success whatever the encoding wrote.
func (w *ResponseWriter) Write(p []byte) (int, error) {
	if w.state == statePending {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	switch w.state {
	case stateGRPC:
		if !w.text {
			n, err := w.w.Write(p)
			w.err = err
			return n, err
		}
		if err := w.enc.write(w.w, p); err != nil {
			w.err = err
			return 0, err
		}
		return len(p), nil
	case stateTransform:
		if room := MaxErrorMessage - len(w.msg); room > 0 {
			w.msg = append(w.msg, p[:min(room, len(p))]...)
		}
		return len(p), nil
	}
	return 0, http.ErrBodyNotAllowed
}

// FlushError sends what a gRPC response has written so far (in text mode,
// every whole 3-byte group: each message's encoding is complete once its
// last byte is written). A response that is not gRPC is not flushed: it is
// answered at Finish.
func (w *ResponseWriter) FlushError() error {
	if w.state != stateGRPC {
		return nil
	}
	if w.err != nil {
		return w.err
	}
	return http.NewResponseController(w.w).Flush()
}

// Flush is FlushError without the error, for http.Flusher.
func (w *ResponseWriter) Flush() { _ = w.FlushError() }

// Finish ends the response: a gRPC response's trailers are written as the
// trailer frame (nothing when there are none, as for a trailers-only
// response), a response that is not gRPC is sent now as a gRPC-Web error.
// It returns the grpc-status it set itself ("" when the response carried
// its own) and the error of the last write, if any. Nothing is written
// when no status was ever set (the client left). Call it once, after the
// last Write; not when the stream is being reset.
func (w *ResponseWriter) Finish() (grpcStatus string, err error) {
	switch w.state {
	case stateGRPC:
		w.finishGRPC()
	case stateTransform:
		grpcStatus = w.finishTransform()
	}
	w.state = stateDone
	return grpcStatus, w.err
}

// finishTransform answers a response that was not gRPC.
func (w *ResponseWriter) finishTransform() string {
	h := w.w.Header()
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			delete(h, k)
		}
	}
	delete(h, "Trailer")
	w.setContentType(h)
	code := forward.HTTPToGRPCStatus(w.status)
	h["Grpc-Status"] = grpcStatusValue[code]
	if len(w.msg) > 0 {
		h["Grpc-Message"] = []string{forward.GRPCPercentEncode(string(w.msg))}
	}
	h["Content-Length"] = zeroLength
	w.w.WriteHeader(w.status)
	return grpcStatusValue[code][0]
}

// frameBuf holds trailer frames while they are built.
var frameBuf = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// finishGRPC writes the trailers as the trailer frame: 0x80, the 4-byte
// length, then "name:value\r\n" per value with lower-case names, as Envoy
// writes them (grpc-status and grpc-message first, the rest sorted).
func (w *ResponseWriter) finishGRPC() {
	h := w.w.Header()
	var store [16]string
	keys := store[:0] // header-map keys that hold a trailer
	for _, v := range w.trail {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			k := http.CanonicalHeaderKey(strings.TrimSpace(name))
			if _, ok := h[k]; ok && k != "" && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		if w.text && w.err == nil {
			w.err = w.enc.finish(w.w)
		}
		return
	}
	slices.SortFunc(keys, func(a, b string) int { return trailerOrder(a, b) })

	bp := frameBuf.Get().(*[]byte)
	f := append((*bp)[:0], 0x80, 0, 0, 0, 0)
	for _, k := range keys {
		name := strings.TrimPrefix(k, http.TrailerPrefix)
		for _, v := range h[k] {
			for i := 0; i < len(name); i++ {
				c := name[i]
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				f = append(f, c)
			}
			f = append(f, ':')
			f = append(f, v...)
			f = append(f, '\r', '\n')
		}
		delete(h, k)
	}
	binary.BigEndian.PutUint32(f[1:5], uint32(len(f)-5))
	if w.err == nil {
		if w.text {
			if w.err = w.enc.write(w.w, f); w.err == nil {
				w.err = w.enc.finish(w.w)
			}
		} else {
			_, w.err = w.w.Write(f)
		}
	}
	*bp = f
	frameBuf.Put(bp)
}

// trailerOrder sorts trailer keys: grpc-status, grpc-message, then by name.
func trailerOrder(a, b string) int {
	a, b = strings.TrimPrefix(a, http.TrailerPrefix), strings.TrimPrefix(b, http.TrailerPrefix)
	ra, rb := trailerRank(a), trailerRank(b)
	if ra != rb {
		return ra - rb
	}
	return strings.Compare(a, b)
}

func trailerRank(k string) int {
	switch k {
	case "Grpc-Status":
		return 0
	case "Grpc-Message":
		return 1
	}
	return 2
}

// grpcStatusValue holds the header value of each gRPC status code.
var grpcStatusValue = func() (v [17][]string) {
	for i := range v {
		v[i] = []string{strconv.Itoa(i)}
	}
	return v
}()
