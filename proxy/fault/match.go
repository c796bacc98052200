package fault

// parseInt64 parses like absl::SimpleAtoi (surrounding ASCII blanks and a
// sign allowed) without the allocation strconv makes for its error.
func parseInt64(s string) (int64, bool) {
	s = trimASCIISpace(s)
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
// uint64: surrounding ASCII blanks and a '+' allowed, no '-'.
func parseUint64(s string) (uint64, bool) {
	s = trimASCIISpace(s)
	if s != "" && s[0] == '+' {
		s = s[1:]
	}
	return parseDigits(s)
}

// parseDigits parses a non-empty run of decimal digits (leading zeros
// allowed, as absl does) that fits a uint64.
func parseDigits(s string) (uint64, bool) {
	if s == "" {
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

// trimASCIISpace trims what absl's ascii_isspace calls blank; unlike
// strings.TrimSpace it leaves Unicode spaces (U+00A0, U+0085, ...) alone,
// as Envoy does.
func trimASCIISpace(s string) string {
	isSpace := func(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }
	for s != "" && isSpace(s[0]) {
		s = s[1:]
	}
	for s != "" && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}
