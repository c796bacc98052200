package forward

import (
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/transport"
)

// On a per-try timeout the hedge's fast answer wins and the slow attempt
// is canceled.
func TestHedgeOnPerTryTimeout(t *testing.T) {
	canceled := make(chan string, 4)
	up := newTestUpstream(t, hanging(t, canceled, "slow"), status(t, 200, "fast"))
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 1)
		p.Retry.PerTryTimeout = 50 * time.Millisecond
		p.Hedge = true
	})
	code, body := get(t, url, nil)
	res := result(t, results)
	if code != 200 || body != "fast" || res.UpstreamHost != up.hosts[1].Address || res.Attempts != 2 {
		t.Fatalf("got %d %q from %s after %d attempts, want the hedge's answer", code, body, res.UpstreamHost, res.Attempts)
	}
	select {
	case name := <-canceled:
		if name != "slow" {
			t.Fatalf("%s canceled", name)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the losing attempt was not canceled")
	}
	// The cluster counts the loser as canceled (not as a timeout or reset).
	waitFor(t, func() bool { return len(up.roundTripErrors()) == 1 }, "the loser's round trip to end")
	if err := up.roundTripErrors()[0]; transport.KindOf(err) != transport.KindCanceled {
		t.Errorf("loser's round trip ended with %v (kind %v), want canceled", err, transport.KindOf(err))
	}
	if admitted, released := up.accounting(); admitted != 1 || !slices.Equal(released, []bool{true}) {
		t.Errorf("admitted %d, released %v; want the hedge released as a success", admitted, released)
	}
}

// With hedging, a slow attempt that answers while its hedge is still out
// wins if its answer is good; a retriable answer of the hedge is dropped
// while the first may still answer.
func TestHedgeKeepsSlowAttempt(t *testing.T) {
	release := make(chan struct{})
	slow := backend(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "slow")
	})
	failing := backend(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
		close(release) // the slow one answers after the hedge failed
	})
	up := newTestUpstream(t, slow, failing)
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 1)
		p.Retry.PerTryTimeout = 50 * time.Millisecond
		p.Hedge = true
	})
	code, body := get(t, url, nil)
	res := result(t, results)
	if code != 200 || body != "slow" || res.UpstreamHost != up.hosts[0].Address {
		t.Fatalf("got %d %q from %s, want the first attempt's late answer", code, body, res.UpstreamHost)
	}
}

// A hedged POST sends the whole buffered body to both attempts.
func TestHedgeReplaysBody(t *testing.T) {
	var mu sync.Mutex
	var bodies []string
	record := func(w http.ResponseWriter, r *http.Request) string {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, string(b))
		mu.Unlock()
		return string(b)
	}
	canceled := make(chan struct{}, 1)
	slow := backend(t, func(w http.ResponseWriter, r *http.Request) {
		record(w, r)
		<-r.Context().Done()
		canceled <- struct{}{}
	})
	fast := backend(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "fast:"+record(w, r))
	})
	up := newTestUpstream(t, slow, fast)
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 1)
		p.Retry.PerTryTimeout = 50 * time.Millisecond
		p.Hedge = true
	})
	code, body := send(t, "POST", url, nil, []byte("the body"))
	res := result(t, results)
	if code != 200 || body != "fast:the body" || res.Attempts != 2 {
		t.Fatalf("got %d %q after %d attempts", code, body, res.Attempts)
	}
	<-canceled
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(bodies, []string{"the body", "the body"}) {
		t.Errorf("bodies %q", bodies)
	}
}

// Hedging refused by the breakers leaves the first attempt to answer.
func TestHedgeRefusedKeepsWaiting(t *testing.T) {
	slowAnswer := backend(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond) // longer than the per-try timeout
		io.WriteString(w, "slow")
	})
	up := newTestUpstream(t, slowAnswer)
	up.admits = 0
	url, results := startProxy(t, func(r *http.Request, p *Params) {
		p.Upstream = up
		p.Retry = retryOn(router.Retry5xx, 1)
		p.Retry.PerTryTimeout = 30 * time.Millisecond
		p.Hedge = true
	})
	code, body := get(t, url, nil)
	res := result(t, results)
	if code != 200 || body != "slow" || res.Attempts != 1 || res.Flag != FlagUpstreamOverflow {
		t.Fatalf("got %d %q after %d attempts flag %q; want the slow answer, UO", code, body, res.Attempts, res.Flag)
	}
}
