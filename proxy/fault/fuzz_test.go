package fault

import (
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/forward"
)

// FuzzFaultHeaders drives header_delay and header_abort with arbitrary
// x-envoy-fault-* values, which any client may send: the numbers are read
// as absl::SimpleAtoi reads them (Envoy's parser), a delay is never
// negative, an abort status is a valid HTTP status in [200, 600) or a
// gRPC status in [0, 16], a header percentage never raises the configured
// one, and a request that is aborted gets exactly that reply.
func FuzzFaultHeaders(f *testing.F) {
	f.Add("100", "", "503", "", "", false)
	f.Add(" +250 ", "50", "", "14", "100", true)
	f.Add("18446744073709551615", "4294967296", "199", "17", "4294967295", true)
	f.Add("9223372036855", "0", "600", "-1", "-1", false)
	f.Add("000000000000000000000001", "\u00a01", "abc", " 16 ", "\t7", true)
	f.Fuzz(func(t *testing.T, delay, delayPct, abort, grpcAbort, abortPct string, grpc bool) {
		for _, s := range []string{delay, delayPct, abort, grpcAbort, abortPct} {
			n, ok := parseUint64(s)
			want, wantOK := simpleAtou(s)
			if n != want || ok != wantOK {
				t.Fatalf("parseUint64(%q) = %d, %v; SimpleAtoi gives %d, %v", s, n, ok, want, wantOK)
			}
		}
		const configured = 30 // percent
		flt := New(&Config{
			Delay: &Delay{FromHeader: true, Percent: Percent(configured)},
			Abort: &Abort{Kind: AbortHeader, Percent: Percent(configured)},
		})
		r := httptest.NewRequest("POST", "http://example.com/a", nil)
		if grpc {
			r.Header.Set("Content-Type", "application/grpc")
		}
		for k, v := range map[string]string{HeaderDelayRequest: delay, HeaderDelayRequestPercentage: delayPct,
			HeaderAbortRequest: abort, HeaderAbortGRPCRequest: grpcAbort, HeaderAbortRequestPercentage: abortPct} {
			if v != "" {
				r.Header[k] = []string{v}
			}
		}
		for _, name := range []string{HeaderDelayRequestPercentage, HeaderAbortRequestPercentage} {
			p := headerPercent(r, name, Percent(configured))
			if p.Denominator != 100 || p.Numerator > configured {
				t.Fatalf("%s %q: fraction %+v above the configured %d%%", name, r.Header.Get(name), p, configured)
			}
		}

		var draws uint64
		flt.rand = func() uint64 { draws++; return 0 } // every draw hits
		d := flt.delayFor(flt.policy, r)
		if ms, ok := simpleAtou(delay); ok && delay != "" && headerPercent(r, HeaderDelayRequestPercentage, Percent(configured)).Numerator > 0 {
			want := time.Duration(math.MaxInt64)
			if ms <= math.MaxInt64/uint64(time.Millisecond) {
				want = time.Duration(ms) * time.Millisecond
			}
			if d != want {
				t.Fatalf("delay header %q: %v, want %v", delay, d, want)
			}
		} else if d != 0 {
			t.Fatalf("delay header %q (percentage %q): delayed %v", delay, delayPct, d)
		}

		hs, gs, ok := flt.abortFor(flt.policy, r)
		if !ok {
			return
		}
		if hs < 200 || hs >= 600 || gs != noGRPC && (gs < 0 || gs > 16 || hs != http.StatusOK) {
			t.Fatalf("abort headers %q/%q: status %d, grpc %d", abort, grpcAbort, hs, gs)
		}
		// The whole filter: a client gone at once skips any delay, then
		// the abort answers.
		ctx, cancel := context.WithCancel(context.Background())
		if d == 0 {
			defer cancel()
		} else {
			cancel()
		}
		w := httptest.NewRecorder()
		out := flt.Apply(w, r.WithContext(ctx), "c")
		if out.ClientGone {
			return
		}
		// A gRPC request gets a trailers-only reply: 200 and the gRPC
		// status, given or derived from the HTTP one.
		wantCode, wantGRPC := hs, ""
		if grpc {
			wantCode, wantGRPC = http.StatusOK, strconv.Itoa(gs)
			if gs == noGRPC {
				wantGRPC = strconv.Itoa(forward.HTTPToGRPCStatus(hs))
			}
		}
		if !out.Aborted || out.Status != wantCode || w.Code != wantCode || out.GRPCStatus != wantGRPC {
			t.Fatalf("abort %d/%d: outcome %+v, wrote %d; want %d, grpc-status %q", hs, gs, out, w.Code, wantCode, wantGRPC)
		}
		if got := w.Header().Get("Grpc-Status"); got != wantGRPC {
			t.Fatalf("abort %d/%d: grpc-status header %q, want %q", hs, gs, got, wantGRPC)
		}
	})
}

// simpleAtou is absl::SimpleAtoi for uint64: ASCII whitespace around, an
// optional '+', decimal digits (any number) whose value fits.
func simpleAtou(s string) (uint64, bool) {
	s = strings.Trim(s, " \t\n\v\f\r")
	s = strings.TrimPrefix(s, "+")
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}
