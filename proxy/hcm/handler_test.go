package hcm

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/forward"
)

func TestGRPCTimeout(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1S", time.Second, true},
		{"100m", 100 * time.Millisecond, true},
		{"5M", 5 * time.Minute, true},
		{"2H", 2 * time.Hour, true},
		{"250u", 250 * time.Microsecond, true},
		{"99999999n", 99999999, true},
		{"", 0, false},
		{"S", 0, false},
		{"10x", 0, false},
		{"-1S", 0, false},
		{"1234567890S", 0, false}, // more than 8 digits
	} {
		h := http.Header{}
		if tc.in != "" {
			h.Set("Grpc-Timeout", tc.in)
		}
		got, ok := forward.ParseGRPCTimeout(h)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%q: got %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRequestIDIsUUIDv4(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := newRequestID()[0]
		if !uuidRE.MatchString(id) {
			t.Fatalf("%q is not a v4 UUID", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestClientAddress(t *testing.T) {
	for _, tc := range []struct {
		name   string
		remote bool
		hops   uint32
		xff    string
		want   string
	}{
		{"edge uses peer", true, 0, "1.1.1.1", "10.0.0.9"},
		{"no hops trusted: last xff", false, 0, "1.1.1.1, 2.2.2.2", "2.2.2.2"},
		{"one hop trusted", false, 1, "1.1.1.1, 2.2.2.2", "1.1.1.1"},
		{"too few entries: peer", false, 3, "1.1.1.1", "10.0.0.9"},
		{"no xff: peer", false, 0, "", "10.0.0.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Config{UseRemoteAddress: tc.remote, XFFNumTrustedHops: tc.hops}, nil, Deps{})
			r, _ := http.NewRequest("GET", "/", nil)
			r.RemoteAddr = "10.0.0.9:5555"
			if tc.xff != "" {
				r.Header.Set("X-Forwarded-For", tc.xff)
			}
			if got := h.ClientAddress(r); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
