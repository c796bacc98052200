// Package grpcweb is Envoy's gRPC-Web filter (envoy.filters.http.grpc_web):
// it turns a browser's gRPC-Web request (application/grpc-web[+proto], or
// its base64 form application/grpc-web-text[+proto]) into the gRPC request
// that is forwarded upstream, and the upstream's gRPC response back into
// gRPC-Web, whose trailers travel in the body as a last length-prefixed
// frame flagged 0x80 (base64 like the rest of the body when the client
// asked for text). Requests of any other content type are not touched.
//
// The protocol is grpc/grpc's doc/PROTOCOL-WEB.md; where it leaves a choice,
// Envoy's filter decides (see docs/grpc-web.md). CORS preflight is not this
// filter's job (in Envoy it is the cors filter's).
package grpcweb

import (
	"net/http"
)

// Content types of gRPC-Web, as Envoy recognizes them: exactly these four,
// with no parameters.
const (
	ContentType          = "application/grpc-web"
	ContentTypeProto     = "application/grpc-web+proto"
	ContentTypeText      = "application/grpc-web-text"
	ContentTypeTextProto = "application/grpc-web-text+proto"
)

// Mode says how one request speaks gRPC-Web; the zero Mode is not gRPC-Web.
type Mode uint8

const (
	// Web marks a gRPC-Web request; its body is binary unless TextRequest.
	Web Mode = 1 << iota
	// TextRequest: the request body is base64 (application/grpc-web-text).
	TextRequest
	// TextResponse: the response body is to be base64. As in Envoy, the
	// Accept header decides (application/grpc-web-text[+proto]), not the
	// request's own content type.
	TextResponse
)

// Detect returns the Mode of a gRPC-Web request and 0 for any other
// request. It costs two header lookups and allocates nothing.
func Detect(r *http.Request) Mode {
	ct := r.Header["Content-Type"]
	if len(ct) == 0 {
		return 0
	}
	var m Mode
	switch ct[0] {
	case ContentType, ContentTypeProto:
		m = Web
	case ContentTypeText, ContentTypeTextProto:
		m = Web | TextRequest
	default:
		return 0
	}
	if a := r.Header["Accept"]; len(a) > 0 && (a[0] == ContentTypeText || a[0] == ContentTypeTextProto) {
		m |= TextResponse
	}
	return m
}

// Shared header values (len == cap, so an append by a later writer
// copies).
var (
	grpcContentType = []string{"application/grpc"}
	teTrailers      = []string{"trailers"}
	identity        = []string{"identity"}
	protoType       = []string{ContentTypeProto}
	textProtoType   = []string{ContentTypeTextProto}
	zeroLength      = []string{"0"}
)

// Begin rewrites r, a request Detect returned m for, into the gRPC request
// to forward (as Envoy's filter does: content-type application/grpc,
// te: trailers, grpc-accept-encoding: identity unless set, no
// content-length, and a base64 body decoded as it streams), and returns
// the writer the response must go through. The caller ends the response
// with Finish unless the stream is reset.
func Begin(w http.ResponseWriter, r *http.Request, m Mode) *ResponseWriter {
	h := r.Header
	h["Content-Type"] = grpcContentType
	h["Te"] = teTrailers
	if _, ok := h["Grpc-Accept-Encoding"]; !ok {
		h["Grpc-Accept-Encoding"] = identity
	}
	// The length on the wire is the client's, not the upstream's (it
	// changes in text mode): let the body's end say where it ends.
	delete(h, "Content-Length")
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	if hasBody {
		r.ContentLength = -1
		if m&TextRequest != 0 {
			r.Body = &textReader{src: r.Body}
		}
	}
	return &ResponseWriter{w: w, text: m&TextResponse != 0}
}
