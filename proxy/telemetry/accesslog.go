// Package telemetry holds the proxy's access log and its metrics.
package telemetry

import (
	"net/http"
	"time"
)

// Entry is one access-log line. Fields follow Envoy's command operators
// where there is one (named in the comment); the JSON keys are fixed.
type Entry struct {
	Start           time.Time     // start_time
	Method          string        // method
	Authority       string        // authority
	Path            string        // path (original, before rewrites)
	Protocol        string        // protocol: HTTP/1.1, HTTP/2
	Status          int           // response_code; 0 when none was sent
	BytesReceived   int64         // bytes_received (request body)
	BytesSent       int64         // bytes_sent (response body)
	Duration        time.Duration // duration
	UpstreamCluster string        // upstream_cluster
	UpstreamHost    string        // upstream_host
	RequestID       string        // x_request_id
	ResponseFlags   string        // response_flags: UF, UH, UT, UC, NR, DC, ...
	ClientAddress   string        // downstream_remote_address
	UserAgent       string        // user_agent
	GRPCStatus      string        // grpc_status, from trailers or headers
	Listener        string        // listener name (route_name is Route)
	Route           string        // route_name
	Attempts        int           // UPSTREAM_REQUEST_ATTEMPT_COUNT (log_format only, not in the JSON line)
	TraceID         string        // trace_id (TRACE_ID): the request's trace; "" without tracing or access logs

	// RequestHeaders and ResponseHeaders are the request's headers (after
	// the connection manager's edits) and the headers sent downstream, for
	// the REQ, RESP and TRAILER format commands; nil for TCP. Loggers read
	// them synchronously and keep no reference.
	RequestHeaders  http.Header
	ResponseHeaders http.Header
}
