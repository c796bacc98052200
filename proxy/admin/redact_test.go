package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestRedactSecrets(t *testing.T) {
	for _, tt := range []struct {
		name, in, want string
	}{
		{"protojson names",
			`{"tlsCertificate": {"certificateChain": {"inlineString": "CERT"}, "privateKey": {"inlineString": "KEY"}}}`,
			`{"tlsCertificate": {"certificateChain": {"inlineString": "CERT"}, "privateKey": {"inlineString": "[redacted]"}}}`},
		{"proto names, bytes",
			`{"tls_certificate":{"private_key":{"inline_bytes":"S0VZ"},"password":{"inline_string":"pw"}}}`,
			`{"tls_certificate":{"private_key":{"inline_bytes":"W3JlZGFjdGVkXQ=="},"password":{"inline_string":"[redacted]"}}}`},
		{"a filename is shown",
			`{"privateKey":{"filename":"/etc/key.pem"}}`,
			`{"privateKey":{"filename":"/etc/key.pem"}}`},
		{"in arrays, multiline",
			"{\n  \"tlsCertificates\": [\n    {\n      \"privateKey\": {\n        \"inlineString\": \"K1\"\n      }\n    },\n    {\"privateKey\": {\"inlineString\": \"K2\"}}\n  ]\n}",
			"{\n  \"tlsCertificates\": [\n    {\n      \"privateKey\": {\n        \"inlineString\": \"[redacted]\"\n      }\n    },\n    {\"privateKey\": {\"inlineString\": \"[redacted]\"}}\n  ]\n}"},
		{"session ticket keys and generic secrets",
			`{"sessionTicketKeys":{"keys":[{"inlineBytes":"QUFB"}]},"genericSecret":{"secret":{"inlineString":"s"}}}`,
			`{"sessionTicketKeys":{"keys":[{"inlineBytes":"W3JlZGFjdGVkXQ=="}]},"genericSecret":{"secret":{"inlineString":"[redacted]"}}}`},
		{"other inline values stay",
			`{"directResponse":{"body":{"inlineString":"hello"}},"keys":[{"inlineString":"k"}],"secret":{"inlineString":"x"},"n":1.5,"b":true,"z":null,"e":{},"a":[]}`,
			`{"directResponse":{"body":{"inlineString":"hello"}},"keys":[{"inlineString":"k"}],"secret":{"inlineString":"x"},"n":1.5,"b":true,"z":null,"e":{},"a":[]}`},
		{"a sensitive key that is not a DataSource",
			`{"password":"plain","privateKey":{"inlineString":{"odd":1}}}`,
			`{"password":"plain","privateKey":{"inlineString":{"odd":1}}}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := redactSecrets([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Fatal("not JSON any more")
			}
		})
	}
	if _, err := redactSecrets([]byte(`{"privateKey": {`)); err == nil {
		t.Fatal("truncated JSON accepted")
	}
}

type dumpBackend struct {
	*fakeBackend
	dump string
}

func (d *dumpBackend) ConfigDump() ([]byte, error) { return []byte(d.dump), nil }

func TestConfigDumpRedacted(t *testing.T) {
	for _, tt := range []struct {
		dump     string
		wantCode int
		want     string
	}{
		{`{"configs":[{"privateKey":{"inlineString":"-----BEGIN EC PRIVATE KEY-----"}}]}`, 200, `"[redacted]"`},
		{`{"configs":[`, 500, "config dump failed"},
	} {
		h := newHandler(&dumpBackend{fakeBackend: newFakeBackend(), dump: tt.dump}, hclog.NewNullLogger())
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/config_dump", nil))
		body := rec.Body.String()
		if rec.Code != tt.wantCode || !strings.Contains(body, tt.want) || strings.Contains(body, "PRIVATE KEY") {
			t.Fatalf("%s: %d %s", tt.dump, rec.Code, body)
		}
	}
}
