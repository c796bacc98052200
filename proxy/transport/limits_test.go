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

// roundTripWithin sends one GET to addr and reads the body, bounded by d.
func roundTripWithin(t *testing.T, tr *Transport, addr, path string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	resp, err := tr.RoundTrip(newRequest(t, ctx, tr, addr, path))
	if err != nil {
		return err
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	return err
}

// TestH1LimitNeverStarvesANewHost: as in Envoy, an address with no
// connection may always open one, and an idle connection to another host
// gives its slot up, so a full cluster never starves a host (a rolling
// deploy replaces every endpoint while old idle connections linger).
func TestH1LimitNeverStarvesANewHost(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, "ok")
	})
	a, b := httptest.NewServer(h), httptest.NewServer(h)
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	t.Cleanup(func() { close(release) })
	aAddr, bAddr := a.Listener.Addr().String(), b.Listener.Addr().String()

	tr := newTransport(t, Options{MaxConnections: 1, MaxPendingRequests: 10})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(roundTripWithin(t, tr, aAddr, "/", 5*time.Second)) // A's connection now idle, holding the only slot
	must(roundTripWithin(t, tr, bAddr, "/", 5*time.Second)) // B has none: it may open one

	// Both hosts hold a connection; B's is busy. A second request to B
	// takes the slot of A's idle connection.
	tr2 := newTransport(t, Options{MaxConnections: 2, MaxPendingRequests: 10})
	must(roundTripWithin(t, tr2, aAddr, "/", 5*time.Second))
	slow := make(chan error, 1)
	go func() { slow <- roundTripWithin(t, tr2, bAddr, "/slow", 10*time.Second) }()
	waitUntil(t, "B's first request holding its connection", func() bool {
		tr2.h1.mu.Lock()
		defer tr2.h1.mu.Unlock()
		return tr2.h1.openBy[bAddr] == 1
	})
	must(roundTripWithin(t, tr2, bAddr, "/", 5*time.Second))
	release <- struct{}{}
	must(<-slow)
}

// TestH1ReturnedConnectionWakesItsOwnWaiter: a connection coming back to
// the pool wakes a request queued for its address, not merely the oldest
// waiter (which may want another host and go back to sleep).
func TestH1ReturnedConnectionWakesItsOwnWaiter(t *testing.T) {
	releaseA, releaseB := make(chan struct{}), make(chan struct{})
	var inside atomic.Int64
	handler := func(release chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				inside.Add(1)
				<-release
			}
			io.WriteString(w, "ok")
		}
	}
	a, b := httptest.NewServer(handler(releaseA)), httptest.NewServer(handler(releaseB))
	t.Cleanup(a.Close)
	t.Cleanup(b.Close)
	aAddr, bAddr := a.Listener.Addr().String(), b.Listener.Addr().String()
	oc := &overflowCounter{}
	tr := newTransport(t, Options{Conns: oc, MaxConnections: 2, MaxPendingRequests: 10})

	results := make(chan error, 4)
	go func() { results <- roundTripWithin(t, tr, aAddr, "/slow", 10*time.Second) }()
	go func() { results <- roundTripWithin(t, tr, bAddr, "/slow", 10*time.Second) }()
	waitUntil(t, "A and B each holding a connection", func() bool { return inside.Load() == 2 })
	waitA := make(chan error, 1)
	go func() { waitA <- roundTripWithin(t, tr, aAddr, "/", 5*time.Second) }() // queues first
	waitUntil(t, "the A request queued", func() bool { return oc.cx.Load() == 1 })
	waitB := make(chan error, 1)
	go func() { waitB <- roundTripWithin(t, tr, bAddr, "/", 5*time.Second) }()
	waitUntil(t, "the B request queued", func() bool { return oc.cx.Load() == 2 })

	close(releaseB) // B's connection comes back: the B waiter must get it
	if err := <-waitB; err != nil {
		t.Fatalf("the queued B request: %v", err)
	}
	close(releaseA)
	if err := <-waitA; err != nil {
		t.Fatalf("the queued A request: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := <-results; err != nil {
			t.Fatal(err)
		}
	}
}
