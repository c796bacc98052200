package resource

import (
	"google.golang.org/protobuf/proto"
)

// ValidationError is a failure of the proto's own ValidateAll() rules
// (protoc-gen-validate); Err names the offending fields.
type ValidationError struct {
	Path string // where the validated message sits, "" for the root
	Err  error
}

func (e *ValidationError) Error() string {
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
			return nil, &ValidationError{Path: prefix, Err: err}
		}
	}
	return CheckAt(prefix, m)
}
