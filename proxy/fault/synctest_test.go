package fault

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"
)

// On fake time the delay is exactly the configured one, and the active
// fault gauge covers the delay and nothing after it.
func TestDelayTimingOnFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := New(&Config{Delay: &Delay{Fixed: 250 * time.Millisecond, Percent: Percent(100)}})
		done := make(chan Outcome, 1)
		start := time.Now()
		go func() { done <- f.Apply(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), "") }()
		synctest.Wait()
		if s := f.Stats(); s.ActiveFaults != 1 || s.DelaysInjected != 1 {
			t.Fatalf("during the delay: %+v", s)
		}
		out := <-done
		if el := time.Since(start); el != 250*time.Millisecond {
			t.Errorf("delay took %v on fake time, want exactly 250ms", el)
		}
		if out != (Outcome{Delayed: 250 * time.Millisecond, Flag: "DI"}) {
			t.Errorf("outcome %+v", out)
		}
		if s := f.Stats(); s.ActiveFaults != 0 {
			t.Errorf("after the delay: %+v", s)
		}
	})
}

// A client that leaves during a delay ends it at once (no time passes).
func TestClientGoneEndsDelayOnFakeTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := New(&Config{
			Delay: &Delay{FromHeader: true, Percent: Percent(100)},
			Abort: &Abort{Kind: AbortHTTP, HTTPStatus: 503, Percent: Percent(100)},
		})
		ctx, cancel := context.WithCancel(context.Background())
		r := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
		r.Header.Set(HeaderDelayRequest, "3600000")
		rec := httptest.NewRecorder()
		done := make(chan Outcome, 1)
		start := time.Now()
		go func() { done <- f.Apply(rec, r, "") }()
		synctest.Wait()
		cancel()
		out := <-done
		if el := time.Since(start); el != 0 {
			t.Errorf("%v passed, want none", el)
		}
		if out != (Outcome{Delayed: time.Hour, ClientGone: true, Status: 499, Flag: "DI,DC"}) {
			t.Errorf("outcome %+v", out)
		}
		if rec.Code != http.StatusOK || rec.Body.Len() != 0 || len(rec.Header()) != 0 {
			t.Errorf("something was written for a client that left: %d %v %q", rec.Code, rec.Header(), rec.Body)
		}
		if s := f.Stats(); s != (Stats{DelaysInjected: 1}) {
			t.Errorf("stats %+v: the abort must not follow a client that left", s)
		}
	})
}
