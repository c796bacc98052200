package cluster

import (
	"testing"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/outlier"
)

// The TCP proxy's hooks: counters on the cluster and the host, the
// max_connections breaker, and connect outcomes fed to outlier detection.
func TestTCPConnectionHooks(t *testing.T) {
	od := outlier.DefaultConfig()
	od.Consecutive5xx = 2 // a connect failure counts as a 503
	od.MaxEjectionPercent = 100
	m := NewManager(nil)
	t.Cleanup(m.Close)
	cfg := Config{Name: "c", Discovery: Static, Endpoints: []Endpoint{{Address: "127.0.0.1:1"}, {Address: "127.0.0.1:2"}},
		Outlier: &od, Thresholds: Thresholds{MaxConnections: 1}}
	if err := m.Update([]Config{cfg}); err != nil {
		t.Fatal(err)
	}
	c := m.Get("c")
	if c.ConnectTimeout() != DefaultConnectTimeout {
		t.Errorf("ConnectTimeout = %s, want Envoy's default", c.ConnectTimeout())
	}
	h := c.Hosts()[0]

	if !c.AdmitConnection() {
		t.Fatal("first connection refused")
	}
	closed := c.ConnectionOpened(h)
	if c.AdmitConnection() {
		t.Error("max_connections 1 admitted a second connection")
	}
	st := c.Stats()
	if st.CxTotal.Load() != 1 || st.CxActive.Load() != 1 || h.Stats.CxActive.Load() != 1 || st.CxOverflow.Load() != 1 {
		t.Errorf("cx_total %d, cx_active %d, host cx_active %d, cx_overflow %d; want 1, 1, 1, 1",
			st.CxTotal.Load(), st.CxActive.Load(), h.Stats.CxActive.Load(), st.CxOverflow.Load())
	}
	closed()
	if st.CxActive.Load() != 0 || h.Stats.CxActive.Load() != 0 {
		t.Errorf("cx_active %d, host %d after close", st.CxActive.Load(), h.Stats.CxActive.Load())
	}

	// A success between failures resets the consecutive count.
	c.ConnectionFailed(h, false)
	c.ConnectionOpened(h)()
	c.ConnectionFailed(h, true)
	if h.Flags()&lb.FailedOutlierCheck != 0 {
		t.Fatal("ejected although a successful connect came between the failures")
	}
	c.ConnectionFailed(h, false)
	if h.Flags()&lb.FailedOutlierCheck == 0 {
		t.Error("two connect failures in a row did not eject the host")
	}
	if st.CxConnectFail.Load() != 3 || st.CxConnectTimeout.Load() != 1 || h.Stats.CxConnectFail.Load() != 3 {
		t.Errorf("cx_connect_fail %d, cx_connect_timeout %d, host cx_connect_fail %d; want 3, 1, 3",
			st.CxConnectFail.Load(), st.CxConnectTimeout.Load(), h.Stats.CxConnectFail.Load())
	}
}
