package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"

	"github.com/outrigger-mesh/outrigger/xds/client"
)

// recorder is an xds/client Target that keeps the endpoint port of the
// last complete set applied.
type recorder struct {
	mu   sync.Mutex
	port uint32
}

func (r *recorder) Check(string, proto.Message) error { return nil }

func (r *recorder) Apply(res *client.Resources) error {
	var port uint32
	for _, e := range res.Endpoints {
		for _, l := range e.GetEndpoints() {
			for _, ep := range l.GetLbEndpoints() {
				port = ep.GetEndpoint().GetAddress().GetSocketAddress().GetPortValue()
			}
		}
	}
	r.mu.Lock()
	r.port = port
	r.mu.Unlock()
	return nil
}

func (r *recorder) last() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.port
}

// proxyRun is one running xds/client (the proxy's own ADS client).
type proxyRun struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func runProxy(t *testing.T, h *harness, id string, delta bool, rec *recorder) *proxyRun {
	ctx, cancel := context.WithCancel(context.Background())
	c := client.New(client.Config{
		Conn:        h.conn,
		Node:        &corev3.Node{Id: id, Cluster: "web", UserAgentName: "outrigger"},
		Delta:       delta,
		LDS:         true,
		CDS:         true,
		BackoffBase: 5 * time.Millisecond,
		BackoffMax:  50 * time.Millisecond,
		Logger:      hclog.NewNullLogger(),
	}, rec)
	p := &proxyRun{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		if err := c.Run(ctx); err != nil {
			t.Errorf("client %s: %v", id, err)
		}
	}()
	return p
}

func (p *proxyRun) stop() {
	p.cancel()
	<-p.done
}

// streamsOf is how many open streams the server counts for node id.
func (h *harness) streamsOf(id string) int {
	for _, n := range h.srv.Status().Nodes {
		if n.ID == id {
			return n.Streams
		}
	}
	return 0
}

// TestChurnConverges drives real proxy ADS clients (state of the world and
// delta) through hundreds of back-to-back configuration changes while they
// reconnect, half the time with the new stream open before the old one
// closes, and nodes move between shared and private snapshots. A node's
// snapshot entry is set by its first stream and cleared with its last, and
// every change re-points it: whatever the interleaving, each proxy must
// end up with the last configuration.
func TestChurnConverges(t *testing.T) {
	for _, delta := range []bool{false, true} {
		t.Run(map[bool]string{false: "sotw", true: "delta"}[delta], func(t *testing.T) { testChurn(t, delta) })
	}
}

func testChurn(t *testing.T, delta bool) {
	const (
		nodes   = 6
		updates = 300
	)
	h := start(t)
	ids := make([]string, nodes)
	for i := range ids {
		ids[i] = fmt.Sprintf("p%d", i)
	}
	// On even updates nodes share snapshots in pairs; on odd ones each has
	// its own.
	port := func(i, n int) uint32 {
		if n%2 == 0 {
			return uint32(10000 + n*10 + i/2)
		}
		return uint32(10000 + n*10 + i)
	}
	set := func(n int) {
		for i, id := range ids {
			h.fake.set(id, sidecar("api", 15001, port(i, n)))
		}
		h.srv.Update(mesh(uint64(n), ids...))
	}
	set(0)
	recs := make([]*recorder, nodes)
	runs := make([]*proxyRun, nodes)
	for i, id := range ids {
		recs[i] = &recorder{}
		runs[i] = runProxy(t, h, id, delta, recs[i])
	}
	var stopping sync.WaitGroup
	defer func() {
		for _, r := range runs {
			r.stop()
		}
		stopping.Wait()
	}()
	for n := 1; n <= updates; n++ {
		set(n)
		if n%7 != 0 {
			continue
		}
		// Reconnect one proxy; a fresh recorder, so that a late Apply of
		// the old client cannot mask what the new one has.
		i := (n / 7) % nodes
		old := runs[i]
		overlap := (n/7)%2 == 0
		if !overlap {
			old.stop()
		}
		recs[i] = &recorder{}
		runs[i] = runProxy(t, h, ids[i], delta, recs[i])
		if overlap {
			// The old stream closes only once the new one is counted,
			// while updates keep coming.
			waitFor(t, ids[i]+" with two streams", func() bool { return h.streamsOf(ids[i]) == 2 })
			stopping.Add(1)
			go func() { defer stopping.Done(); old.stop() }()
		}
	}
	for i := range ids {
		want := port(i, updates)
		waitFor(t, fmt.Sprintf("%s to apply endpoint port %d", ids[i], want), func() bool { return recs[i].last() == want })
	}
}
