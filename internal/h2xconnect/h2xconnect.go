// Package h2xconnect turns on RFC 8441 extended CONNECT (WebSocket over
// HTTP/2) in Go's HTTP/2 servers, net/http's bundled copy and
// golang.org/x/net/http2, for the whole process.
//
// Both servers leave SETTINGS_ENABLE_CONNECT_PROTOCOL off (and reset any
// stream carrying :protocol) unless the GODEBUG environment variable holds
// "http2xconnect=1" when their package's init function runs: they read
// os.Getenv("GODEBUG") once, in init. A //go:debug directive does not
// help, since they read the variable rather than the godebug setting.
//
// Importing this package (for its side effect) appends "http2xconnect=1" to
// GODEBUG in its own init, which the Go spec orders before theirs: since Go
// 1.21 the packages of a program are initialized one at a time, each step
// taking the first uninitialized package, sorted by import path, whose
// imports are all initialized. This package imports only os and strings,
// which net/http and golang.org/x/net/http2 import too, so whenever either
// of them is ready to initialize this package is as well, and its path
// ("github.com/...") sorts before "golang.org/..." and "net/http".
//
// A GODEBUG that already names http2xconnect (say "http2xconnect=0") is
// left alone, so an operator can still turn the feature off. The variable
// is inherited by child processes, which then enable it too.
package h2xconnect

import (
	"os"
	"strings"
)

// Setting is the GODEBUG entry this package adds.
const Setting = "http2xconnect=1"

// Applied reports whether this package's init added Setting to GODEBUG
// (false when GODEBUG already named http2xconnect).
var Applied bool

func init() {
	v, changed := withSetting(os.Getenv("GODEBUG"))
	if !changed {
		return
	}
	if err := os.Setenv("GODEBUG", v); err == nil {
		Applied = true
	}
}

// withSetting returns godebug with Setting appended, and whether it
// changed; a value that already mentions http2xconnect is kept as is.
func withSetting(godebug string) (string, bool) {
	for _, kv := range strings.Split(godebug, ",") {
		if k, _, _ := strings.Cut(strings.TrimSpace(kv), "="); k == "http2xconnect" {
			return godebug, false
		}
	}
	if strings.TrimSpace(godebug) == "" {
		return Setting, true
	}
	return godebug + "," + Setting, true
}
