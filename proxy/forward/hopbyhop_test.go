package forward

import (
	"net/http"
	"reflect"
	"strconv"
	"testing"
)

func TestIsHopByHopMatchesList(t *testing.T) {
	for _, k := range hopByHop {
		if !isHopByHop(k) {
			t.Errorf("isHopByHop(%q) = false, but it is in hopByHop", k)
		}
	}
	for _, k := range []string{"Host", "Content-Length", "Content-Type", "X-Upgrade", "te", "Tee"} {
		if isHopByHop(k) {
			t.Errorf("isHopByHop(%q) = true, want false", k)
		}
	}
}

func TestRemoveHopByHop(t *testing.T) {
	// many makes a map with at least as many entries as hopByHop, so the
	// list walk runs instead of the map walk.
	many := func(h http.Header) http.Header {
		for i := range len(hopByHop) {
			h["X-Filler-"+strconv.Itoa(i)] = []string{"f"}
		}
		return h
	}
	tests := []struct {
		name string
		in   http.Header
		want http.Header
	}{
		{
			name: "small map",
			in:   http.Header{"Connection": {"keep-alive, X-Private"}, "X-Private": {"p"}, "Keep-Alive": {"timeout=5"}, "Te": {"trailers"}, "Content-Type": {"text/plain"}},
			want: http.Header{"Content-Type": {"text/plain"}},
		},
		{
			name: "nothing to remove",
			in:   http.Header{"Content-Type": {"text/plain"}, "Date": {"d"}},
			want: http.Header{"Content-Type": {"text/plain"}, "Date": {"d"}},
		},
		{
			name: "large map",
			in:   many(http.Header{"Connection": {"X-Private"}, "X-Private": {"p"}, "Upgrade": {"h2c"}, "Transfer-Encoding": {"chunked"}, "Content-Type": {"text/plain"}}),
			want: many(http.Header{"Content-Type": {"text/plain"}}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			removeHopByHop(tt.in)
			if !reflect.DeepEqual(tt.in, tt.want) {
				t.Fatalf("after removeHopByHop: %v, want %v", tt.in, tt.want)
			}
		})
	}
}
