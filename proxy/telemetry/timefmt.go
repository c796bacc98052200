package telemetry

import (
	"fmt"
	"strconv"
	"time"
)

// timePart is one piece of a START_TIME format: a literal or a specifier.
type timePart struct {
	lit  string
	spec byte // 'Y', 'm', 'd', 'H', 'M', 'S', 'z', 's', 'f' (with digits)
	// digits of %f: 1..9
	digits int
}

// parseTimeFormat compiles the strftime subset START_TIME(...) supports:
// %Y %m %d %H %M %S %z %s (Unix seconds), Envoy's %f and %1f..%9f
// (fraction of a second, %f is nanoseconds) and %E3S, %E6S, %E9S (seconds
// with that many fraction digits), and %% for a percent sign. Times are UTC.
func parseTimeFormat(s string) ([]timePart, error) {
	var parts []timePart
	lit := []byte{}
	flush := func() {
		if len(lit) > 0 {
			parts = append(parts, timePart{lit: string(lit)})
			lit = lit[:0]
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			lit = append(lit, s[i])
			continue
		}
		i++
		if i >= len(s) {
			return nil, fmt.Errorf("%w: START_TIME(%s): a trailing %%", ErrBadFormat, s)
		}
		switch c := s[i]; c {
		case '%':
			lit = append(lit, '%')
		case 'Y', 'm', 'd', 'H', 'M', 'S', 'z', 's':
			flush()
			parts = append(parts, timePart{spec: c})
		case 'f':
			flush()
			parts = append(parts, timePart{spec: 'f', digits: 9})
		case '1', '2', '3', '4', '5', '6', '7', '8', '9':
			if i+1 >= len(s) || s[i+1] != 'f' {
				return nil, fmt.Errorf("%w: START_TIME(%s): %%%c must be followed by f", ErrBadFormat, s, c)
			}
			flush()
			parts = append(parts, timePart{spec: 'f', digits: int(c - '0')})
			i++
		case 'E':
			if i+2 >= len(s) || s[i+1] < '1' || s[i+1] > '9' || s[i+2] != 'S' {
				return nil, fmt.Errorf("%w: START_TIME(%s): only %%E<n>S is supported after %%E", ErrBadFormat, s)
			}
			flush()
			parts = append(parts, timePart{spec: 'S'}, timePart{lit: "."}, timePart{spec: 'f', digits: int(s[i+1] - '0')})
			i += 2
		default:
			return nil, fmt.Errorf("%w: START_TIME(%s): specifier %%%c is not supported (%%Y %%m %%d %%H %%M %%S %%z %%s %%f %%<n>f %%E<n>S %%%%)", ErrBadFormat, s, c)
		}
	}
	flush()
	return parts, nil
}

func appendTime(b []byte, t time.Time, parts []timePart) []byte {
	t = t.UTC()
	for _, p := range parts {
		switch p.spec {
		case 0:
			b = append(b, p.lit...)
		case 'Y':
			b = appendPadded(b, t.Year(), 4)
		case 'm':
			b = appendPadded(b, int(t.Month()), 2)
		case 'd':
			b = appendPadded(b, t.Day(), 2)
		case 'H':
			b = appendPadded(b, t.Hour(), 2)
		case 'M':
			b = appendPadded(b, t.Minute(), 2)
		case 'S':
			b = appendPadded(b, t.Second(), 2)
		case 'z':
			b = append(b, "+0000"...)
		case 's':
			b = strconv.AppendInt(b, t.Unix(), 10)
		case 'f':
			ns := t.Nanosecond()
			for range 9 - p.digits {
				ns /= 10
			}
			b = appendPadded(b, ns, p.digits)
		}
	}
	return b
}

// appendPadded appends a non-negative n zero-padded to width digits.
func appendPadded(b []byte, n, width int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for n > 0 || width > 0 {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		width--
	}
	if i == len(tmp) {
		i--
		tmp[i] = '0'
	}
	return append(b, tmp[i:]...)
}
