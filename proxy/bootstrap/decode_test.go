package bootstrap

import (
	"errors"
	"strings"
	"testing"

	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// Decode errors say where: a field path, or a line where there is none.
func TestDecodeErrorsLocated(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"top-level list", "- 1\n- 2", "--config-yaml: the top level must be a mapping of Bootstrap fields, not a list"},
		{"top-level string", `"x"`, "not a string"},
		{"top-level number", "12", "not a number"},
		{"syntax error on the first line", ":", "--config-yaml: line 1: yaml: did not find expected key"},
		{"control character", "node:\n  id: a\x01b", "--config-yaml: line 2, column 8: yaml: control characters are not allowed"},
		{"invalid UTF-8", "node: {id: \xff}", "line 1, column 12: "},
		{"empty key", `"": 1`, `--config-yaml: [""]: unknown field ""`},
		{"odd key", "node: {\"a b\": 1}", `node["a b"]: unknown field "a b"`},
		{"@type at the top level", `"@type": A`, "@type: A is not supported yet"},
		{"anchor names itself", "a: &a [*a]", "anchor 'a' value contains itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("", tc.in)
			var de *DecodeError
			var u *resource.UnsupportedError
			if !errors.As(err, &de) && !errors.As(err, &u) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a DecodeError or UnsupportedError containing %q", err, tc.want)
			}
		})
	}
}
