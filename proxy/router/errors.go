package router

import (
	"errors"
	"fmt"
)

// ErrInvalidConfig is matched (errors.Is) by every error New returns, so a
// caller can tell a rejected configuration from other failures.
var ErrInvalidConfig = errors.New("invalid route configuration")

// ConfigError is a rejected route configuration. Field is the path of the
// offending field relative to the RouteConfiguration, spelled with Envoy's
// field names (e.g. "virtual_hosts[1].routes[0].match.headers[2].range_match")
// so proxy/snapshot can prefix its own path and report it as is.
type ConfigError struct {
	Field string
	Msg   string
	Err   error // underlying cause (e.g. a regexp error); may be nil
}

func (e *ConfigError) Error() string {
	s := e.Msg
	if e.Field != "" {
		s = e.Field + ": " + s
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap lets errors.Is find both ErrInvalidConfig and the cause.
func (e *ConfigError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInvalidConfig}
	}
	return []error{ErrInvalidConfig, e.Err}
}

func cfgErr(field, format string, args ...any) *ConfigError {
	return &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// join builds a child field path: join("a", "b") = "a.b".
func join(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

// idx builds an indexed child field path: idx("a", "b", 2) = "a.b[2]".
func idx(parent, child string, i int) string {
	return join(parent, fmt.Sprintf("%s[%d]", child, i))
}
