// Package xdstest runs a plain go-control-plane ADS server (state of the
// world and delta) on a loopback port for tests of xDS clients.
//
// The server is go-control-plane's own pkg/server/v3 over a pkg/cache/v3
// SnapshotCache in ADS mode, keyed by node id, so what a client sees is what
// it would see from any control plane built on go-control-plane. A test sets
// a node's resources with Set, can stop and restart the server on the same
// port to exercise reconnection, and observes every request (ACKs, NACKs
// with their error_detail, subscription changes) and response through
// Requests, Responses and the Wait helpers:
//
//	srv := xdstest.Start(t)
//	if err := srv.Set("node-1", "v1", listener, route, cluster, cla); err != nil {
//		t.Fatal(err)
//	}
//	conn := srv.Conn()
//	// ... run a client against conn with node id "node-1" ...
//	srv.WaitRequest(5*time.Second, func(r xdstest.Request) bool {
//		return r.TypeURL == resource.ListenerType && r.IsACK() && r.ResponseVersion == "v1"
//	})
//
// Everything stops at t.Cleanup.
package xdstest
