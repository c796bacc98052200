package outlier

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

func testHosts(n int) []*lb.Host {
	hs := make([]*lb.Host, n)
	for i := range hs {
		hs[i] = lb.NewHost(fmt.Sprintf("10.0.0.%d:8080", i+1), 1)
	}
	return hs
}

// start builds a detector over hosts; the caller defers Close.
func start(t *testing.T, cfg Config, hosts []*lb.Host) *Detector {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	d := New(cfg, nil)
	d.SetHosts(hosts)
	return d
}

// bubble runs f on synctest's fake clock.
func bubble(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	synctest.Test(t, f)
}

// sleep advances the fake clock and lets every timer and sweep due by then
// finish.
func sleep(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func report(d *Detector, h *lb.Host, status, n int) {
	for range n {
		d.Report(h, Outcome{Status: status})
	}
}

func reportLocal(d *Detector, h *lb.Host, l LocalFailure, n int) {
	for range n {
		d.Report(h, Outcome{Local: l})
	}
}

func ejected(h *lb.Host) bool { return h.Flags()&lb.FailedOutlierCheck != 0 }

func wantEjected(t *testing.T, d *Detector, h *lb.Host, want bool) {
	t.Helper()
	if got := ejected(h); got != want {
		t.Fatalf("%s: FailedOutlierCheck = %v, want %v (info %+v)", h.Address, got, want, d.Host(h))
	}
	if got := d.Host(h).Ejected; got != want {
		t.Fatalf("%s: Host().Ejected = %v, want %v", h.Address, got, want)
	}
}

// withDice replaces the enforcement dice and the jitter source.
func withDice(d *Detector, roll func(int) int, jitter func(int64) int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if roll != nil {
		d.roll = roll
	}
	if jitter != nil {
		d.jitter = jitter
	}
}

// logBuffer is an hclog sink the tests read.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func bufferLogger(buf *logBuffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Info})
}
