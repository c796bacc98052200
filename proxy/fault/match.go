package fault

import (
	"strings"
)

// parseInt64 parses like absl::SimpleAtoi (surrounding blanks and a sign
// allowed) without the allocation strconv makes for its error.
func parseInt64(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	n, ok := parseDigits(s)
	if !ok {
		return 0, false
	}
	if neg {
		if n > 1<<63 {
			return 0, false
		}
		return -int64(n), true
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// parseUint64 parses an unsigned header value like absl::SimpleAtoi into a
// uint64: surrounding blanks and a '+' allowed, no '-'.
func parseUint64(s string) (uint64, bool) {
	s = strings.TrimSpace(s)
	if s != "" && s[0] == '+' {
		s = s[1:]
	}
	return parseDigits(s)
}

// parseDigits parses a non-empty run of decimal digits that fits a uint64.
func parseDigits(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
