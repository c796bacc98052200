package client

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// update is what one response changes in one type, once decoded.
type update struct {
	st      *typeState
	set     map[string]*entry // added or updated; nil entry: keep ours
	removed []string          // delta's removed_resources
	full    bool              // set is the whole state (state-of-the-world LDS, CDS)
	version string
	errs    []error
}

func newUpdate(st *typeState, version string) *update {
	return &update{st: st, set: make(map[string]*entry), version: version}
}

// add records one decoded resource, refusing a name listed twice and
// ignoring names a non-wildcard type did not ask for (a late answer to an
// older subscription).
func (u *update) add(d decoded) {
	if _, dup := u.set[d.name]; dup {
		u.errs = append(u.errs, fmt.Errorf("%s %q: listed twice", kindNoun[u.st.kind], d.name))
		return
	}
	if !u.st.wildcard && u.st.wanted[d.name] == nil {
		return
	}
	u.set[d.name] = d.e
}

// check runs Target.Check on every new resource, in name order.
func (c *Client) check(u *update) {
	for _, name := range slices.Sorted(maps.Keys(u.set)) {
		e := u.set[name]
		if e == nil {
			continue
		}
		if err := c.target.Check(u.st.url, e.msg); err != nil {
			u.errs = append(u.errs, fmt.Errorf("%s %q: %w", kindNoun[u.st.kind], name, err))
		}
	}
}

// commit stores an update as the type's accepted state.
func (st *typeState) commit(u *update) {
	entries := make(map[string]*entry, len(st.entries)+len(u.set))
	if !u.full {
		maps.Copy(entries, st.entries)
	}
	for name, e := range u.set {
		if e == nil {
			if old, ok := st.entries[name]; ok {
				entries[name] = old
			}
			continue
		}
		entries[name] = e
	}
	for _, name := range u.removed {
		delete(entries, name)
		if w := st.wanted[name]; w != nil {
			w.absent = true
		}
	}
	st.entries, st.version, st.received = entries, u.version, true
}

// process decides on a decoded response: checked, stored, applied when the
// set is complete. A non-nil error is the NACK's text; the type's state is
// then as before the response.
func (c *Client) process(u *update) error {
	if len(u.errs) == 0 {
		c.check(u)
	}
	if len(u.errs) > 0 {
		return errors.New(joinErrors(u.errs))
	}
	now := time.Now()
	prev := u.st.save()
	u.st.commit(u)
	c.refreshWanted(now)
	if err := c.maybeApply(); err != nil {
		u.st.restore(prev)
		c.refreshWanted(now)
		return fmt.Errorf("apply: %w", err)
	}
	return nil
}

// finish ACKs or NACKs the response just processed, then drops what is no
// longer needed and sends changed subscriptions.
func (c *Client) finish(st *typeState, version string, err error) {
	if err != nil {
		c.nack(st, version, err.Error())
	} else {
		c.ack(st)
	}
	c.pruneAndSubscribe(time.Now())
}

func (c *Client) ack(st *typeState) {
	st.accepted++
	st.nackErr, st.nackRepeats, st.nackAt = "", 0, time.Time{}
	c.log.Debug("ACK", "type", st.url, "version", st.version, "resources", len(st.entries))
	c.sendAckOrNack(st)
}

// nack rejects the latest response of st. go-control-plane answers a
// state-of-the-world NACK with the same version at once; when the same
// version fails the same way again, the NACK is paced with the backoff so
// that the two sides do not spin.
func (c *Client) nack(st *typeState, version, msg string) {
	st.rejected++
	repeat := !c.cfg.Delta && st.nackErr == msg && st.lastErrVersion == version
	st.lastErr, st.lastErrVersion, st.lastErrTime = msg, version, time.Now()
	st.nackErr = msg
	if repeat {
		max := min(c.cfg.BackoffMax, maxNackPace)
		delay := backoff(st.nackRepeats, min(c.cfg.BackoffBase, max), max, c.rnd)
		st.nackRepeats++
		st.nackAt = time.Now().Add(delay)
		c.log.Debug("NACK again, paced", "type", st.url, "version", version, "in", delay)
		return
	}
	st.nackRepeats = 0
	c.log.Warn("NACK: update rejected; the previous configuration stays in force",
		"type", st.url, "version", version, "error", msg)
	c.sendAckOrNack(st)
}

func (c *Client) sendPacedNack(st *typeState) {
	if st.nackErr != "" {
		c.sendAckOrNack(st)
	}
}

func (c *Client) sendAckOrNack(st *typeState) {
	if c.stream == nil {
		return
	}
	if c.cfg.Delta {
		c.sendDeltaAck(st)
	} else {
		c.sendSotw(st)
	}
}

// nackUnknown rejects a response for a type the client did not subscribe to.
func (c *Client) nackUnknown(typeURL, nonce string) {
	msg := fmt.Sprintf("type %q is not subscribed", typeURL)
	c.log.Warn("NACK: response of an unexpected type", "type", typeURL)
	if c.cfg.Delta {
		c.sendDeltaRaw(typeURL, nonce, msg)
	} else {
		c.sendSotwRaw(typeURL, nonce, msg)
	}
}

func errorDetail(msg string) *rpcstatus.Status {
	if msg == "" {
		return nil
	}
	return &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: msg}
}
