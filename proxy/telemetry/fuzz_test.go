package telemetry

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzAccessLogFormat compiles arbitrary format strings, as a text format
// and as json_format values, and renders entries with arbitrary values
// through what compiles: nothing may panic, a refusal wraps ErrBadFormat,
// JSON output is one valid object per line, and rendering after existing
// bytes (the logger's reused buffer) changes none of them and gives the
// same line as rendering into nothing.
func FuzzAccessLogFormat(f *testing.F) {
	for _, s := range []string{
		"[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n",
		"%START_TIME(%Y/%m/%d %H:%M:%S.%3f %z %s %E6S %%)%",
		"%REQ(x-a):3% %RESP(:status)% %TRAILER(grpc-message)% %RESP(x?:status)%",
		"%GRPC_STATUS% %HOSTNAME% %ROUTE_NAME% %UPSTREAM_CLUSTER% %TRACE_ID% %UPSTREAM_REQUEST_ATTEMPT_COUNT%",
		"%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
		"100%% %", "%REQ(%", "%REQ()%", "%REQ(a?b?c)%", "%DURATION:0%", "%DURATION:99999999999999999999%",
		"%START_TIME(%E)%", "%START_TIME(%9)%", "%NOPE%", "%RESPONSE_CODE%", "%REQ(x-a):1%",
	} {
		f.Add(s, "key", "v\xff\"", int64(1772600767), 503, int64(1500000))
	}
	f.Add("%START_TIME(%Y %s %f)%", "", "", int64(-62135596801), -1, int64(-1))
	f.Add("%REQ(x-a):2%", "k", "日本", int64(253402300800), 1<<40, int64(1<<62))
	f.Fuzz(func(t *testing.T, format, key, value string, start int64, status int, dur int64) {
		e := &Entry{
			Start:           time.Unix(start, dur%1e9),
			Method:          value,
			Authority:       value,
			Path:            value,
			Protocol:        "HTTP/2.0",
			Status:          status,
			BytesReceived:   dur,
			BytesSent:       -dur,
			Duration:        time.Duration(dur),
			UpstreamCluster: value,
			UpstreamHost:    value,
			ResponseFlags:   value,
			ClientAddress:   value,
			GRPCStatus:      value,
			Route:           value,
			Attempts:        status,
			TraceID:         value,
			RequestHeaders:  http.Header{"X-A": {value}, "User-Agent": {value}},
			ResponseHeaders: http.Header{"X-A": {value}, "Trailer": {"X-A, " + value}, http.TrailerPrefix + "Grpc-Message": {value}},
		}
		entries := []*Entry{e, {}, formatEntry()}

		text, err := CompileText(format, status%2 == 0)
		if err != nil {
			if !errors.Is(err, ErrBadFormat) {
				t.Fatalf("CompileText(%q): %v does not wrap ErrBadFormat", format, err)
			}
		} else {
			for _, e := range entries {
				line := renderTwice(t, text, e)
				if !strings.Contains(format, "%") && string(line) != format {
					t.Fatalf("format %q without commands rendered %q", format, line)
				}
			}
		}

		js, err := CompileJSON([]JSONField{{Key: key, Format: format}, {Key: key + "2", Format: "x" + format}}, status%3 == 0)
		if err != nil {
			if !errors.Is(err, ErrBadFormat) {
				t.Fatalf("CompileJSON(%q): %v does not wrap ErrBadFormat", format, err)
			}
			return
		}
		for _, e := range entries {
			line := renderTwice(t, js, e)
			if len(line) == 0 || line[len(line)-1] != '\n' || bytes.Count(line, []byte{'\n'}) != 1 {
				t.Fatalf("format %q: JSON line %q is not one line", format, line)
			}
			var obj map[string]any
			if err := json.Unmarshal(line, &obj); err != nil {
				t.Fatalf("format %q: invalid JSON %q: %v", format, line, err)
			}
		}
	})
}

// renderTwice renders e into nothing and after existing bytes with spare
// room, and checks both give the same line without touching those bytes.
func renderTwice(t *testing.T, f *Format, e *Entry) []byte {
	t.Helper()
	line := f.Append(nil, e)
	prefix := []byte("prefix:")
	buf := make([]byte, len(prefix), 4096)
	copy(buf, prefix)
	out := f.Append(buf, e)
	if !bytes.HasPrefix(out, prefix) || !bytes.Equal(out[len(prefix):], line) {
		t.Fatalf("after existing bytes: %q, alone: %q", out, line)
	}
	return line
}
