package main

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// reportedHeaders are the request headers /hello echoes: the ones a proxy in
// front of the app adds or rewrites.
var reportedHeaders = []string{
	"x-request-id",
	"x-forwarded-for",
	"x-forwarded-proto",
	"x-forwarded-host",
	"x-envoy-original-path",
	"x-envoy-expected-rq-timeout-ms",
	"traceparent",
	"user-agent",
}

// helloResponse is the JSON body of GET /hello.
type helloResponse struct {
	Service   string            `json:"service"`
	Instance  string            `json:"instance"`
	Method    string            `json:"method"`
	Path      string            `json:"path"`
	Authority string            `json:"authority"`
	Proto     string            `json:"proto"`
	Headers   map[string]string `json:"headers"`
}

// echoChunk is how much of an /echo body is held at once: the body is
// streamed back, never buffered whole.
const echoChunk = 32 << 10

func newHandler(name, instance string, logger hclog.Logger) http.Handler {
	mux := http.NewServeMux()
	hello := func(w http.ResponseWriter, r *http.Request) {
		resp := helloResponse{
			Service:   name,
			Instance:  instance,
			Method:    r.Method,
			Path:      r.URL.RequestURI(),
			Authority: r.Host,
			Proto:     r.Proto,
			Headers:   make(map[string]string, len(reportedHeaders)),
		}
		for _, h := range reportedHeaders {
			if v := r.Header.Values(h); len(v) > 0 {
				resp.Headers[h] = strings.Join(v, ", ")
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(resp); err != nil {
			logger.Debug("write /hello response", "error", err)
		}
	}
	mux.HandleFunc("GET /hello", hello)
	mux.HandleFunc("GET /hello/", hello)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) { echo(w, r, logger) })
	return mux
}

// echo streams the request body back as it arrives, flushing each chunk, so a
// client can watch its upload come back while still sending.
func echo(w http.ResponseWriter, r *http.Request, logger hclog.Logger) {
	rc := http.NewResponseController(w)
	// HTTP/1.1 in net/http stops reading the request body once the response
	// starts unless full duplex is enabled; HTTP/2 is always full duplex.
	if err := rc.EnableFullDuplex(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		logger.Debug("enable full duplex", "error", err)
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(http.StatusOK)

	buf := make([]byte, echoChunk)
	var total int64
	for {
		n, rerr := r.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				logger.Debug("echo write", "error", werr, "bytes", total)
				return
			}
			total += int64(n)
			if ferr := rc.Flush(); ferr != nil {
				logger.Debug("echo flush", "error", ferr, "bytes", total)
				return
			}
		}
		if errors.Is(rerr, io.EOF) {
			return
		}
		if rerr != nil {
			// The status line is out already; dropping the connection is the
			// only honest way to say the echo is incomplete.
			logger.Debug("echo read", "error", rerr, "bytes", total)
			panic(http.ErrAbortHandler)
		}
	}
}
