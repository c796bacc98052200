package client

import (
	"context"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
)

// activeStream is the ADS stream in use; its receiving goroutine turns
// everything that arrives into events.
type activeStream struct {
	id     uint64
	ctx    context.Context // ends with Run's
	cancel context.CancelFunc
	done   chan struct{} // closed when the receiving goroutine has ended

	// Set when the stream is open (event.opened).
	sotw  discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	delta discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	// gotResponse resets the backoff when the stream ends.
	gotResponse bool
}

// event is what a stream's goroutine reports, tagged with the stream's id
// so that events of a stream already closed are ignored.
type event struct {
	id     uint64
	opened bool
	sotw   discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	delta  discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	resp   *discoveryv3.DiscoveryResponse
	dresp  *discoveryv3.DeltaDiscoveryResponse
	err    error
}

// openStream starts a goroutine that opens a stream and reads it. Opening
// may block while the connection is being made, so it is not done here.
func (c *Client) openStream(ctx context.Context) {
	c.nextID++
	sctx, cancel := context.WithCancel(ctx)
	s := &activeStream{id: c.nextID, ctx: sctx, cancel: cancel, done: make(chan struct{})}
	c.stream = s
	c.redialAt = time.Time{}
	client := discoveryv3.NewAggregatedDiscoveryServiceClient(c.cfg.Conn)
	c.log.Debug("opening ADS stream", "delta", c.cfg.Delta)
	go func() {
		defer close(s.done)
		report := func(ev event) bool {
			ev.id = s.id
			select {
			case c.events <- ev:
				return true
			case <-sctx.Done():
				return false
			}
		}
		if c.cfg.Delta {
			str, err := client.DeltaAggregatedResources(sctx)
			if err != nil {
				report(event{err: err})
				return
			}
			if !report(event{opened: true, delta: str}) {
				return
			}
			for {
				resp, err := str.Recv()
				if err != nil {
					report(event{err: err})
					return
				}
				if !report(event{dresp: resp}) {
					return
				}
			}
		}
		str, err := client.StreamAggregatedResources(sctx)
		if err != nil {
			report(event{err: err})
			return
		}
		if !report(event{opened: true, sotw: str}) {
			return
		}
		for {
			resp, err := str.Recv()
			if err != nil {
				report(event{err: err})
				return
			}
			if !report(event{resp: resp}) {
				return
			}
		}
	}()
}

// closeStream ends the stream in use, if any, and waits for its goroutine.
func (c *Client) closeStream() {
	s := c.stream
	if s == nil {
		return
	}
	c.stream = nil
	s.cancel()
	<-s.done
	// A new stream starts clean: nonces and pending NACKs belong to this one.
	for _, st := range c.types {
		st.started, st.sent, st.nonce = false, nil, ""
		st.nackErr, st.nackRepeats, st.nackAt = "", 0, time.Time{}
	}
}

// dropStream closes a broken stream and schedules the next one.
func (c *Client) dropStream(err error) {
	s := c.stream
	if s == nil {
		return
	}
	if s.ctx.Err() != nil { // Run is returning
		c.closeStream()
		return
	}
	if s.gotResponse {
		c.attempt = 0
	}
	delay := backoff(c.attempt, c.cfg.BackoffBase, c.cfg.BackoffMax, c.rnd)
	c.attempt++
	c.log.Warn("ADS stream ended; the last accepted configuration stays in force", "error", err, "retry_in", delay)
	c.closeStream()
	c.redialAt = time.Now().Add(delay)
}

// handleEvent processes what the current stream reported.
func (c *Client) handleEvent(ev event) {
	s := c.stream
	if s == nil || ev.id != s.id {
		return
	}
	switch {
	case ev.err != nil:
		c.dropStream(ev.err)
	case ev.opened:
		s.sotw, s.delta = ev.sotw, ev.delta
		c.log.Info("ADS stream open", "delta", c.cfg.Delta)
		c.sendInitial()
	case ev.resp != nil:
		s.gotResponse = true
		c.handleSotw(ev.resp)
	case ev.dresp != nil:
		s.gotResponse = true
		c.handleDelta(ev.dresp)
	}
}

// sendInitial subscribes on a new stream, clusters first, telling the server
// what we already have.
func (c *Client) sendInitial() {
	for _, st := range c.types {
		if !st.enabled {
			continue
		}
		if !st.wildcard && len(st.wanted) == 0 {
			continue // subscribed once there is a name to ask for
		}
		if c.cfg.Delta {
			c.sendDeltaInitial(st)
		} else {
			c.sendSotw(st)
		}
		if c.stream == nil {
			return // the send failed
		}
	}
}

// sendSubscription tells the server about a changed set of names of a
// non-wildcard type, if a stream is open.
func (c *Client) sendSubscription(st *typeState) {
	if !st.enabled || st.wildcard || c.stream == nil || (c.stream.sotw == nil && c.stream.delta == nil) {
		return
	}
	if !st.started {
		if len(st.wanted) == 0 {
			return
		}
		if c.cfg.Delta {
			c.sendDeltaInitial(st)
		} else {
			c.sendSotw(st)
		}
		return
	}
	same := len(st.sent) == len(st.wanted)
	for n := range st.wanted {
		if !st.sent[n] {
			same = false
			break
		}
	}
	if same {
		return
	}
	if c.cfg.Delta {
		c.sendDeltaChange(st)
	} else {
		c.sendSotw(st)
	}
}
