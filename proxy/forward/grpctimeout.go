package forward

import (
	"math"
	"net/http"
	"strconv"
	"time"
)

// gRPC deadline propagation: a gRPC request forwarded under a route or
// per-try timeout carries the time left for that attempt in grpc-timeout, so
// the backend gives up when we do instead of working on for nobody.

// ParseGRPCTimeout parses a grpc-timeout value ("100m", "5S", ...): at most
// eight digits and a unit. A value past the largest Duration (eight digits
// of hours reach 11,000 years) is that largest Duration, as in grpc-go,
// never a wrapped negative one.
func ParseGRPCTimeout(h http.Header) (time.Duration, bool) {
	v := h["Grpc-Timeout"]
	if len(v) == 0 || len(v[0]) < 2 || len(v[0]) > 9 {
		return 0, false
	}
	s := v[0]
	var n int64
	for i := 0; i < len(s)-1; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	var unit time.Duration
	switch s[len(s)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	if n > math.MaxInt64/int64(unit) {
		return math.MaxInt64, true
	}
	return time.Duration(n) * unit, true
}

// maxGRPCTimeoutValue is the largest value of eight digits, the gRPC spec's
// limit.
const maxGRPCTimeoutValue = 99999999

// formatGRPCTimeout renders d as grpc-timeout in the finest unit that fits
// eight digits, as grpc-go does (Envoy writes whole milliseconds). The
// precision matters: the backend counts from when the request reaches it,
// so an exact budget ends there just after our own timer, and a reset it
// sends for its deadline finds ours expired (classifyTimed) instead of
// passing for an upstream failure. Truncated, so never longer than d.
func formatGRPCTimeout(d time.Duration) string {
	if d <= 0 {
		return "0n"
	}
	for _, u := range [...]struct {
		unit time.Duration
		name string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		if v := int64(d / u.unit); v <= maxGRPCTimeoutValue {
			return strconv.FormatInt(v, 10) + u.name
		}
	}
	v := min(int64(d/time.Hour), maxGRPCTimeoutValue)
	return strconv.FormatInt(v, 10) + "H"
}

// grpcBudget is the time an attempt may take as the backend should see it:
// the least of what is left before deadline (zero: none) and perTry (0:
// none), at least 1ms. ok is false when neither applies.
func grpcBudget(now, deadline time.Time, perTry time.Duration) (time.Duration, bool) {
	var d time.Duration
	ok := false
	if !deadline.IsZero() {
		d, ok = deadline.Sub(now), true
	}
	if perTry > 0 && (!ok || perTry < d) {
		d, ok = perTry, true
	}
	if ok && d < time.Millisecond {
		// Out of time, or nearly: a zero would read as "now" at best.
		// Our own timer ends the attempt in a moment anyway (Envoy
		// sends 1ms too).
		d = time.Millisecond
	}
	return d, ok
}
