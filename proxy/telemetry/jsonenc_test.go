package telemetry

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestAppendJSONString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		raw  string // exact encoding expected
		want string // value after json.Unmarshal
	}{
		{name: "plain", in: "/api/v1", raw: `"/api/v1"`, want: "/api/v1"},
		{name: "empty", in: "", raw: `""`, want: ""},
		{name: "quote and backslash", in: `a"b\c`, raw: `"a\"b\\c"`, want: `a"b\c`},
		{name: "newline tab cr", in: "a\nb\tc\rd", raw: `"a\nb\tc\rd"`, want: "a\nb\tc\rd"},
		{name: "control chars", in: "\x00\x01\x1f\x7f", raw: `"\u0000\u0001\u001f` + "\x7f" + `"`, want: "\x00\x01\x1f\x7f"},
		{name: "valid utf8", in: "héllo 世界 🚀", raw: `"héllo 世界 🚀"`, want: "héllo 世界 🚀"},
		{name: "invalid byte", in: "a\xffb", raw: `"a\ufffdb"`, want: "a\ufffdb"},
		{name: "truncated rune", in: "x\xe4\xb8", raw: `"x\ufffd\ufffd"`, want: "x\ufffd\ufffd"},
		{name: "line separators", in: "a\u2028b\u2029", raw: `"a\u2028b\u2029"`, want: "a\u2028b\u2029"},
		{name: "html kept verbatim", in: "<a&b>", raw: `"<a&b>"`, want: "<a&b>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := appendJSONString(nil, tt.in)
			if string(got) != tt.raw {
				t.Errorf("appendJSONString(%q) = %s, want %s", tt.in, got, tt.raw)
			}
			var v string
			if err := json.Unmarshal(got, &v); err != nil {
				t.Fatalf("not valid JSON: %s: %v", got, err)
			}
			if v != tt.want {
				t.Errorf("decoded %q, want %q", v, tt.want)
			}
		})
	}
}

// FuzzAppendJSONString checks that any input encodes to valid JSON that
// decodes to what encoding/json would produce for the same string.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "abc", "\x00\"\\", "\xff\xfe", "日本\xe6\x97", "\u2028", "\t\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendJSONString(nil, s)
		var v string
		if err := json.Unmarshal(got, &v); err != nil {
			t.Fatalf("invalid JSON for %q: %s: %v", s, got, err)
		}
		ref, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var want string
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if v != want {
			t.Fatalf("decoded %q, encoding/json gives %q", v, want)
		}
	})
}

var allKeys = []string{
	"start_time", "method", "authority", "path", "protocol", "response_code",
	"bytes_received", "bytes_sent", "duration_ms", "upstream_cluster", "upstream_host",
	"x_request_id", "response_flags", "downstream_remote_address", "user_agent",
	"grpc_status", "listener", "route_name",
}

func sampleEntry() *Entry {
	return &Entry{
		Start:           time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.FixedZone("X", 3600)),
		Method:          "GET",
		Authority:       "example.com",
		Path:            "/a?b=\"c\"",
		Protocol:        "HTTP/1.1",
		Status:          200,
		BytesReceived:   12,
		BytesSent:       3456,
		Duration:        1234567 * time.Nanosecond,
		UpstreamCluster: "backend",
		UpstreamHost:    "127.0.0.1:8080",
		RequestID:       "5f8c1b1e-0000-4000-8000-000000000000",
		ResponseFlags:   "",
		ClientAddress:   "127.0.0.1:54321",
		UserAgent:       "curl/8.0\x01",
		GRPCStatus:      "",
		Listener:        "ingress",
		Route:           "default",
	}
}

func TestEntryAppendJSON(t *testing.T) {
	tests := []struct {
		name  string
		entry *Entry
		want  map[string]any
	}{
		{
			name:  "full entry",
			entry: sampleEntry(),
			want: map[string]any{
				"start_time":                "2026-03-04T04:06:07.123456789Z",
				"method":                    "GET",
				"path":                      "/a?b=\"c\"",
				"response_code":             float64(200),
				"bytes_received":            float64(12),
				"bytes_sent":                float64(3456),
				"duration_ms":               1.235,
				"response_flags":            "-",
				"grpc_status":               "-",
				"user_agent":                "curl/8.0\x01",
				"downstream_remote_address": "127.0.0.1:54321",
			},
		},
		{
			name:  "zero entry keeps every key",
			entry: &Entry{},
			want: map[string]any{
				"start_time":    "-",
				"method":        "-",
				"response_code": float64(0),
				"duration_ms":   float64(0),
				"route_name":    "-",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line := tt.entry.AppendJSON(nil)
			if !strings.HasSuffix(string(line), "}\n") || strings.Count(string(line), "\n") != 1 {
				t.Fatalf("want exactly one line ending in a newline, got %q", line)
			}
			var got map[string]any
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatalf("invalid JSON %s: %v", line, err)
			}
			if len(got) != len(allKeys) {
				t.Errorf("got %d keys, want %d: %s", len(got), len(allKeys), line)
			}
			for _, k := range allKeys {
				if _, ok := got[k]; !ok {
					t.Errorf("key %q missing: %s", k, line)
				}
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
		})
	}
}
