package fault

import (
	"net/http"
	"strconv"

	"github.com/outrigger-mesh/outrigger/proxy/forward"
)

// abortPolicy is an Abort with its reply's header values built once. The
// shared slices have len == cap, so an append by a later writer copies.
type abortPolicy struct {
	kind       AbortKind
	httpStatus int
	grpcStatus int
	percent    Fraction
	body       []byte
	length     []string // Content-Length of body
	message    []string // grpc-message: body, percent-encoded
}

func newAbortPolicy(a *Abort) *abortPolicy {
	body := a.Body
	if body == "" {
		body = DefaultAbortBody
	}
	return &abortPolicy{
		kind:       a.Kind,
		httpStatus: a.HTTPStatus,
		grpcStatus: a.GRPCStatus,
		percent:    a.Percent,
		body:       []byte(body),
		length:     []string{strconv.Itoa(len(body))},
		message:    []string{forward.GRPCPercentEncode(body)},
	}
}

var (
	grpcContentType = []string{"application/grpc"}
	textPlain       = []string{"text/plain; charset=utf-8"}
	grpcStatusText  [17]string
	grpcStatusValue [17][]string
)

func init() {
	for i := range grpcStatusText {
		grpcStatusText[i] = strconv.Itoa(i)
		grpcStatusValue[i] = []string{grpcStatusText[i]}
	}
}

// write answers the request with an abort, shaped like
// forward.WriteLocalReply's replies: a gRPC request gets a trailers-only
// response (HTTP 200, grpc-status, grpc-message) with grpcStatus, or the
// status Envoy derives from httpStatus when grpcStatus is noGRPC; anything
// else gets httpStatus and the body as text/plain (a gRPC abort answers a
// plain HTTP request with 200, as Envoy does). It returns the HTTP status
// and grpc-status written.
func (a *abortPolicy) write(w http.ResponseWriter, r *http.Request, httpStatus, grpcStatus int) (int, string) {
	h := w.Header()
	if forward.IsGRPC(r) {
		if grpcStatus < 0 || grpcStatus > 16 {
			grpcStatus = forward.HTTPToGRPCStatus(httpStatus)
		}
		h["Content-Type"] = grpcContentType
		h["Grpc-Status"] = grpcStatusValue[grpcStatus]
		h["Grpc-Message"] = a.message
		w.WriteHeader(http.StatusOK)
		return http.StatusOK, grpcStatusText[grpcStatus]
	}
	body := httpStatus != http.StatusNoContent && httpStatus != http.StatusNotModified
	if body {
		h["Content-Type"] = textPlain
		h["Content-Length"] = a.length
	}
	w.WriteHeader(httpStatus)
	if body && r.Method != http.MethodHead {
		_, _ = w.Write(a.body)
	}
	return httpStatus, ""
}
