package tailbench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// body is what every backend answers: small, so the figures are latency,
// not transfer.
var body = []byte("ok\n")

// Backend is one HTTP/1.1 upstream on loopback. It answers every GET after
// ServiceTime, except a deterministic SlowFraction of its requests (every
// tenth for 0.1), which it answers after SlowDelay instead. A request whose
// client leaves (the proxy cut the try) is counted as cut.
type Backend struct {
	name         string
	slowFraction float64
	slowDelay    time.Duration
	serviceTime  time.Duration

	ln  net.Listener
	srv *http.Server
	wg  sync.WaitGroup

	requests   atomic.Int64
	inFlight   atomic.Int64
	slowServed atomic.Int64
	slowCut    atomic.Int64

	errMu    sync.Mutex
	serveErr error
}

// BackendCounts are a backend's counters at one moment.
type BackendCounts struct {
	// Requests is every request received (proxy attempts included).
	Requests int64
	// SlowServed counts slow requests answered after the whole delay;
	// SlowCut those whose client left before it.
	SlowServed int64
	SlowCut    int64
}

// Sub is the growth from before to c.
func (c BackendCounts) Sub(before BackendCounts) BackendCounts {
	return BackendCounts{
		Requests:   c.Requests - before.Requests,
		SlowServed: c.SlowServed - before.SlowServed,
		SlowCut:    c.SlowCut - before.SlowCut,
	}
}

// StartBackend listens on 127.0.0.1:0 and serves until Close. A zero
// slowFraction makes a fast backend.
func StartBackend(name string, serviceTime time.Duration, slowFraction float64, slowDelay time.Duration) (*Backend, error) {
	if serviceTime < 0 || slowDelay < 0 {
		return nil, fmt.Errorf("tailbench: backend %s: negative delay (service %v, slow %v)", name, serviceTime, slowDelay)
	}
	if !(slowFraction >= 0 && slowFraction <= 1) {
		return nil, fmt.Errorf("tailbench: backend %s: slow fraction %v outside [0, 1]", name, slowFraction)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("tailbench: backend %s: listen: %w", name, err)
	}
	b := &Backend{name: name, slowFraction: slowFraction, slowDelay: slowDelay, serviceTime: serviceTime, ln: ln}
	b.srv = &http.Server{
		Handler:           http.HandlerFunc(b.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
	}
	b.wg.Go(func() {
		if err := b.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.errMu.Lock()
			b.serveErr = fmt.Errorf("tailbench: backend %s: serve: %w", name, err)
			b.errMu.Unlock()
		}
	})
	return b, nil
}

// Name is the backend's label in the report.
func (b *Backend) Name() string { return b.name }

// Addr is the bound host:port.
func (b *Backend) Addr() string { return b.ln.Addr().String() }

// Counts reads the counters.
func (b *Backend) Counts() BackendCounts {
	return BackendCounts{Requests: b.requests.Load(), SlowServed: b.slowServed.Load(), SlowCut: b.slowCut.Load()}
}

// InFlight is how many requests are in the handler now.
func (b *Backend) InFlight() int64 { return b.inFlight.Load() }

// Close stops the server, waits for it and returns any serve error.
func (b *Backend) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := b.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(err, b.srv.Close())
	}
	b.wg.Wait()
	b.errMu.Lock()
	defer b.errMu.Unlock()
	return errors.Join(err, b.serveErr)
}

// isSlow says whether the k-th request (from 1) is a slow one: the slow
// requests are spread evenly, so a run of N requests has N*f of them
// whatever the interleaving with other backends.
func isSlow(k int64, f float64) bool {
	if f <= 0 {
		return false
	}
	return math.Floor(float64(k)*f) > math.Floor(float64(k-1)*f)
}

func (b *Backend) serveHTTP(w http.ResponseWriter, r *http.Request) {
	b.inFlight.Add(1)
	defer b.inFlight.Add(-1)
	slow := isSlow(b.requests.Add(1), b.slowFraction)
	delay := b.serviceTime
	if slow {
		delay = b.slowDelay
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			if slow {
				b.slowCut.Add(1)
			}
			return
		}
	}
	if slow {
		b.slowServed.Add(1)
	}
	w.Header()["Content-Type"] = []string{"text/plain"}
	w.Header()["Content-Length"] = []string{strconv.Itoa(len(body))}
	_, _ = w.Write(body)
}
