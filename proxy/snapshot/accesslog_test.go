package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"

	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// hcmWithLog is a listener chain JSON: a connection manager whose one
// access log has typed config tc (its JSON fields after @type).
func hcmWithLog(typ, tc string) string {
	return `{"filters": [{"name": "envoy.filters.network.http_connection_manager", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
		"statPrefix": "x", "httpFilters": [{"name": "envoy.filters.http.router", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}], "routeConfig": {"name": "r"},
		"accessLog": [{"name": "l", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.` + typ + `"` + tc + `}}]}}]}`
}

func TestAccessLogFormatConversion(t *testing.T) {
	src := filepath.Join(t.TempDir(), "format.txt")
	if err := os.WriteFile(src, []byte("%RESPONSE_CODE% from file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &telemetry.Entry{Status: 503, ResponseFlags: "UF", Path: "/p"}
	tests := []struct {
		name, typ, tc, path, want string
	}{
		{"stdout default", "stream.v3.StdoutAccessLog", ``, "/dev/stdout", ""},
		{"stderr text", "stream.v3.StderrAccessLog", `, "logFormat": {"textFormatSource": {"inlineString": "%RESPONSE_CODE% %RESPONSE_FLAGS%\n"}}`, "/dev/stderr", "503 UF\n"},
		{"file text_format", "file.v3.FileAccessLog", `, "path": "/tmp/x.log", "logFormat": {"textFormat": "%REQ(:path)% %REQ(x-none)%"}`, "/tmp/x.log", "/p -"},
		{"omit empty", "file.v3.FileAccessLog", `, "path": "/tmp/x.log", "logFormat": {"textFormat": "%REQ(:path)% %REQ(x-none)%", "omitEmptyValues": true}`, "/tmp/x.log", "/p "},
		{"text from file", "stream.v3.StdoutAccessLog", `, "logFormat": {"textFormatSource": {"filename": "` + src + `"}}`, "/dev/stdout", "503 from file\n"},
		{"json", "stream.v3.StdoutAccessLog", `, "logFormat": {"jsonFormat": {"code": "%RESPONSE_CODE%", "flags": "%RESPONSE_FLAGS%"}, "contentType": "application/json", "jsonFormatOptions": {"sortProperties": true}}`, "/dev/stdout", `{"code":503,"flags":"UF"}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := Build([]*listenerv3.Listener{tcpListener(t, hcmWithLog(tt.typ, tt.tc))}, nil, nil)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			logs := snap.Listeners[0].HTTP[0].AccessLogs
			if len(logs) != 1 || logs[0].Path != tt.path {
				t.Fatalf("access logs = %+v", logs)
			}
			if tt.want == "" {
				if logs[0].Format != nil {
					t.Errorf("Format = %v, want nil (the fixed JSON line)", logs[0].Format)
				}
				return
			}
			if got := string(logs[0].Format.Append(nil, e)); got != tt.want {
				t.Errorf("line = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTCPProxyAccessLogFormat(t *testing.T) {
	chain := `{"filters": [` + tcpFilter(`, "cluster": "a", "accessLog": [{"name": "x", "typedConfig": {"@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog", "logFormat": {"textFormat": "%UPSTREAM_CLUSTER% %RESPONSE_FLAGS%"}}}]`) + `]}`
	snap, err := Build([]*listenerv3.Listener{tcpListener(t, chain)}, nil, staticClusterProto(t, "a"))
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	logs := snap.Listeners[0].Config.FilterChains[0].TCPProxy.AccessLogs
	if len(logs) != 1 || logs[0].Format == nil {
		t.Fatalf("access logs = %+v", logs)
	}
	if got := string(logs[0].Format.Append(nil, &telemetry.Entry{UpstreamCluster: "a", ResponseFlags: "UF"})); got != "a UF" {
		t.Errorf("line = %q", got)
	}
}

func TestAccessLogFormatRefused(t *testing.T) {
	const at = "listeners[0].filter_chains[0].filters[0].typed_config.access_log[0].typed_config"
	tests := []struct {
		name, typ, tc, path, reason string
		unsupported                 bool
	}{
		{"unknown command", "stream.v3.StdoutAccessLog", `, "logFormat": {"textFormat": "%FOO%"}`,
			at + ".log_format.text_format", "%FOO% is not supported", false},
		{"bad command in a source", "stream.v3.StdoutAccessLog", `, "logFormat": {"textFormatSource": {"inlineString": "%REQ()%"}}`,
			at + ".log_format.text_format_source", "needs a header name", false},
		{"missing source file", "stream.v3.StdoutAccessLog", `, "logFormat": {"textFormatSource": {"filename": "/nonexistent/format"}}`,
			at + ".log_format.text_format_source.filename", "no such file", false},
		{"bad json value", "stream.v3.StderrAccessLog", `, "logFormat": {"jsonFormat": {"a": "%DOWNSTREAM_LOCAL_ADDRESS%"}}`,
			at + ".log_format.json_format", `key "a"`, false},
		{"json number", "file.v3.FileAccessLog", `, "path": "/tmp/x", "logFormat": {"jsonFormat": {"a": 1}}`,
			at + ".log_format.json_format.a", "only string values", false},
		{"json nested", "file.v3.FileAccessLog", `, "path": "/tmp/x", "logFormat": {"jsonFormat": {"n": {"b": "%RESPONSE_CODE%"}}}`,
			at + ".log_format.json_format.n", "only string values", false},
		{"json empty", "file.v3.FileAccessLog", `, "path": "/tmp/x", "logFormat": {"jsonFormat": {}}`,
			at + ".log_format.json_format", "at least one key", false},
		{"no format", "stream.v3.StdoutAccessLog", `, "logFormat": {"omitEmptyValues": true}`,
			at + ".log_format.format", "value is required (one of text_format, json_format, text_format_source)", false},
		{"formatters", "stream.v3.StdoutAccessLog", `, "logFormat": {"textFormat": "x", "formatters": [{"name": "f", "typedConfig": {"@type": "type.googleapis.com/google.protobuf.Empty"}}]}`,
			at + ".log_format.formatters", "not supported", true},
		{"legacy file format", "file.v3.FileAccessLog", `, "path": "/tmp/x", "format": "%RESPONSE_CODE%"`,
			at + ".format", "not supported", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Build([]*listenerv3.Listener{tcpListener(t, hcmWithLog(tt.typ, tt.tc))}, nil, nil)
			var fields []resource.FieldError
			var u *resource.UnsupportedError
			var in *resource.InvalidError
			switch {
			case errors.As(err, &u) && tt.unsupported:
				fields = u.Fields
			case errors.As(err, &in) && !tt.unsupported:
				fields = in.Fields
			default:
				t.Fatalf("Build error = %v (%T)", err, err)
			}
			for _, f := range fields {
				if f.Path == tt.path && strings.Contains(f.Reason, tt.reason) {
					return
				}
			}
			t.Errorf("errors %v, want %s: ...%s", fields, tt.path, tt.reason)
		})
	}
}

// TestLogFormatRequiresAFormat: the proto's own validation refuses an
// empty log_format first; the converter's check stands behind it.
func TestLogFormatRequiresAFormat(t *testing.T) {
	c := &converter{}
	if _, ok := c.logFormat("p", &corev3.SubstitutionFormatString{}); ok || len(c.errs) != 1 || c.errs[0].Path != "p" {
		t.Errorf("ok %v, errs %v", ok, c.errs)
	}
}
