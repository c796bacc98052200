package transport

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// overflowCounter is a ConnObserver that also counts overflows.
type overflowCounter struct {
	connCounter
	cx, pending atomic.Int64
}

func (o *overflowCounter) ConnOverflow()    { o.cx.Add(1) }
func (o *overflowCounter) PendingOverflow() { o.pending.Add(1) }

// TestH1ConnectionLimit: with max_connections 2 and max_pending_requests 1,
// two slow requests hold both connections, a third waits for one, and a
// fourth is refused at once with KindOverflow; the waiting one is served on
// the connection the first frees, and no third connection is ever opened.
func TestH1ConnectionLimit(t *testing.T) {
	release := make(chan struct{})
	var inFlight atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	oc := &overflowCounter{}
	tr := newTransport(t, Options{Conns: oc, MaxConnections: 2, MaxPendingRequests: 1})

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	send := func(path string) {
		defer wg.Done()
		resp, err := tr.RoundTrip(newRequest(t, t.Context(), tr, addr, path))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		errs <- err
	}
	wg.Add(2)
	go send("/slow")
	go send("/slow")
	waitUntil(t, "two requests at the backend", func() bool { return inFlight.Load() == 2 })
	wg.Add(1)
	go send("/fast") // queues: both connections are busy
	waitUntil(t, "a request queued", func() bool { return oc.cx.Load() == 1 })

	_, err := tr.RoundTrip(newRequest(t, t.Context(), tr, addr, "/fast"))
	if !errors.Is(err, ErrOverflow) || KindOf(err) != KindOverflow {
		t.Fatalf("fourth request: err = %v, want an overflow", err)
	}
	if n := oc.pending.Load(); n != 1 {
		t.Fatalf("pending overflows = %d, want 1", n)
	}

	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a queued or slow request failed: %v", err)
		}
	}
	if n := oc.opened.Load(); n != 2 {
		t.Fatalf("opened %d connections, want 2 (the limit)", n)
	}
}

// TestH1PendingGivesUp: a queued request whose context ends leaves the
// queue with its context's error and frees its place.
func TestH1PendingGivesUp(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	addr := srv.Listener.Addr().String()
	tr := newTransport(t, Options{MaxConnections: 1, MaxPendingRequests: 1})
	go func() {
		if resp, err := tr.RoundTrip(newRequest(t, t.Context(), tr, addr, "/")); err == nil {
			resp.Body.Close()
		}
	}()
	waitUntil(t, "the connection taken", func() bool {
		tr.h1.mu.Lock()
		defer tr.h1.mu.Unlock()
		return tr.h1.open == 1
	})
	for i := 0; i < 2; i++ { // the second finds the queue free again
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		_, err := tr.RoundTrip(newRequest(t, ctx, tr, addr, "/"))
		cancel()
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("queued request %d: err = %v, want a timeout", i, err)
		}
	}
}
