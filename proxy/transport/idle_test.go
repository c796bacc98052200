package transport

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// ageIdle makes every idle HTTP/1.1 connection look idle for d longer.
func ageIdle(tr *Transport, d time.Duration) int {
	tr.h1.mu.Lock()
	defer tr.h1.mu.Unlock()
	n := 0
	for _, list := range tr.h1.idle {
		for _, pc := range list {
			pc.idleAt = pc.idleAt.Add(-d)
			n++
		}
	}
	return n
}

// IdleTimeout 0 disables the upstream idle timeout (Envoy's explicit
// idle_timeout: 0s) rather than meaning the 1h default: a connection idle
// for two hours is still reused; with the 1h timeout it is not.
func TestIdleTimeoutZeroDisables(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct {
		name   string
		idle   time.Duration
		opened int64
	}{
		{"disabled", 0, 1},
		{"1h", time.Hour, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := &connCounter{}
			tr := newTransport(t, Options{Conns: cc, IdleTimeout: tc.idle})
			get(t, tr, newRequest(t, t.Context(), tr, addr, "/"))
			if n := ageIdle(tr, 2*time.Hour); n != 1 {
				t.Fatalf("%d idle connections, want 1", n)
			}
			get(t, tr, newRequest(t, t.Context(), tr, addr, "/"))
			if n := cc.opened.Load(); n != tc.opened {
				t.Errorf("opened %d connections, want %d", n, tc.opened)
			}
		})
	}

	// The net/http transports (HTTP/2, and For's HTTP/1.1) get no limit.
	for _, p := range []Protocol{HTTP2, Downstream} {
		tr := newTransport(t, Options{Protocol: p})
		if d := tr.h2.IdleConnTimeout; d != 0 {
			t.Errorf("%v: h2 IdleConnTimeout %v, want 0 (no limit)", p, d)
		}
	}
	tr := newTransport(t, Options{Protocol: HTTP1})
	if d := tr.For(httptest.NewRequest("GET", "/", nil)).IdleConnTimeout; d != 0 {
		t.Errorf("For: IdleConnTimeout %v, want 0 (no limit)", d)
	}
	tr = newTransport(t, Options{Protocol: HTTP2, IdleTimeout: time.Minute})
	if d := tr.h2.IdleConnTimeout; d != time.Minute {
		t.Errorf("h2 IdleConnTimeout %v, want 1m", d)
	}
}

func TestNegativeIdleTimeout(t *testing.T) {
	_, err := New(Options{IdleTimeout: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "idle timeout -1s is negative") {
		t.Errorf("New with a negative idle timeout: %v", err)
	}
}

// With the idle timeout disabled nothing expires by age, but a pooled
// connection the upstream closed is dropped by the reaper instead of being
// held open (in CLOSE_WAIT) until a request picks it.
func TestIdleTimeoutDisabledDropsDeadConnections(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	t.Cleanup(srv.Close)
	addr := strings.TrimPrefix(srv.URL, "http://")
	tr := newTransport(t, Options{IdleTimeout: 0})
	get(t, tr, newRequest(t, t.Context(), tr, addr, "/"))
	get(t, tr, newRequest(t, t.Context(), tr, addr, "/"))
	if n := idleCount(tr); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	// Reaper rounds with the upstream still there keep the connection
	// (kick holds one: the second send waits until the first was taken).
	tr.h1.kick <- struct{}{}
	tr.h1.kick <- struct{}{}
	if n := idleCount(tr); n != 1 {
		t.Fatalf("after a round with a live upstream: %d idle connections, want 1", n)
	}
	srv.CloseClientConnections()
	deadline := time.Now().Add(5 * time.Second)
	for idleCount(tr) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the closed connection is still pooled")
		}
		select {
		case tr.h1.kick <- struct{}{}:
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func idleCount(tr *Transport) int {
	tr.h1.mu.Lock()
	defer tr.h1.mu.Unlock()
	n := 0
	for _, l := range tr.h1.idle {
		n += len(l)
	}
	return n
}
