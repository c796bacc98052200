package tcpproxy

import (
	"net"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
)

// localAs is a downstream connection whose local address is another one:
// what proxy/listener hands over once its original_dst filter restored a
// redirected connection's destination (proxy/redirect's network-namespace
// test does it with real netfilter rules).
type localAs struct {
	*net.TCPConn
	local net.Addr
}

func (c *localAs) LocalAddr() net.Addr { return c.local }

// A TCP proxy to an ORIGINAL_DST cluster connects to the downstream
// connection's local address; without one (nothing to connect to) it
// closes the connection as with no healthy host.
func TestOriginalDstCluster(t *testing.T) {
	checkNoGoroutineLeak(t)
	echoAddr := serveTCP(t, echo)
	dst, err := net.ResolveTCPAddr("tcp", echoAddr)
	if err != nil {
		t.Fatal(err)
	}
	m := clusters(t, cluster.Config{Name: "orig", Discovery: cluster.OriginalDst})
	p := newProxy(t, Config{StatPrefix: "t", Cluster: "orig"}, Deps{Clusters: m})
	f := startFront(t, p, func(c *net.TCPConn) net.Conn { return &localAs{TCPConn: c, local: dst} })
	c := f.dial(t)
	if got := roundTrip(t, c, "hello"); got != "hello" {
		t.Fatalf("echo through ORIGINAL_DST = %q", got)
	}
	_ = c.Close()
	f.waitServed(t, 1)
	cl := m.Get("orig")
	hosts := cl.Hosts()
	if len(hosts) != 1 || hosts[0].Address != echoAddr {
		t.Fatalf("ORIGINAL_DST hosts %v, want one at %s", hosts, echoAddr)
	}
	if n := hosts[0].Stats.CxTotal.Load(); n != 1 {
		t.Errorf("host cx_total %d, want 1", n)
	}
	waitFor(t, 5*time.Second, "upstream_cx_active back to 0", func() bool { return cl.Stats().CxActive.Load() == 0 })

	// A downstream connection with no TCP local address has no original
	// destination.
	p2 := newProxy(t, Config{StatPrefix: "t2", Cluster: "orig"}, Deps{Clusters: m})
	f2 := startFront(t, p2, func(c *net.TCPConn) net.Conn {
		return &localAs{TCPConn: c, local: &net.UnixAddr{Name: "x", Net: "unix"}}
	})
	c2 := f2.dial(t)
	buf := make([]byte, 1)
	if n, err := c2.Read(buf); err == nil {
		t.Fatalf("read %d bytes from a connection with no original destination", n)
	}
	f2.waitServed(t, 1)
	if n := p2.Stats().NoneHealthy.Load(); n != 1 {
		t.Errorf("upstream_cx_none_healthy %d, want 1", n)
	}
}
