package resource

import (
	"flag"
	"os"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

var update = flag.Bool("update", false, "rewrite the generated section of docs/configuration.md")

// TestTableConsistent keeps the support table honest: every message and
// field exists, every enum value exists, every supported message-typed field
// leads somewhere the walk can check, and every Any names its types.
func TestTableConsistent(t *testing.T) {
	seen := map[protoreflect.FullName]bool{}
	for _, m := range Messages {
		if seen[m.Name] {
			t.Errorf("%s: listed twice", m.Name)
		}
		seen[m.Name] = true
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(m.Name)
		if err != nil {
			t.Errorf("%s: %v", m.Name, err)
			continue
		}
		md := d.(protoreflect.MessageDescriptor)
		for name, f := range m.Fields {
			fd := md.Fields().ByName(protoreflect.Name(name))
			if fd == nil {
				t.Errorf("%s.%s: no such field", m.Name, name)
				continue
			}
			if f.Ignored || f.Leaf {
				continue
			}
			if fd.IsMap() {
				fd = fd.MapValue()
			}
			switch fd.Kind() {
			case protoreflect.EnumKind:
				for _, e := range f.Enums {
					if fd.Enum().Values().ByName(protoreflect.Name(e)) == nil {
						t.Errorf("%s.%s: no enum value %s", m.Name, name, e)
					}
				}
			case protoreflect.MessageKind:
				inner := fd.Message().FullName()
				if inner == "google.protobuf.Any" {
					if len(f.Types) == 0 {
						t.Errorf("%s.%s: Any field without Types", m.Name, name)
					}
					for _, typ := range f.Types {
						if rules[typ] == nil {
							t.Errorf("%s.%s: type %s has no table entry", m.Name, name, typ)
						}
						if _, err := protoregistry.GlobalTypes.FindMessageByName(typ); err != nil {
							t.Errorf("%s.%s: type %s not registered: %v", m.Name, name, typ, err)
						}
					}
					continue
				}
				if !wellKnown[inner] && rules[inner] == nil {
					t.Errorf("%s.%s: message %s has no table entry (mark it Leaf or add it)", m.Name, name, inner)
				}
			}
		}
	}
	for _, e := range Extensions {
		if rules[e.Message] == nil {
			t.Errorf("extension %s: %s has no table entry", e.Name, e.Message)
		}
	}
}

// TestDocsUpToDate fails when docs/configuration.md's generated section
// differs from Markdown(); run with -update to refresh it.
func TestDocsUpToDate(t *testing.T) {
	const path = "../../docs/configuration.md"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	begin := strings.Index(doc, GeneratedBegin)
	end := strings.Index(doc, GeneratedEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s: markers %q and %q not found", path, GeneratedBegin, GeneratedEnd)
	}
	want := doc[:begin] + GeneratedBegin + "\n\n" + Markdown() + "\n" + doc[end:]
	if want == doc {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("%s is stale: run go test ./xds/resource -run TestDocsUpToDate -update", path)
}
