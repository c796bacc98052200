package cluster

import (
	"net/http"
	"strconv"
)

// upstreamStatus is the status a response counts as for the cluster's
// statistics and the outlier detector. A gRPC error answered trailers-only
// (HTTP 200 with grpc-status in the headers, as gRPC servers and proxies
// answer a call they fail at once) counts as its gRPC status mapped to
// HTTP, as Envoy's router does (Grpc::Utility::grpcToHttpStatus): a
// sidecar answering UNAVAILABLE for a dead app is a 503 to outlier
// detection. A status in the trailers of a streamed response does not
// count, as in Envoy.
func upstreamStatus(resp *http.Response) int {
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode
	}
	gs := resp.Header["Grpc-Status"]
	if len(gs) == 0 {
		return resp.StatusCode
	}
	code, err := strconv.Atoi(gs[0])
	if err != nil {
		return http.StatusInternalServerError // a grpc-status that is not a number: a broken answer
	}
	return grpcToHTTPStatus(code)
}

// grpcToHTTPStatus is Envoy's Grpc::Utility::grpcToHttpStatus.
func grpcToHTTPStatus(code int) int {
	switch code {
	case 0: // OK
		return http.StatusOK
	case 1: // CANCELLED
		return 499
	case 3, 9, 11: // INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE
		return http.StatusBadRequest
	case 4: // DEADLINE_EXCEEDED
		return http.StatusGatewayTimeout
	case 5: // NOT_FOUND
		return http.StatusNotFound
	case 6, 10: // ALREADY_EXISTS, ABORTED
		return http.StatusConflict
	case 7: // PERMISSION_DENIED
		return http.StatusForbidden
	case 8: // RESOURCE_EXHAUSTED
		return http.StatusTooManyRequests
	case 12: // UNIMPLEMENTED
		return http.StatusNotImplemented
	case 14: // UNAVAILABLE
		return http.StatusServiceUnavailable
	case 16: // UNAUTHENTICATED
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError // UNKNOWN, INTERNAL, DATA_LOSS, and codes gRPC does not define
}
