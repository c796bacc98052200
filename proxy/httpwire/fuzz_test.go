package httpwire

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzParseChunkSize checks the chunk-size parser both HTTP/1.1 codecs
// use against strconv: 1 to 16 hex digits, nothing else, a value that
// fits an int64.
func FuzzParseChunkSize(f *testing.F) {
	for _, s := range []string{"0", "a", "FF", "7fffffffffffffff", "8000000000000000", "ffffffffffffffff", "00000000000000001",
		"", "-1", "+1", "0x10", "1_0", " 1", "1;ext", "g"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		got, ok := ParseChunkSize(v)
		s := string(v)
		want, err := strconv.ParseInt(s, 16, 64)
		wantOK := err == nil && len(s) >= 1 && len(s) <= 16 && strings.Trim(s, "0123456789abcdefABCDEF") == ""
		if ok != wantOK || ok && got != want {
			t.Fatalf("ParseChunkSize(%q) = %d, %v; want %d, %v", s, got, ok, want, wantOK)
		}
		if ok && got < 0 {
			t.Fatalf("ParseChunkSize(%q) = %d", s, got)
		}
	})
}
