package client_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/outrigger-mesh/outrigger/xds/client"
	"github.com/outrigger-mesh/outrigger/xds/xdstest"
)

var allTypes = []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType}

// set sets node-1's snapshot or fails the test.
func set(t testing.TB, srv *xdstest.Server, version string, rs ...types.Resource) {
	t.Helper()
	if err := srv.Set("node-1", version, rs...); err != nil {
		t.Fatal(err)
	}
}

// waitAcked waits until the client has ACKed version of every type on the
// server's latest stream (delta: the response carrying that system version).
func waitAcked(t testing.TB, srv *xdstest.Server, version string, types ...string) {
	t.Helper()
	for _, typ := range types {
		_, err := srv.WaitRequest(waitFor, func(r xdstest.Request) bool {
			return r.TypeURL == typ && r.IsACK() && r.ResponseVersion == version
		})
		if err != nil {
			t.Fatalf("no ACK of %s version %s: %v", typ, version, err)
		}
	}
}

// changed lists the types a snapshot change of only these types sends:
// all four in the state of the world, just these in delta.
func changed(delta bool, types ...string) []string {
	if delta {
		return types
	}
	return allTypes
}

// v1 is one listener with an RDS route to one EDS cluster.
func v1(t testing.TB) []types.Resource {
	return []types.Resource{listener(t, "L1", "R1", 10001), route("R1", "/", "C1"), edsCluster("C1"), cla("C1", 9001)}
}

func TestInitialSyncAppliesOnceWhenWarm(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.Start(t)
		set(t, srv, "v1", v1(t)...)
		tgt := newTarget(t)
		c := client.New(baseConfig(t, srv.Conn(), delta), tgt)
		run(t, c)
		waitSynced(t, c)
		waitAcked(t, srv, "v1", allTypes...)

		applied, failed := tgt.applies()
		if len(applied) != 1 || failed != 0 {
			t.Fatalf("Apply called %d times (%d failed), want once", len(applied)+failed, failed)
		}
		got := applied[0]
		if d := describe(got); d != "L[L1] R[R1] C[C1] E[C1]" {
			t.Fatalf("applied %s", d)
		}
		if len(got.Endpoints[0].GetEndpoints()) != 1 {
			t.Fatalf("assignment C1 applied empty")
		}
		for _, typ := range allTypes {
			if got.Versions[typ] != "v1" {
				t.Errorf("version of %s = %q, want v1", typ, got.Versions[typ])
			}
		}
		// The node goes out on the first request of the stream (and, here,
		// on every request).
		reqs := srv.Requests()
		if len(reqs) == 0 || reqs[0].Node.GetId() != "node-1" {
			t.Fatalf("first request without node-1: %+v", reqs)
		}
		eventually(t, "status to show v1", func() bool {
			st := c.Status()
			return st.Connected && st.Applies == 1 && st.Types[resource.RouteType].Version == "v1" && st.Types[resource.ClusterType].Resources == 1
		})
	})
}

func TestRouteUpdateApplies(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.Start(t)
		set(t, srv, "v1", v1(t)...)
		tgt := newTarget(t)
		c := client.New(baseConfig(t, srv.Conn(), delta), tgt)
		run(t, c)
		waitSynced(t, c)

		set(t, srv, "v2", listener(t, "L1", "R1", 10001), route("R1", "/v2", "C1"), edsCluster("C1"), cla("C1", 9001))
		tgt.waitApply(func(r *client.Resources) bool {
			return len(r.Routes) == 1 && r.Routes[0].GetVirtualHosts()[0].GetRoutes()[0].GetMatch().GetPrefix() == "/v2"
		})
		waitAcked(t, srv, "v2", changed(delta, resource.RouteType)...)
		if applied, _ := tgt.applies(); len(applied) != 2 {
			t.Fatalf("%d Applies, want 2 (initial, route update)", len(applied))
		}
	})
}

func TestListenerRemovalDropsItsRoute(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.Start(t)
		set(t, srv, "v1", listener(t, "L1", "R1", 10001), listener(t, "L2", "R2", 10002),
			route("R1", "/", "C1"), route("R2", "/", "C1"), edsCluster("C1"), cla("C1", 9001))
		tgt := newTarget(t)
		c := client.New(baseConfig(t, srv.Conn(), delta), tgt)
		run(t, c)
		tgt.waitApply(func(r *client.Resources) bool { return describe(r) == "L[L1 L2] R[R1 R2] C[C1] E[C1]" })

		mark := len(srv.Requests())
		set(t, srv, "v2", listener(t, "L1", "R1", 10001), route("R1", "/", "C1"), edsCluster("C1"), cla("C1", 9001))
		tgt.waitApply(func(r *client.Resources) bool { return describe(r) == "L[L1] R[R1] C[C1] E[C1]" })
		// The client no longer asks for R2.
		_, err := srv.WaitRequest(waitFor, func(r xdstest.Request) bool {
			if r.Seq < mark || r.TypeURL != resource.RouteType {
				return false
			}
			if delta {
				return len(r.Unsubscribe) == 1 && r.Unsubscribe[0] == "R2"
			}
			return len(r.ResourceNames) == 1 && r.ResourceNames[0] == "R1"
		})
		if err != nil {
			t.Fatalf("no request dropping R2: %v", err)
		}
		eventually(t, "route count 1 in status", func() bool {
			return c.Status().Types[resource.RouteType].Resources == 1
		})
	})
}

// rejectPrefix makes Check refuse any route whose first match prefix is p.
func rejectPrefix(p string) func(string, proto.Message) error {
	return func(typeURL string, m proto.Message) error {
		if rc, ok := m.(*routev3.RouteConfiguration); ok && typeURL == resource.RouteType {
			if rc.GetVirtualHosts()[0].GetRoutes()[0].GetMatch().GetPrefix() == p {
				return errors.New("prefix " + p + " is not allowed")
			}
		}
		return nil
	}
}

func TestCheckRejectionNACKsAndKeepsTheOldSet(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.Start(t)
		set(t, srv, "v1", v1(t)...)
		tgt := newTarget(t)
		tgt.check = rejectPrefix("/bad")
		c := client.New(baseConfig(t, srv.Conn(), delta), tgt)
		run(t, c)
		waitSynced(t, c)
		waitAcked(t, srv, "v1", allTypes...)

		set(t, srv, "v2", listener(t, "L1", "R1", 10001), route("R1", "/bad", "C1"), edsCluster("C1"), cla("C1", 9001))
		nack, err := srv.WaitRequest(waitFor, func(r xdstest.Request) bool { return r.IsNACK() })
		if err != nil {
			t.Fatalf("no NACK: %v", err)
		}
		msg := nack.ErrorDetail.GetMessage()
		if nack.TypeURL != resource.RouteType || !strings.Contains(msg, `route configuration "R1"`) || !strings.Contains(msg, "prefix /bad is not allowed") {
			t.Fatalf("NACK of %s with %q", nack.TypeURL, msg)
		}
		if !delta && nack.VersionInfo != "v1" {
			t.Fatalf("NACK carries version %q, want the last accepted v1", nack.VersionInfo)
		}
		// The other types of v2 are ACKed; the set in force is still v1's.
		if !delta { // delta sends only what changed
			waitAcked(t, srv, "v2", resource.ListenerType, resource.ClusterType, resource.EndpointType)
		}
		if applied, _ := tgt.applies(); len(applied) != 1 || applied[0].Routes[0].GetVirtualHosts()[0].GetRoutes()[0].GetMatch().GetPrefix() != "/" {
			t.Fatalf("Applies after the NACK: %d, last %s", len(applied), describe(tgt.last()))
		}
		eventually(t, "route status to show the rejection", func() bool {
			st := c.Status().Types[resource.RouteType]
			return st.Rejected > 0 && strings.Contains(st.LastError, "prefix /bad") && st.LastErrorVersion == "v2" && !st.LastErrorTime.IsZero() && st.Version == "v1"
		})

		// A corrected snapshot is ACKed and applied.
		set(t, srv, "v3", listener(t, "L1", "R1", 10001), route("R1", "/good", "C1"), edsCluster("C1"), cla("C1", 9001))
		tgt.waitApply(func(r *client.Resources) bool {
			return r.Routes[0].GetVirtualHosts()[0].GetRoutes()[0].GetMatch().GetPrefix() == "/good"
		})
		waitAcked(t, srv, "v3", changed(delta, resource.RouteType)...)
		// go-control-plane answers a state-of-the-world NACK with the same
		// version at once; the client paces its repeated NACKs.
		nacks := 0
		for _, r := range srv.Requests() {
			if r.IsNACK() {
				nacks++
			}
		}
		if nacks > 100 {
			t.Fatalf("%d NACKs: repeated NACKs are not paced", nacks)
		}
	})
}

func TestApplyErrorNACKs(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.Start(t)
		set(t, srv, "v1", v1(t)...)
		tgt := newTarget(t)
		tgt.apply = func(r *client.Resources) error {
			for _, l := range r.Listeners {
				if l.GetName() == "L-fail" {
					return errors.New("bind 127.0.0.1:10009: address already in use")
				}
			}
			return nil
		}
		c := client.New(baseConfig(t, srv.Conn(), delta), tgt)
		run(t, c)
		waitSynced(t, c)
		waitAcked(t, srv, "v1", allTypes...)

		set(t, srv, "v2", listener(t, "L1", "R1", 10001), listener(t, "L-fail", "R1", 10009), route("R1", "/", "C1"), edsCluster("C1"), cla("C1", 9001))
		nack, err := srv.WaitRequest(waitFor, func(r xdstest.Request) bool { return r.IsNACK() })
		if err != nil {
			t.Fatalf("no NACK: %v", err)
		}
		if nack.TypeURL != resource.ListenerType || !strings.Contains(nack.ErrorDetail.GetMessage(), "apply: bind 127.0.0.1:10009") {
			t.Fatalf("NACK of %s with %q", nack.TypeURL, nack.ErrorDetail.GetMessage())
		}
		if applied, failed := tgt.applies(); len(applied) != 1 || failed == 0 {
			t.Fatalf("%d Applies, %d failed; want the first only, then failures", len(applied), failed)
		}
		eventually(t, "status to show the failed Apply", func() bool {
			st := c.Status()
			return st.ApplyErrors > 0 && st.Types[resource.ListenerType].Version == "v1" && st.Types[resource.ListenerType].Rejected > 0
		})

		set(t, srv, "v3", listener(t, "L1", "R1", 10001), listener(t, "L3", "R1", 10003), route("R1", "/", "C1"), edsCluster("C1"), cla("C1", 9001))
		tgt.waitApply(func(r *client.Resources) bool { return describe(r) == "L[L1 L3] R[R1] C[C1] E[C1]" })
		waitAcked(t, srv, "v3", resource.ListenerType)
	})
}

func TestServerRestartKeepsTheSetAndResyncs(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.Start(t)
		set(t, srv, "v1", v1(t)...)
		tgt := newTarget(t)
		c := client.New(baseConfig(t, srv.Conn(), delta), tgt)
		run(t, c)
		waitSynced(t, c)
		waitAcked(t, srv, "v1", allTypes...)

		srv.Stop()
		eventually(t, "the client to see the stream end", func() bool { return !c.Status().Connected })
		mark := len(srv.Requests())
		if err := srv.Restart(); err != nil {
			t.Fatal(err)
		}
		// The client reconnects and resubscribes with what it has.
		for _, typ := range allTypes {
			req, err := srv.WaitRequest(waitFor, func(r xdstest.Request) bool { return r.Seq >= mark && r.TypeURL == typ })
			if err != nil {
				t.Fatalf("no %s request after restart: %v", typ, err)
			}
			if delta {
				if len(req.InitialVersions) != 1 {
					t.Errorf("%s resubscribed with initial versions %v", typ, req.InitialVersions)
				}
			} else if req.VersionInfo != "v1" {
				t.Errorf("%s resubscribed with version %q, want v1", typ, req.VersionInfo)
			}
		}
		if !delta {
			waitAcked(t, srv, "v1", allTypes...)
		}
		eventually(t, "the client to reconnect", func() bool { return c.Status().Connected })
		// A delta server that has all the client reports sends nothing but
		// the wildcard answers; either way nothing changed, so no Apply.
		waitAckAfter(t, srv, mark, resource.ListenerType)
		waitAckAfter(t, srv, mark, resource.ClusterType)
		if applied, failed := tgt.applies(); len(applied) != 1 || failed != 0 {
			t.Fatalf("%d Applies (%d failed) after a reconnect to the same config, want still 1", len(applied), failed)
		}
		if srv.StreamsOpened() != 2 {
			t.Fatalf("%d streams opened, want 2", srv.StreamsOpened())
		}

		set(t, srv, "v2", listener(t, "L1", "R1", 10001), route("R1", "/after", "C1"), edsCluster("C1"), cla("C1", 9001, 9002))
		tgt.waitApply(func(r *client.Resources) bool {
			return r.Routes[0].GetVirtualHosts()[0].GetRoutes()[0].GetMatch().GetPrefix() == "/after" &&
				len(r.Endpoints[0].GetEndpoints()[0].GetLbEndpoints()) == 2
		})
	})
}

// waitAckAfter waits for an ACK of typ at or after request mark.
func waitAckAfter(t testing.TB, srv *xdstest.Server, mark int, typ string) {
	t.Helper()
	if _, err := srv.WaitRequest(waitFor, func(r xdstest.Request) bool {
		return r.Seq >= mark && r.TypeURL == typ && r.IsACK()
	}); err != nil {
		t.Fatalf("no ACK of %s after request %d: %v", typ, mark, err)
	}
}

func TestServerDownKeepsTheLastSet(t *testing.T) {
	srv := xdstest.Start(t)
	set(t, srv, "v1", v1(t)...)
	tgt := newTarget(t)
	c := client.New(baseConfig(t, srv.Conn(), false), tgt)
	run(t, c)
	waitSynced(t, c)
	srv.Stop()
	eventually(t, "the client to see the stream end", func() bool { return !c.Status().Connected })
	// Several reconnect attempts fail meanwhile (backoff ≤ 200 ms).
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if applied, failed := tgt.applies(); len(applied) != 1 || failed != 0 {
			t.Fatalf("Apply called while the server was down: %d, %d failed", len(applied), failed)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := describe(tgt.last()); d != "L[L1] R[R1] C[C1] E[C1]" {
		t.Fatalf("set in force %s", d)
	}
}

func TestInitialFetchTimeout(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.Start(t)
		// C2's assignment never comes.
		set(t, srv, "v1", listener(t, "L1", "R1", 10001), route("R1", "/", "C1"),
			edsCluster("C1"), edsCluster("C2"), cla("C1", 9001))
		tgt := newTarget(t)
		cfg := baseConfig(t, srv.Conn(), delta)
		const timeout = 300 * time.Millisecond
		cfg.InitialFetchTimeout = timeout
		start := time.Now()
		c := client.New(cfg, tgt)
		run(t, c)
		waitSynced(t, c)
		got := tgt.waitApply(func(*client.Resources) bool { return true })
		if elapsed := time.Since(start); elapsed < timeout {
			t.Fatalf("applied after %s, before the %s initial fetch timeout", elapsed, timeout)
		}
		if d := describe(got); d != "L[L1] R[R1] C[C1 C2] E[C1 C2]" {
			t.Fatalf("applied %s", d)
		}
		if n := len(got.Endpoints[1].GetEndpoints()); n != 0 {
			t.Fatalf("C2's assignment has %d locality groups, want an empty one", n)
		}
		eventually(t, "status to name C2 missing", func() bool {
			m := c.Status().Types[resource.EndpointType].Missing
			return len(m) == 1 && m[0] == "C2"
		})

		// When it does come, it is applied.
		set(t, srv, "v2", listener(t, "L1", "R1", 10001), route("R1", "/", "C1"),
			edsCluster("C1"), edsCluster("C2"), cla("C1", 9001), cla("C2", 9002))
		tgt.waitApply(func(r *client.Resources) bool { return len(r.Endpoints[1].GetEndpoints()) == 1 })
		eventually(t, "status to name nothing missing", func() bool {
			return len(c.Status().Types[resource.EndpointType].Missing) == 0
		})
	})
}

func TestApplyErrorAfterTimeoutIsRetried(t *testing.T) {
	srv := xdstest.Start(t)
	set(t, srv, "v1", listener(t, "L1", "R1", 10001), route("R1", "/", "C1"), edsCluster("C1"), edsCluster("C2"), cla("C1", 9001))
	tgt := newTarget(t)
	first := true
	tgt.apply = func(*client.Resources) error {
		if first {
			first = false
			return errors.New("not now")
		}
		return nil
	}
	cfg := baseConfig(t, srv.Conn(), false)
	cfg.InitialFetchTimeout = 100 * time.Millisecond
	c := client.New(cfg, tgt)
	run(t, c)
	waitSynced(t, c) // the failed Apply after the timeout counts
	eventually(t, "the failed Apply", func() bool { return c.Status().ApplyErrors == 1 })
	set(t, srv, "v2", listener(t, "L1", "R1", 10001), route("R1", "/", "C1"), edsCluster("C1"), edsCluster("C2"), cla("C1", 9001), cla("C2", 9002))
	tgt.waitApply(func(r *client.Resources) bool { return describe(r) == "L[L1] R[R1] C[C1 C2] E[C1 C2]" })
}

func TestStaticNamesOnly(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.Start(t)
		set(t, srv, "v1", route("R-static", "/", "C-static"), cla("C-static", 9001))
		tgt := newTarget(t)
		cfg := baseConfig(t, srv.Conn(), delta)
		cfg.LDS, cfg.CDS = false, false
		cfg.StaticRoutes = []string{"R-static"}
		cfg.StaticEndpoints = []string{"C-static"}
		c := client.New(cfg, tgt)
		run(t, c)
		got := tgt.waitApply(func(*client.Resources) bool { return true })
		if d := describe(got); d != "L[] R[R-static] C[] E[C-static]" {
			t.Fatalf("applied %s", d)
		}
		if _, ok := got.Versions[resource.ListenerType]; ok {
			t.Fatalf("versions name the unsubscribed LDS: %v", got.Versions)
		}
		for _, r := range srv.Requests() {
			if r.TypeURL == resource.ListenerType || r.TypeURL == resource.ClusterType {
				t.Fatalf("subscribed to %s", r.TypeURL)
			}
		}
	})
}

func TestCancelReturnsPromptly(t *testing.T) {
	t.Run("steady", func(t *testing.T) {
		srv := xdstest.Start(t)
		set(t, srv, "v1", v1(t)...)
		c := client.New(baseConfig(t, srv.Conn(), false), newTarget(t))
		stop := run(t, c)
		waitSynced(t, c)
		checkPrompt(t, stop)
		eventually(t, "the server to see the stream close", func() bool { return srv.OpenStreams() == 0 })
	})
	t.Run("server silent", func(t *testing.T) {
		srv := xdstest.Start(t) // no snapshot for the node: the stream waits
		c := client.New(baseConfig(t, srv.Conn(), true), newTarget(t))
		stop := run(t, c)
		if _, err := srv.WaitRequest(waitFor, func(r xdstest.Request) bool { return true }); err != nil {
			t.Fatal(err)
		}
		checkPrompt(t, stop)
	})
	t.Run("server down", func(t *testing.T) {
		srv := xdstest.Start(t)
		conn := srv.Conn()
		srv.Stop()
		c := client.New(baseConfig(t, conn, false), newTarget(t))
		stop := run(t, c)
		time.Sleep(50 * time.Millisecond) // let it fail and back off at least once
		checkPrompt(t, stop)
	})
}

func checkPrompt(t *testing.T, stop func() error) {
	t.Helper()
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v after cancel, want nil", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Run took %s to return after cancel", d)
	}
}

func TestConfigErrors(t *testing.T) {
	conn := xdstest.Start(t).Conn()
	good := func() client.Config { return baseConfig(t, conn, false) }
	tests := []struct {
		name   string
		mutate func(*client.Config)
		nilTgt bool
		want   string
	}{
		{name: "no target", nilTgt: true, want: "no target"},
		{name: "no conn", mutate: func(c *client.Config) { c.Conn = nil }, want: "no gRPC connection"},
		{name: "no node", mutate: func(c *client.Config) { c.Node = nil }, want: "node id is required"},
		{name: "empty node id", mutate: func(c *client.Config) { c.Node.Id = "" }, want: "node id is required"},
		{name: "nothing to subscribe", mutate: func(c *client.Config) { c.LDS, c.CDS = false, false }, want: "nothing to subscribe"},
		{name: "negative backoff", mutate: func(c *client.Config) { c.BackoffBase = -1 }, want: "negative backoff"},
		{name: "base above max", mutate: func(c *client.Config) { c.BackoffBase = time.Minute }, want: "exceeds max"},
		{name: "empty static route", mutate: func(c *client.Config) { c.StaticRoutes = []string{""} }, want: "empty static route"},
		{name: "empty static endpoints", mutate: func(c *client.Config) { c.StaticEndpoints = []string{""} }, want: "empty static endpoints"},
		{name: "empty static secret", mutate: func(c *client.Config) { c.StaticSecrets = []string{""} }, want: "empty static secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good()
			if tt.mutate != nil {
				tt.mutate(&cfg)
			}
			var tgt client.Target = newTarget(t)
			if tt.nilTgt {
				tgt = nil
			}
			err := client.New(cfg, tgt).Run(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	t.Run("run twice", func(t *testing.T) {
		c := client.New(good(), newTarget(t))
		stop := run(t, c)
		eventually(t, "the first Run to connect", func() bool { return c.Status().Connected })
		if err := c.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "Run called twice") {
			t.Fatalf("second Run = %v", err)
		}
		_ = stop()
	})
}
