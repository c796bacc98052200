package telemetry

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func formatEntry() *Entry {
	return &Entry{
		Start:           time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC),
		Method:          "GET",
		Authority:       "example.com",
		Path:            "/a/b?c=d",
		Protocol:        "HTTP/1.1",
		Status:          503,
		BytesReceived:   12,
		BytesSent:       345,
		Duration:        1500 * time.Microsecond,
		UpstreamCluster: "backend",
		UpstreamHost:    "10.0.0.1:8080",
		RequestID:       "rid",
		ResponseFlags:   "UF,URX",
		ClientAddress:   "192.0.2.1:5555",
		UserAgent:       "curl/8",
		GRPCStatus:      "14",
		Route:           "r1",
		Attempts:        3,
		RequestHeaders:  http.Header{"User-Agent": {"curl/8"}, "X-Request-Id": {"rid"}, "X-Alt": {"alt"}},
		ResponseHeaders: http.Header{"Content-Type": {"text/plain"}, "Trailer:Grpc-Message": {"bye"}, "Trailer": {"X-Tr"}, "X-Tr": {"announced"}},
	}
}

func mustText(t *testing.T, s string, omit bool) *Format {
	t.Helper()
	f, err := CompileText(s, omit)
	if err != nil {
		t.Fatalf("CompileText(%q): %v", s, err)
	}
	return f
}

func TestFormatTextCommands(t *testing.T) {
	host, _ := os.Hostname()
	e := formatEntry()
	for _, tt := range []struct{ format, want string }{
		{"%START_TIME%", "2026-03-04T05:06:07.123Z"},
		{"%START_TIME(%Y/%m/%d %H:%M:%S %z)%", "2026/03/04 05:06:07 +0000"},
		{"%START_TIME(%s.%3f|%6f|%9f|%f|%1f)%", "1772600767.123|123456|123456789|123456789|1"},
		{"%START_TIME(%E3S %% x)%", "07.123 % x"},
		{"%REQ(:METHOD)% %REQ(:path)% %REQ(:authority)% %REQ(host)%", "GET /a/b?c=d example.com example.com"},
		{"%REQ(USER-AGENT)% %REQ(x-request-id)%", "curl/8 rid"},
		{"%REQ(x-missing?x-alt)% %REQ(x-missing)% %REQ(x-alt?x-missing)%", "alt - alt"},
		{"%REQ(:path):4%", "/a/b"},
		{"%RESP(content-type)% %RESP(:status)% %RESP(x-none?content-type)%", "text/plain 503 text/plain"},
		{"%TRAILER(grpc-message)% %TRAILER(x-tr)% %TRAILER(x-none)%", "bye announced -"},
		{"%RESPONSE_CODE% %RESPONSE_FLAGS% %DURATION%", "503 UF,URX 1"},
		{"%BYTES_RECEIVED% %BYTES_SENT% %PROTOCOL%", "12 345 HTTP/1.1"},
		{"%UPSTREAM_HOST% %UPSTREAM_CLUSTER% %ROUTE_NAME%", "10.0.0.1:8080 backend r1"},
		{"%DOWNSTREAM_REMOTE_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", "192.0.2.1:5555 192.0.2.1"},
		{"%HOSTNAME%", host},
		{"%GRPC_STATUS% %UPSTREAM_REQUEST_ATTEMPT_COUNT%", "Unavailable 3"},
		{"100%% [%RESPONSE_FLAGS:2%]\n", "100% [UF]\n"},
		{"plain", "plain"},
		{"%PROTOCOL%", "HTTP/1.1"},
		{"", ""},
	} {
		if got := string(mustText(t, tt.format, false).Append(nil, e)); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.format, got, tt.want)
		}
	}
}

func TestFormatTextMissingValues(t *testing.T) {
	e := &Entry{}
	const f = "%START_TIME% %REQ(x)% %RESP(:status)% %RESPONSE_FLAGS% %UPSTREAM_HOST% %GRPC_STATUS% %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT% %RESPONSE_CODE%"
	if got, want := string(mustText(t, f, false).Append(nil, e)), "- - - - - - - 0"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := string(mustText(t, f, true).Append(nil, e)), "       0"; got != want {
		t.Errorf("omit_empty_values: got %q, want %q", got, want)
	}
	if got, want := grpcStatusName("99"), "99"; got != want {
		t.Errorf("grpcStatusName(99) = %q", got)
	}
	if got := stripPort("[::1]:80"); got != "::1" {
		t.Errorf("stripPort = %q", got)
	}
	for in, want := range map[string]string{"HTTP/2.0": "HTTP/2", "HTTP/3.0": "HTTP/3", "HTTP/1.0": "HTTP/1.0"} {
		if got := envoyProtocol(in); got != want {
			t.Errorf("envoyProtocol(%q) = %q", in, got)
		}
	}
	if got := stripPort("unix"); got != "unix" {
		t.Errorf("stripPort = %q", got)
	}
}

func TestFormatJSON(t *testing.T) {
	f, err := CompileJSON([]JSONField{
		{"status", "%RESPONSE_CODE%"},
		{"duration", "%DURATION%"},
		{"flags", "%RESPONSE_FLAGS%"},
		{"path", "%REQ(:path)%"},
		{"missing", "%REQ(x-none)%"},
		{"mixed", "%REQ(:method)% \"%REQ(:path):2%\""},
		{"short", "%RESPONSE_CODE:2%"},
		{"attempts", "%UPSTREAM_REQUEST_ATTEMPT_COUNT%"},
		{"lit", "const"},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	line := f.Append(nil, formatEntry())
	if !strings.HasSuffix(string(line), "}\n") {
		t.Fatalf("line %q does not end in }\\n", line)
	}
	want := `{"attempts":3,"duration":1,"flags":"UF,URX","lit":"const","missing":null,"mixed":"GET \"/a\"","path":"/a/b?c=d","short":"50","status":503}` + "\n"
	if string(line) != want {
		t.Errorf("got  %s\nwant %s", line, want)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("not JSON: %v", err)
	}

	f, err = CompileJSON([]JSONField{{"a", "%REQ(x-none)%"}, {"b", "%RESPONSE_FLAGS%"}, {"c", "%REQ(x-none)%"}}, true)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(f.Append(nil, &Entry{ResponseFlags: "NR"})), `{"b":"NR"}`+"\n"; got != want {
		t.Errorf("omit_empty_values: got %q, want %q", got, want)
	}
	if got, want := string(f.Append(nil, &Entry{})), "{}\n"; got != want {
		t.Errorf("omit_empty_values, all empty: got %q, want %q", got, want)
	}
	// A long value is quoted through a heap copy, and escaping works.
	f, _ = CompileJSON([]JSONField{{"p", "%REQ(:path)%"}, {"q", "x%REQ(:path)%"}}, false)
	long := "/" + strings.Repeat("\"", 300)
	var m2 map[string]string
	if err := json.Unmarshal(f.Append(nil, &Entry{Path: long}), &m2); err != nil || m2["p"] != long || m2["q"] != "x"+long {
		t.Errorf("long value: %v %q", err, m2)
	}
}

func TestFormatErrors(t *testing.T) {
	for _, tt := range []struct{ format, want string }{
		{"%", "not followed by a command"},
		{"%%%", "not followed by a command"},
		{"%FOO%", "%FOO% is not supported"},
		{"%DOWNSTREAM_LOCAL_ADDRESS%", "%DOWNSTREAM_LOCAL_ADDRESS% is not supported"},
		{"%RESPONSE_CODE", "missing closing %"},
		{"%REQ(x%", "unterminated argument"},
		{"%REQ%", "needs a header name"},
		{"%REQ()%", "needs a header name"},
		{"%REQ(a?b?c)%", "name?alternative"},
		{"%REQ(a?)%", "name?alternative"},
		{"%REQ(:scheme)%", "pseudo-header :scheme is not supported"},
		{"%RESP(:path)%", "pseudo-header :path is not supported"},
		{"%RESP(x?:foo)%", "pseudo-header :foo"},
		{"%RESPONSE_CODE(x)%", "takes no argument"},
		{"%REQ(x):0%", "bad max length"},
		{"%REQ(x):%", "bad max length"},
		{"%START_TIME(%Q)%", "specifier %Q is not supported"},
		{"%START_TIME(%)%", "trailing %"},
		{"%START_TIME(%3x)%", "must be followed by f"},
		{"%START_TIME(%Ez)%", "only %E<n>S"},
	} {
		_, err := CompileText(tt.format, false)
		if err == nil || !errors.Is(err, ErrBadFormat) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want one containing %q", tt.format, err, tt.want)
		}
	}
	if _, err := CompileJSON([]JSONField{{"a", "%X%"}}, false); err == nil || !strings.Contains(err.Error(), `key "a"`) {
		t.Errorf("CompileJSON bad value: %v", err)
	}
	if _, err := CompileJSON([]JSONField{{"a", "x"}, {"a", "y"}}, false); err == nil || !strings.Contains(err.Error(), `"a" twice`) {
		t.Errorf("CompileJSON duplicate key: %v", err)
	}
}

func TestAccessLoggerWithFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	l := newTestLogger(t, path)
	if l.WithFormat(nil) != l {
		t.Error("WithFormat(nil) is not the logger itself")
	}
	v := l.WithFormat(mustText(t, "%RESPONSE_CODE% %REQ(:path)%\n", false))
	if v.Path() != path {
		t.Errorf("view Path = %q", v.Path())
	}
	if v.WithFormat(nil) != l {
		t.Error("a view's WithFormat(nil) is not the shared logger")
	}
	v.Log(&Entry{Status: 200, Path: "/x"})
	l.Log(&Entry{Status: 201})
	v.Log(&Entry{Status: 202, Path: "/y"})
	if err := v.Close(); err != nil { // closes the shared logger
		t.Fatal(err)
	}
	v.Log(&Entry{Status: 203})
	if l.Dropped() != 1 || v.Dropped() != 1 || v.Err() != nil || v.Reopen() == nil {
		t.Errorf("after Close: dropped %d/%d, err %v", l.Dropped(), v.Dropped(), v.Err())
	}
	v.Flush()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 3 || lines[0] != "200 /x" || !strings.HasPrefix(lines[1], `{"start_time":"-"`) || lines[2] != "202 /y" {
		t.Errorf("lines = %q", lines)
	}
}

const benchTextFormat = "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" %RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" \"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\"\n"

func benchJSONFormat(tb testing.TB) *Format {
	f, err := CompileJSON([]JSONField{
		{"start_time", "%START_TIME%"}, {"method", "%REQ(:METHOD)%"}, {"path", "%REQ(:PATH)%"},
		{"protocol", "%PROTOCOL%"}, {"response_code", "%RESPONSE_CODE%"}, {"response_flags", "%RESPONSE_FLAGS%"},
		{"bytes_received", "%BYTES_RECEIVED%"}, {"bytes_sent", "%BYTES_SENT%"}, {"duration", "%DURATION%"},
		{"user_agent", "%REQ(USER-AGENT)%"}, {"request_id", "%REQ(X-REQUEST-ID)%"}, {"authority", "%REQ(:AUTHORITY)%"},
		{"upstream_host", "%UPSTREAM_HOST%"}, {"request", "%REQ(:METHOD)% %REQ(:PATH)%"},
	}, false)
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

func TestFormatDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	e := formatEntry()
	for name, f := range map[string]*Format{"text": mustText(t, benchTextFormat, false), "json": benchJSONFormat(t)} {
		buf := make([]byte, 0, 4096)
		if n := testing.AllocsPerRun(1000, func() { buf = f.Append(buf[:0], e) }); n != 0 {
			t.Errorf("%s: Append allocates %v times per line, want 0", name, n)
		}
		l := newTestLogger(t, filepath.Join(t.TempDir(), "access.log")).WithFormat(f)
		if n := testing.AllocsPerRun(1000, func() { l.Log(e) }); n != 0 {
			t.Errorf("%s: Log allocates %v times per line, want 0", name, n)
		}
	}
}

func BenchmarkFormatText(b *testing.B) {
	f, err := CompileText(benchTextFormat, false)
	if err != nil {
		b.Fatal(err)
	}
	e := formatEntry()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = f.Append(buf[:0], e)
	}
}

func BenchmarkFormatJSON(b *testing.B) {
	f := benchJSONFormat(b)
	e := formatEntry()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = f.Append(buf[:0], e)
	}
}

func BenchmarkAccessLoggerLogText(b *testing.B) {
	l, err := NewAccessLogger(filepath.Join(b.TempDir(), "access.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	f, err := CompileText(benchTextFormat, false)
	if err != nil {
		b.Fatal(err)
	}
	v := l.WithFormat(f)
	e := formatEntry()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			v.Log(e)
		}
	})
}
