package forward

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// The backend sees the attempt's budget in grpc-timeout, never more than
// the client asked.
func TestGRPCTimeoutPropagated(t *testing.T) {
	seen := make(chan string, 4)
	rec := backend(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Grpc-Timeout")
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "0")
	})
	grpc := http.Header{"Content-Type": {"application/grpc"}, "Te": {"trailers"}}
	for _, tt := range []struct {
		name   string
		client string
		route  time.Duration
		retry  *router.RetryPolicy
		max    time.Duration
		hedge  bool
	}{
		{"route timeout", "10S", 2 * time.Second, nil, 2 * time.Second, false},
		{"client shorter", "300m", 5 * time.Second, nil, 300 * time.Millisecond, false},
		{"per-try timeout", "10S", 5 * time.Second, &router.RetryPolicy{On: router.RetryGRPCUnavailable, NumRetries: 1, PerTryTimeout: time.Second}, time.Second, false},
		{"retry, client shorter", "700m", 5 * time.Second, &router.RetryPolicy{On: router.RetryGRPCUnavailable, NumRetries: 1}, 700 * time.Millisecond, false},
		// A hedged attempt is not reset at its per-try timeout, so the
		// backend may take the route's whole budget.
		{"hedged", "10S", 3 * time.Second, &router.RetryPolicy{On: router.RetryGRPCUnavailable, NumRetries: 1, PerTryTimeout: time.Second}, 3 * time.Second, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := newTestUpstream(t, rec)
			url, results := startProxy(t, func(r *http.Request, p *Params) {
				p.Upstream = up
				p.Timeout = tt.route
				p.Retry = tt.retry
				p.Hedge = tt.hedge
			})
			h := grpc.Clone()
			h.Set("Grpc-Timeout", tt.client)
			send(t, "POST", url, h, []byte{0, 0, 0, 0, 0})
			result(t, results)
			got := <-seen
			d, ok := ParseGRPCTimeout(http.Header{"Grpc-Timeout": {got}})
			if !ok || d > tt.max || d < tt.max-time.Second/2 {
				t.Fatalf("backend saw grpc-timeout %q, want at most %v (and not much less)", got, tt.max)
			}
		})
	}
}

// A gRPC request without any timeout keeps the client's grpc-timeout.
func TestGRPCTimeoutUntouchedWithoutTimeouts(t *testing.T) {
	seen := make(chan string, 1)
	up := newTestUpstream(t, backend(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Grpc-Timeout")
	}))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Timeout = 0
		p.Retry = retryOn(router.RetryGRPCUnavailable, 1)
	})
	send(t, "POST", url, http.Header{"Content-Type": {"application/grpc"}, "Grpc-Timeout": {"3S"}}, []byte{0})
	result(t, results)
	if got := <-seen; got != "3S" {
		t.Fatalf("backend saw %q, want the client's 3S", got)
	}
}

func TestGRPCTimeoutFormat(t *testing.T) {
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0n"},
		{-time.Second, "0n"},
		{500 * time.Microsecond, "500000n"},
		{99999999 * time.Nanosecond, "99999999n"},
		{123 * time.Millisecond, "123000u"},
		{1500*time.Millisecond + 700*time.Nanosecond, "1500000u"},
		{99999999 * time.Microsecond, "99999999u"},
		{100 * time.Second, "100000m"},
		{100000 * time.Second, "100000S"},
		{200000000 * time.Second, "3333333M"},
		{1752000 * time.Hour, "1752000H"},
	} {
		got := formatGRPCTimeout(tt.d)
		if got != tt.want {
			t.Errorf("format(%v) = %q, want %q", tt.d, got, tt.want)
		}
		if back, ok := ParseGRPCTimeout(http.Header{"Grpc-Timeout": {got}}); !ok || back > tt.d && tt.d > 0 {
			t.Errorf("parse(%q) = %v, %v: must not exceed %v", got, back, ok, tt.d)
		}
	}
	for _, bad := range []string{"", "5", "123456789m", "12x", "-1m", "1.5S"} {
		if _, ok := ParseGRPCTimeout(http.Header{"Grpc-Timeout": {bad}}); ok {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
	if d, ok := ParseGRPCTimeout(http.Header{"Grpc-Timeout": {"2M"}}); !ok || d != 2*time.Minute {
		t.Errorf("parse(2M) = %v %v", d, ok)
	}
}

func TestGRPCBudget(t *testing.T) {
	now := time.Unix(1000, 0)
	if _, ok := grpcBudget(now, time.Time{}, 0); ok {
		t.Error("no timeout gave a budget")
	}
	if d, _ := grpcBudget(now, now.Add(3*time.Second), 0); d != 3*time.Second {
		t.Errorf("deadline only: %v", d)
	}
	if d, _ := grpcBudget(now, now.Add(3*time.Second), time.Second); d != time.Second {
		t.Errorf("per-try shorter: %v", d)
	}
	if d, _ := grpcBudget(now, now.Add(time.Second), 3*time.Second); d != time.Second {
		t.Errorf("deadline shorter: %v", d)
	}
	if d, _ := grpcBudget(now, time.Time{}, 2*time.Second); d != 2*time.Second {
		t.Errorf("per-try only: %v", d)
	}
	if d, _ := grpcBudget(now, now.Add(-time.Second), 0); d != time.Millisecond {
		t.Errorf("past the deadline: %v, want 1ms", d)
	}
}

// A gRPC call retried on UNAVAILABLE gets the second host's body and
// trailers intact.
func TestGRPCRetryKeepsTrailers(t *testing.T) {
	unavailable := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "14")
	})
	ok := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status, X-Trailer")
		w.Write([]byte{0, 0, 0, 0, 1, 'x'})
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set("X-Trailer", "kept")
	})
	up := newTestUpstream(t, unavailable, ok)
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.RetryGRPCUnavailable, 1)
	})
	req, _ := http.NewRequest("POST", url, bytes.NewReader([]byte{0, 0, 0, 0, 0}))
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	res := result(t, results)
	if res.Attempts != 2 || res.GRPCStatus != "0" || string(body) != "\x00\x00\x00\x00\x01x" {
		t.Fatalf("result %+v, body %q: want the second host's answer", res, body)
	}
	if resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("X-Trailer") != "kept" {
		t.Errorf("trailers %v", resp.Trailer)
	}
}
