package forward

import (
	"math"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzGRPCTimeout: ParseGRPCTimeout never panics, accepts exactly the
// spec's form (1 to 8 digits and a unit), and yields the value saturated
// at the largest Duration, never a negative or wrapped one. An accepted
// value formatted back (formatGRPCTimeout) parses to at most itself.
func FuzzGRPCTimeout(f *testing.F) {
	for _, s := range []string{"1S", "100m", "99999999H", "99999999M", "0n", "12345678u", "5", "", "S", "123456789S", "-1S", "1s", "+1S", "1 S", "00000001H"} {
		f.Add(s)
	}
	units := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseGRPCTimeout(http.Header{"Grpc-Timeout": {s}})
		// The reference: digits and a unit, computed without overflow.
		want, valid := big.NewInt(0), len(s) >= 2 && len(s) <= 9
		if valid {
			unit, known := units[s[len(s)-1]]
			valid = known
			for i := 0; valid && i < len(s)-1; i++ {
				valid = s[i] >= '0' && s[i] <= '9'
			}
			if valid {
				want.SetString(s[:len(s)-1], 10)
				want.Mul(want, big.NewInt(int64(unit)))
				if !want.IsInt64() {
					want.SetInt64(math.MaxInt64)
				}
			}
		}
		if ok != valid {
			t.Fatalf("%q: ok = %v, want %v", s, ok, valid)
		}
		if !ok {
			return
		}
		if d < 0 || d.Nanoseconds() != want.Int64() {
			t.Fatalf("%q: %d ns, want %s", s, d.Nanoseconds(), want)
		}
		back := formatGRPCTimeout(d)
		d2, ok := ParseGRPCTimeout(http.Header{"Grpc-Timeout": {back}})
		if !ok || d2 > d || d2 < 0 {
			t.Fatalf("%q -> %v -> %q -> %v (ok %v)", s, d, back, d2, ok)
		}
	})
}

// FuzzHopByHop strips hop-by-hop headers from requests with arbitrary
// Connection, TE and Upgrade values: none is left but te: trailers (when
// the client's TE names trailers) and, for an allowed upgrade, the
// Connection/Upgrade pair; every header the Connection header names is
// gone; everything else stays.
func FuzzHopByHop(f *testing.F) {
	f.Add("keep-alive, X-Drop", "trailers", "websocket", "x-drop", true)
	f.Add("close", "gzip, Trailers ;q=1", "", "x-other", false)
	f.Add(" ,, te ,upgrade", "trailers", "h2c", "te", true)
	f.Add("x-drop\x00, \u212a", "", "", "\u212a", false)
	f.Fuzz(func(t *testing.T, conn, te, up, named string, upgrade bool) {
		h := http.Header{"Keep-Alive": {"1"}, "Proxy-Connection": {"x"}, "Transfer-Encoding": {"chunked"}, "X-Keep": {"1"}}
		for k, v := range map[string]string{"Connection": conn, "Te": te, "Upgrade": up} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		if named != "" {
			h[http.CanonicalHeaderKey(named)] = []string{"v"}
		}
		allowed := ""
		if upgrade {
			allowed = "websocket"
		}
		PrepareRequestHeaders(h, allowed)

		teTrailers := false
		for t := range strings.SplitSeq(te, ",") {
			teTrailers = teTrailers || strings.EqualFold(strings.TrimSpace(t), "trailers")
		}
		for _, k := range hopByHop {
			vs, ok := h[k]
			switch {
			case !ok:
			case k == "Te" && teTrailers && len(vs) == 1 && vs[0] == "trailers":
			case upgrade && k == "Connection" && len(vs) == 1 && vs[0] == "Upgrade":
			case upgrade && k == "Upgrade" && (up == "" && vs == nil || len(vs) == 1 && vs[0] == up):
			default:
				t.Fatalf("hop-by-hop %s: %q left (connection %q, te %q, upgrade %q)", k, vs, conn, te, up)
			}
		}
		for tok := range strings.SplitSeq(conn, ",") {
			k := http.CanonicalHeaderKey(strings.TrimSpace(tok))
			if k == "" || k == "Te" && teTrailers || upgrade && (k == "Connection" || k == "Upgrade") {
				continue
			}
			if _, ok := h[k]; ok {
				t.Fatalf("connection %q names %s, still there", conn, k)
			}
		}
		nominated := func(k string) bool {
			for tok := range strings.SplitSeq(conn, ",") {
				if http.CanonicalHeaderKey(strings.TrimSpace(tok)) == k {
					return true
				}
			}
			return false
		}
		if _, ok := h["X-Keep"]; !ok && !nominated("X-Keep") {
			t.Fatalf("x-keep removed (connection %q)", conn)
		}
		if k := http.CanonicalHeaderKey(named); named != "" && !isHopByHop(k) && !nominated(k) {
			if _, ok := h[k]; !ok {
				t.Fatalf("%s removed (connection %q)", k, conn)
			}
		}
	})
}
