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
