package client

import (
	"maps"
	"slices"
	"time"
)

// Status is a point-in-time view of the client, for the admin API's
// /config_dump and for metrics.
type Status struct {
	// Connected tells whether an ADS stream is open.
	Connected bool
	// Applies and ApplyErrors count Target.Apply calls that succeeded and
	// failed.
	Applies, ApplyErrors uint64
	// Types is keyed by type URL, one entry per subscribed type.
	Types map[string]TypeStatus
}

// TypeStatus is the state of one subscribed type URL.
type TypeStatus struct {
	// Version is the version_info last accepted (delta: the
	// system_version_info of the last accepted response, often empty).
	Version string
	// Resources counts the resources held.
	Resources int
	// Accepted and Rejected count ACKed and NACKed responses.
	Accepted, Rejected uint64
	// LastError is the error_detail of the latest NACK, with the version
	// it rejected and when; empty if none was sent.
	LastError        string
	LastErrorVersion string
	LastErrorTime    time.Time
	// Missing names resources needed but given up on (initial fetch
	// timeout) or removed by the server; they are applied empty.
	Missing []string
}

// Status returns the client's current status. It is safe to call from any
// goroutine.
func (c *Client) Status() Status {
	c.statusMu.Lock()
	defer c.statusMu.Unlock()
	s := c.status
	s.Types = maps.Clone(c.status.Types)
	return s
}

// publishStatus copies the loop's state for Status.
func (c *Client) publishStatus() {
	types := make(map[string]TypeStatus, numKinds)
	for _, st := range c.types {
		if !st.enabled {
			continue
		}
		ts := TypeStatus{
			Version:          st.version,
			Resources:        len(st.entries),
			Accepted:         st.accepted,
			Rejected:         st.rejected,
			LastError:        st.lastErr,
			LastErrorVersion: st.lastErrVersion,
			LastErrorTime:    st.lastErrTime,
		}
		for name, w := range st.wanted {
			if _, ok := st.entries[name]; !ok && w.absent {
				ts.Missing = append(ts.Missing, name)
			}
		}
		slices.Sort(ts.Missing)
		types[st.url] = ts
	}
	connected := c.stream != nil && (c.stream.sotw != nil || c.stream.delta != nil)
	c.statusMu.Lock()
	c.status.Connected = connected
	c.status.Types = types
	c.statusMu.Unlock()
}
