package httpwire

import "testing"

func TestParseChunkSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"a", 10, true}, {"FF", 255, true}, {"1f4", 500, true},
		{"7fffffffffffffff", 0x7fffffffffffffff, true},
		{"8000000000000000", 0, false},  // overflows int64
		{"10000000000000000", 0, false}, // 17 digits
		{"", 0, false}, {"0x10", 0, false}, {"-1", 0, false}, {"1 ", 0, false}, {"g", 0, false},
	} {
		got, ok := ParseChunkSize([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: got %d %v, want %d %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestIsToken(t *testing.T) {
	for in, want := range map[string]bool{
		"GET": true, "X-Custom_1": true, "a!#$%&'*+-.^_`|~z": true,
		"": false, "a b": false, "a:b": false, "é": false, "a\x00": false, "(x)": false,
	} {
		if got := IsToken(in); got != want {
			t.Errorf("IsToken(%q) = %v, want %v", in, got, want)
		}
	}
}
