package healthcheck

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// TestOnPassCalled: every passing check of a healthy host is reported, so
// the cluster can return an outlier-ejected host to service.
func TestOnPassCalled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	h := lb.NewHost(srv.Listener.Addr().String(), 1)
	var passes atomic.Int64
	c, err := New([]Config{{Timeout: time.Second, Interval: 20 * time.Millisecond, UnhealthyThreshold: 1, HealthyThreshold: 1,
		HTTP: &HTTPCheck{Path: "/"}}}, Options{OnPass: func(got *lb.Host) {
		if got == h {
			passes.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.SetHosts([]*lb.Host{h})
	deadline := time.Now().Add(10 * time.Second)
	for passes.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("OnPass called %d times in 10s", passes.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAdoptHosts: a replacement checker keeps a healthy host in rotation
// (no flag set before its first check) and a failing one out of it.
func TestAdoptHosts(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	good := lb.NewHost(srv.Listener.Addr().String(), 1)
	bad := lb.NewHost("127.0.0.1:1", 1)
	bad.SetFlag(lb.FailedActiveHC, true)
	c, err := New([]Config{{Timeout: 5 * time.Second, Interval: time.Hour, UnhealthyThreshold: 1, HealthyThreshold: 1,
		HTTP: &HTTPCheck{Path: "/"}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.AdoptHosts([]*lb.Host{good, bad})
	// The good host's first check hangs: it must stay available meanwhile.
	if !good.Available() {
		t.Fatalf("an adopted healthy host was flagged: %s", good.HealthString())
	}
	if bad.Available() {
		t.Fatal("an adopted failing host was put back in rotation before any check")
	}
	if st := c.Host(good); !st.Known || !st.Healthy {
		t.Fatalf("adopted healthy host status = %+v", st)
	}
}
