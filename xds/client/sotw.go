package client

import (
	"fmt"
	"maps"
	"slices"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// handleSotw processes one state-of-the-world response. LDS and CDS
// responses carry the full state: what they omit is removed. RDS and EDS
// responses carry some of the names asked for; what they omit stays, and a
// name goes only when no listener or cluster needs it any more.
func (c *Client) handleSotw(resp *discoveryv3.DiscoveryResponse) {
	k, ok := kindOf(resp.GetTypeUrl())
	if !ok || !c.types[k].enabled {
		c.nackUnknown(resp.GetTypeUrl(), resp.GetNonce())
		return
	}
	st := c.types[k]
	st.nonce = resp.GetNonce()
	st.nackAt = time.Time{}
	u := newUpdate(st, resp.GetVersionInfo())
	u.full = st.wildcard
	heartbeats := 0
	for i, a := range resp.GetResources() {
		d, err := decodeAny(k, a)
		if err != nil {
			u.errs = append(u.errs, fmt.Errorf("resource %d: %w", i, err))
			continue
		}
		if d.e == nil {
			heartbeats++
		}
		u.add(d)
	}
	if heartbeats > 0 && heartbeats == len(resp.GetResources()) {
		// Only TTL heartbeats: nothing changes, not even for LDS and CDS.
		u.full, u.set = false, make(map[string]*entry)
	}
	c.finish(st, resp.GetVersionInfo(), c.process(u))
}

// sendSotw sends the type's current request: the last accepted version, the
// latest nonce, the names needed (none for a wildcard), and the error of a
// rejected latest response.
func (c *Client) sendSotw(st *typeState) {
	s := c.stream
	if s == nil || s.sotw == nil {
		return
	}
	req := &discoveryv3.DiscoveryRequest{
		VersionInfo:   st.version,
		Node:          c.cfg.Node,
		TypeUrl:       st.url,
		ResponseNonce: st.nonce,
		ErrorDetail:   errorDetail(st.nackErr),
	}
	var sent map[string]bool
	if !st.wildcard {
		req.ResourceNames = slices.Sorted(maps.Keys(st.wanted))
		sent = make(map[string]bool, len(req.ResourceNames))
		for _, n := range req.ResourceNames {
			sent[n] = true
		}
	}
	if err := s.sotw.Send(req); err != nil {
		c.dropStream(fmt.Errorf("send %s request: %w", st.url, err))
		return
	}
	st.started, st.sent, st.nackAt = true, sent, time.Time{}
}

// sendSotwRaw NACKs a response the client has no state for.
func (c *Client) sendSotwRaw(typeURL, nonce, msg string) {
	s := c.stream
	if s == nil || s.sotw == nil {
		return
	}
	req := &discoveryv3.DiscoveryRequest{
		Node:          c.cfg.Node,
		TypeUrl:       typeURL,
		ResponseNonce: nonce,
		ErrorDetail:   errorDetail(msg),
	}
	if err := s.sotw.Send(req); err != nil {
		c.dropStream(fmt.Errorf("send %s request: %w", typeURL, err))
	}
}
