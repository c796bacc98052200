//go:build !linux

package cpscale

// RaiseFileLimit does nothing outside Linux.
func RaiseFileLimit(need int) error { return nil }
