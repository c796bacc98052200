// Package httpwire holds the HTTP/1.1 wire syntax that the server codec
// (proxy/listener/h1) and the upstream client (proxy/transport) must agree
// on byte for byte, so it is written once.
package httpwire

import "math"

// tokenTable marks RFC 9110 tchar bytes (§5.6.2): what a method or a
// header name may hold.
var tokenTable = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// IsTokenByte reports whether c may appear in a token.
func IsTokenByte(c byte) bool { return tokenTable[c] }

// IsToken reports whether s is a non-empty token.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenTable[s[i]] {
			return false
		}
	}
	return true
}

// ParseChunkSize parses a chunk-size (RFC 9112 §7.1): 1 to 16 hex digits
// (net/http's limit) whose value fits an int64. Extensions and whitespace
// must already be cut off by the caller.
func ParseChunkSize(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 16 {
		return 0, false
	}
	var n uint64
	for _, b := range v {
		switch {
		case '0' <= b && b <= '9':
			b -= '0'
		case 'a' <= b && b <= 'f':
			b = b - 'a' + 10
		case 'A' <= b && b <= 'F':
			b = b - 'A' + 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(b)
	}
	if n > math.MaxInt64 {
		return 0, false
	}
	return int64(n), true
}
