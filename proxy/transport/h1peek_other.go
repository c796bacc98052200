//go:build !unix

package transport

import "net"

// idleProbe cannot look at a socket here: stale connections are left to
// the retry in roundTrip.
type idleProbe struct{}

func (p *idleProbe) init(net.Conn) {}
func (p *idleProbe) alive() bool   { return true }
