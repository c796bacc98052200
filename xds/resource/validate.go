package resource

import (
	"google.golang.org/protobuf/proto"
)

// ValidationError is a failure of the proto's own ValidateAll() rules
// (protoc-gen-validate): Fields has one line per violation at its field's
// path; Err is the library's error.
type ValidationError struct {
	Path   string // where the validated message sits, "" for the root
	Err    error
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	if len(e.Fields) > 0 {
		return joinFields(e.Fields)
	}
	if e.Path == "" {
		return "invalid: " + e.Err.Error()
	}
	return e.Path + ": invalid: " + e.Err.Error()
}

func (e *ValidationError) Unwrap() error { return e.Err }

// Validate runs the message's ValidateAll() and then Check. Paths start at
// prefix. It returns the ignored operational fields set in m.
func Validate(prefix string, m proto.Message) (ignoredPaths []string, err error) {
	if v, ok := m.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return nil, &ValidationError{Path: prefix, Err: err, Fields: pgvFields(prefix, m.ProtoReflect().Descriptor(), err)}
		}
	}
	return CheckAt(prefix, m)
}
