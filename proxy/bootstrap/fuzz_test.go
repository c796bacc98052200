package bootstrap

import (
	"errors"
	"os"
	"regexp"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// located matches what a decode error without a field path says about
// where the problem is: a line (YAML's, or ours where go-yaml gives
// none), or what it names: an anchor, a map key, the top level or the
// whole document.
var located = regexp.MustCompile(`\bline \d+|anchor '|map key|excessive aliasing|top level|^empty configuration$`)

// FuzzBootstrap loads arbitrary bytes as a --config-yaml bootstrap: Load
// never panics; every error says where the problem is (a field path, or a
// position in the document); and what loads, written back as JSON by
// protojson, loads again.
func FuzzBootstrap(f *testing.F) {
	for _, s := range []string{base, realistic, "{}", "node: {id: n}", "static_resources: {clusters: [{name: a, type: EDS}]}",
		`{"static_resources": {"listeners": [{"name": 1}]}}`, "a: &a [*a, *a]", "- 1\n- 2", "\"\\u00", ":", "admin: {address: {pipe: {path: /x}}}",
		`{"static_resources":{"listeners":[{"filter_chains":[{"filters":[{"typed_config":{"@type":"type.googleapis.com/x.Y"}}]}]}]}}`,
		"dynamic_resources: {ads_config: {api_type: GRPC}}", "node: {id: [1]}", "static_resources: {clusters: [{name: a, connect_timeout: 1x}]}",
	} {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile("../../examples/static/bootstrap.yaml"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 || len(data) > 64<<10 {
			return // "" is no configuration at all; huge inputs only slow the search
		}
		bs, err := Load("", string(data))
		if err != nil {
			if bs != nil {
				t.Fatalf("a Bootstrap and an error: %v", err)
			}
			if msg := unlocated(err); msg != "" {
				t.Fatalf("error without a path or position (%s): %T: %v\ninput: %q", msg, err, err, data)
			}
			return
		}
		if bs == nil || bs.Proto == nil || bs.Static == nil {
			t.Fatalf("no error and no Bootstrap: %#v", bs)
		}
		js, err := protojson.Marshal(bs.Proto)
		if err != nil {
			t.Fatalf("loaded but does not marshal: %v", err)
		}
		if _, err := Load("", string(js)); err != nil {
			t.Fatalf("loaded %q, but its JSON %s does not: %v", data, js, err)
		}
	})
}

// unlocated says what is wrong with err's location, "" when it names one.
func unlocated(err error) string {
	var de *DecodeError
	var u *resource.UnsupportedError
	var inv *resource.InvalidError
	var v *resource.ValidationError
	switch {
	case errors.As(err, &de):
		if de.Path == "" && !located.MatchString(de.Err.Error()) {
			return "a decode error with neither a path nor a position"
		}
	case errors.As(err, &u):
		return emptyPath(u.Fields)
	case errors.As(err, &inv):
		return emptyPath(inv.Fields)
	case errors.As(err, &v):
		// Every violation of the proto's own rules is placed at its
		// field's path.
		if len(v.Fields) == 0 {
			return "a validation error without its fields"
		}
		return emptyPath(v.Fields)
	default:
		return "an error of no known type"
	}
	return ""
}

func emptyPath(fs []resource.FieldError) string {
	if len(fs) == 0 {
		return "no fields"
	}
	for _, fe := range fs {
		if fe.Path == "" {
			return "a field error without a path: " + fe.Reason
		}
	}
	return ""
}
