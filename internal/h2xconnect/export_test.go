package h2xconnect

// WithSetting exposes withSetting to the external test package. This file
// must import nothing: the internal test files are compiled into the
// package itself, and an import of net/http here would make net/http
// initialize first.
var WithSetting = withSetting
