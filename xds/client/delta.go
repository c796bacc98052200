package client

import (
	"fmt"
	"maps"
	"slices"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// wildcard is the explicit wildcard subscription name.
const wildcard = "*"

// handleDelta processes one incremental response: added or updated
// resources, and removed ones.
func (c *Client) handleDelta(resp *discoveryv3.DeltaDiscoveryResponse) {
	k, ok := kindOf(resp.GetTypeUrl())
	if !ok || !c.types[k].enabled {
		c.nackUnknown(resp.GetTypeUrl(), resp.GetNonce())
		return
	}
	st := c.types[k]
	st.nonce = resp.GetNonce()
	st.nackAt = time.Time{}
	u := newUpdate(st, resp.GetSystemVersionInfo())
	for i, r := range resp.GetResources() {
		if r.GetName() == "" {
			u.errs = append(u.errs, fmt.Errorf("resource %d: no name", i))
			continue
		}
		d, err := decodeWrapped(k, r)
		if err != nil {
			u.errs = append(u.errs, fmt.Errorf("resource %d: %w", i, err))
			continue
		}
		u.add(d)
	}
	removed := slices.Clone(resp.GetRemovedResources())
	for _, rn := range resp.GetRemovedResourceNames() {
		removed = append(removed, rn.GetName())
	}
	for _, name := range removed {
		if _, both := u.set[name]; both {
			u.errs = append(u.errs, fmt.Errorf("%s %q: both updated and removed", kindNoun[k], name))
			continue
		}
		if !st.wildcard && st.wanted[name] == nil {
			continue
		}
		u.removed = append(u.removed, name)
	}
	c.finish(st, resp.GetSystemVersionInfo(), c.process(u))
}

// sendDeltaInitial subscribes the type on a new stream, with the versions of
// what we already have so that the server sends only what changed.
func (c *Client) sendDeltaInitial(st *typeState) {
	s := c.stream
	if s == nil || s.delta == nil {
		return
	}
	req := &discoveryv3.DeltaDiscoveryRequest{
		Node:                    c.cfg.Node,
		TypeUrl:                 st.url,
		InitialResourceVersions: make(map[string]string),
	}
	var sent map[string]bool
	if st.wildcard {
		req.ResourceNamesSubscribe = []string{wildcard}
	} else {
		req.ResourceNamesSubscribe = slices.Sorted(maps.Keys(st.wanted))
		sent = make(map[string]bool, len(req.ResourceNamesSubscribe))
		for _, n := range req.ResourceNamesSubscribe {
			sent[n] = true
		}
	}
	for name, e := range st.entries {
		if e.version != "" && (st.wildcard || sent[name]) {
			req.InitialResourceVersions[name] = e.version
		}
	}
	if err := s.delta.Send(req); err != nil {
		c.dropStream(fmt.Errorf("send %s request: %w", st.url, err))
		return
	}
	st.started, st.sent = true, sent
}

// sendDeltaAck ACKs (or, with the type's error, NACKs) the latest response.
func (c *Client) sendDeltaAck(st *typeState) {
	c.sendDeltaRaw(st.url, st.nonce, st.nackErr)
	st.nackAt = time.Time{}
}

// sendDeltaChange subscribes to new names and unsubscribes from dropped ones.
func (c *Client) sendDeltaChange(st *typeState) {
	s := c.stream
	if s == nil || s.delta == nil {
		return
	}
	req := &discoveryv3.DeltaDiscoveryRequest{Node: c.cfg.Node, TypeUrl: st.url}
	for _, n := range slices.Sorted(maps.Keys(st.wanted)) {
		if !st.sent[n] {
			req.ResourceNamesSubscribe = append(req.ResourceNamesSubscribe, n)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(st.sent)) {
		if st.wanted[n] == nil {
			req.ResourceNamesUnsubscribe = append(req.ResourceNamesUnsubscribe, n)
		}
	}
	if err := s.delta.Send(req); err != nil {
		c.dropStream(fmt.Errorf("send %s request: %w", st.url, err))
		return
	}
	sent := make(map[string]bool, len(st.wanted))
	for n := range st.wanted {
		sent[n] = true
	}
	st.sent = sent
}

// sendDeltaRaw sends an ACK, or a NACK when msg is set.
func (c *Client) sendDeltaRaw(typeURL, nonce, msg string) {
	s := c.stream
	if s == nil || s.delta == nil {
		return
	}
	req := &discoveryv3.DeltaDiscoveryRequest{
		Node:          c.cfg.Node,
		TypeUrl:       typeURL,
		ResponseNonce: nonce,
		ErrorDetail:   errorDetail(msg),
	}
	if err := s.delta.Send(req); err != nil {
		c.dropStream(fmt.Errorf("send %s request: %w", typeURL, err))
	}
}
