package server_test

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestDrainUnderLoad: requests the proxy accepted before shutdown all
// complete; clients told "Connection: close" stop; only a connect that
// finds the listener gone is refused (the request never reached us).
func TestDrainUnderLoad(t *testing.T) {
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond)
		io.WriteString(w, "done")
	}))
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up)}.String())
	url := "http://" + p.addr["ingress"] + "/"

	var ok, failed, refused, closeSeen atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	stopAt := time.Now().Add(10 * time.Second) // bound the loop whatever happens
	for w := 0; w < 20; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := h1Client()
			for i := 0; i < 200 && time.Now().Before(stopAt); i++ {
				resp, err := c.Get(url)
				if err != nil {
					if errors.Is(err, syscall.ECONNREFUSED) {
						refused.Add(1)
						return
					}
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(body) != "done" {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, "bad response")
					return
				}
				ok.Add(1)
				if resp.Close {
					closeSeen.Add(1)
					return // the proxy asked us to go away
				}
			}
		}()
	}
	waitFor(t, 5*time.Second, "load running", func() bool { return ok.Load() > 40 })
	start := time.Now()
	p.stop(t)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("drain took %v with 150ms requests", d)
	}
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Errorf("%d accepted requests failed during drain (first: %v)", n, firstErr.Load())
	}
	if closeSeen.Load() == 0 {
		t.Errorf("no in-flight response carried Connection: close")
	}
	t.Logf("ok=%d connection-close=%d refused-after-close=%d", ok.Load(), closeSeen.Load(), refused.Load())

	// After drain the port is closed.
	if _, err := http.Get(url); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("listener still accepting after drain: %v", err)
	}
}
