package resource

import (
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// pgvError is what protoc-gen-validate generates for every message: one
// violation, at a field named the Go way ("Clusters[1]", "RingHashLbConfig",
// "TypedExtensionProtocolOptions[key]"), with the nested message's errors as
// its cause.
type pgvError interface {
	error
	Field() string
	Reason() string
	Cause() error
}

// pgvFields turns the errors of a ValidateAll() on a message of type md at
// path into one FieldError per violation, each at its field's proto path
// ("static_resources.clusters[1].ring_hash_lb_config.maximum_ring_size").
// What it cannot place stays at path with the library's text.
func pgvFields(path string, md protoreflect.MessageDescriptor, err error) []FieldError {
	if multi, ok := err.(interface{ AllErrors() []error }); ok {
		var out []FieldError
		for _, e := range multi.AllErrors() {
			if e != nil {
				out = append(out, pgvFields(path, md, e)...)
			}
		}
		return out
	}
	v, ok := err.(pgvError)
	if !ok || md == nil {
		return []FieldError{{Path: path, Reason: "invalid: " + err.Error()}}
	}
	goName, sub, _ := strings.Cut(v.Field(), "[")
	fd := fieldByGoName(md, goName)
	if fd == nil {
		if od := oneofByGoName(md, goName); od != nil {
			// A required oneof left empty: name the choices.
			names := make([]string, od.Fields().Len())
			for i := range names {
				names[i] = string(od.Fields().Get(i).Name())
			}
			return []FieldError{{Path: Join(path, string(od.Name())), Reason: v.Reason() + " (one of " + strings.Join(names, ", ") + ")"}}
		}
		return []FieldError{{Path: path, Reason: "invalid: " + err.Error()}}
	}
	p := Join(path, string(fd.Name()))
	child := fd.Message()
	if sub != "" {
		sub = strings.TrimSuffix(sub, "]")
		switch {
		case fd.IsMap():
			p = Key(p, sub)
			child = fd.MapValue().Message()
		case fd.IsList():
			if i, err := strconv.Atoi(sub); err == nil {
				p = Index(p, i)
			} else {
				p += "[" + sub + "]"
			}
		}
	}
	switch c := v.Cause(); c.(type) {
	case nil:
	case pgvError, interface{ AllErrors() []error }:
		// An embedded message's own violations.
		if child != nil {
			if nested := pgvFields(p, child, c); len(nested) > 0 {
				return nested
			}
		}
	default:
		// The rule's reason with what made it fail (a duration out of
		// range, ...).
		return []FieldError{{Path: p, Reason: v.Reason() + ": " + c.Error()}}
	}
	return []FieldError{{Path: p, Reason: v.Reason()}}
}

// fieldByGoName finds md's field whose generated Go name is goName
// (protoc-gen-go drops underscores and capitalises: max_requests_per_connection
// is MaxRequestsPerConnection, but an underscore before a digit stays:
// enforcing_consecutive_5xx is EnforcingConsecutive_5Xx), oneof members
// included.
func fieldByGoName(md protoreflect.MessageDescriptor, goName string) protoreflect.FieldDescriptor {
	want := nameKey(goName)
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if nameKey(string(fd.Name())) == want {
			return fd
		}
	}
	return nil
}

// oneofByGoName finds md's oneof whose generated Go name is goName.
func oneofByGoName(md protoreflect.MessageDescriptor, goName string) protoreflect.OneofDescriptor {
	want := nameKey(goName)
	oneofs := md.Oneofs()
	for i := 0; i < oneofs.Len(); i++ {
		if od := oneofs.Get(i); nameKey(string(od.Name())) == want {
			return od
		}
	}
	return nil
}

// nameKey is what a proto name and its generated Go name have in common:
// the letters and digits, lower-cased.
func nameKey(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
