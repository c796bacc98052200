package resource

import (
	"errors"
	"fmt"
	"strings"
)

// FieldError is one problem at one field path, e.g.
// "static_resources.clusters[1].lb_subset_config: Cluster.lb_subset_config is not supported yet".
type FieldError struct {
	Path   string
	Reason string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Reason
	}
	return e.Path + ": " + e.Reason
}

// UnsupportedError lists every set field, enum value or typed extension of a
// resource that Outrigger does not implement.
type UnsupportedError struct {
	Fields []FieldError
}

func (e *UnsupportedError) Error() string { return joinFields(e.Fields) }

// InvalidError lists fields whose values cannot be used: a bad regex, a
// missing certificate, a reference to a cluster that does not exist.
type InvalidError struct {
	Fields []FieldError
}

func (e *InvalidError) Error() string { return joinFields(e.Fields) }

func joinFields(fs []FieldError) string {
	lines := make([]string, len(fs))
	for i, f := range fs {
		lines[i] = f.Error()
	}
	return strings.Join(lines, "\n")
}

// Join builds a path: Join("a", "b") is "a.b"; an empty side is dropped.
func Join(path, field string) string {
	switch {
	case path == "":
		return field
	case field == "":
		return path
	}
	return path + "." + field
}

// Index appends a list index: Index("clusters", 1) is "clusters[1]".
func Index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// Key appends a map key: Key("m", "k") is `m["k"]`.
func Key(path string, key string) string { return fmt.Sprintf("%s[%q]", path, key) }

// Prefix returns err with prefix joined in front of every field path of an
// UnsupportedError, InvalidError or ValidationError it holds; other errors are returned as
// they are.
func Prefix(err error, prefix string) error {
	var u *UnsupportedError
	if errors.As(err, &u) {
		return &UnsupportedError{Fields: prefixed(u.Fields, prefix)}
	}
	var inv *InvalidError
	if errors.As(err, &inv) {
		return &InvalidError{Fields: prefixed(inv.Fields, prefix)}
	}
	var v *ValidationError
	if errors.As(err, &v) {
		return &ValidationError{Path: joinPrefix(prefix, v.Path), Err: v.Err, Fields: prefixed(v.Fields, prefix)}
	}
	return err
}

func prefixed(fs []FieldError, prefix string) []FieldError {
	out := make([]FieldError, len(fs))
	for i, f := range fs {
		out[i] = FieldError{Path: joinPrefix(prefix, f.Path), Reason: f.Reason}
	}
	return out
}

// joinPrefix joins without a dot when the path starts with an index.
func joinPrefix(prefix, path string) string {
	if strings.HasPrefix(path, "[") {
		return prefix + path
	}
	return Join(prefix, path)
}
