package resource

import (
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Markdown renders the support table: the typed extensions, then for every
// message the fields we implement, those we ignore and those we reject.
// docs/configuration.md embeds it between GeneratedBegin and GeneratedEnd.
func Markdown() string {
	var b strings.Builder
	b.WriteString("### Typed extensions\n\n")
	b.WriteString("| extension | type URL | where |\n|---|---|---|\n")
	for _, e := range Extensions {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", e.Name, e.TypeURL(), e.Where)
	}
	b.WriteString("\nAny other `@type` is rejected with its field path.\n\n")
	b.WriteString("### Fields by message\n\n")
	b.WriteString("Fields are listed in proto order. *Supported* fields are implemented (allowed enum values in\n")
	b.WriteString("brackets); *ignored* fields are accepted, have no effect and are logged once; every other field\n")
	b.WriteString("is *rejected* with its path when set. Well-known types (`Duration`, wrappers, `Struct`) are values.\n\n")
	b.WriteString("| message | supported | ignored | rejected when set |\n|---|---|---|---|\n")
	for _, m := range Messages {
		var sup, ign, rej []string
		for _, fd := range fieldsOf(m.Name) {
			name := string(fd.Name())
			f, ok := m.Fields[name]
			switch {
			case !ok:
				rej = append(rej, "`"+name+"`")
			case f.Ignored:
				ign = append(ign, "`"+name+"`"+noteOf(f))
			default:
				sup = append(sup, "`"+name+"`"+enumsOf(f)+noteOf(f))
			}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", m.Name, list(sup), list(ign), list(rej))
	}
	return b.String()
}

// fieldsOf returns the fields of a message type in field-number order.
func fieldsOf(name protoreflect.FullName) []protoreflect.FieldDescriptor {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		return nil
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil
	}
	return sortedFields(md)
}

func sortedFields(md protoreflect.MessageDescriptor) []protoreflect.FieldDescriptor {
	fds := make([]protoreflect.FieldDescriptor, md.Fields().Len())
	for i := range fds {
		fds[i] = md.Fields().Get(i)
	}
	sort.Slice(fds, func(i, j int) bool { return fds[i].Number() < fds[j].Number() })
	return fds
}

func enumsOf(f Field) string {
	if len(f.Enums) == 0 {
		return ""
	}
	return " [" + strings.Join(f.Enums, ", ") + "]"
}

func noteOf(f Field) string {
	if f.Note == "" {
		return ""
	}
	return " (" + strings.ReplaceAll(f.Note, "|", `\|`) + ")"
}

func list(items []string) string {
	if len(items) == 0 {
		return "—"
	}
	return strings.Join(items, ", ")
}

// Markers around the generated section of docs/configuration.md.
const (
	GeneratedBegin = "<!-- BEGIN GENERATED: xds/resource support table; refresh with go test ./xds/resource -update -->"
	GeneratedEnd   = "<!-- END GENERATED -->"
)
