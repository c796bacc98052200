package cluster

import (
	"context"
	"errors"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/lb"
)

// ErrNoOriginalDst is returned by an ORIGINAL_DST cluster's Pick when the
// request carries no original destination (the connection was not
// redirected, or the listener has no original_dst filter).
var ErrNoOriginalDst = errors.New("ORIGINAL_DST cluster: the connection has no original destination")

// origHosts are an ORIGINAL_DST cluster's hosts: one per original
// destination seen, made on first use. Each sweep removes the hosts no
// connection or request picked since the previous one, as Envoy does:
// connections still open to a removed host keep it (and count on it and
// on the cluster) until they close; the next pick of that destination
// makes a new host.
type origHosts struct {
	mu    sync.RWMutex
	hosts map[netip.AddrPort]*origHost // IPv4 unmapped
}

type origHost struct {
	h    *lb.Host
	used atomic.Bool
}

// origRunner is the sweep goroutine, stopped like the DNS one.
type origRunner struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// pick returns the host for dst, making it on first use.
func (o *origHosts) pick(dst netip.AddrPort) *lb.Host {
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	o.mu.RLock()
	oh := o.hosts[dst]
	o.mu.RUnlock()
	if oh == nil {
		o.mu.Lock()
		if oh = o.hosts[dst]; oh == nil {
			oh = &origHost{h: lb.NewHost(dst.String(), 1)}
			o.hosts[dst] = oh
		}
		o.mu.Unlock()
	}
	oh.used.Store(true)
	return oh.h
}

// byAddr returns the host at addr, nil when there is none.
func (o *origHosts) byAddr(addr string) *lb.Host {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	if oh := o.hosts[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())]; oh != nil {
		return oh.h
	}
	return nil
}

// list returns the hosts sorted by address.
func (o *origHosts) list() []*lb.Host {
	o.mu.RLock()
	out := make([]*lb.Host, 0, len(o.hosts))
	for _, oh := range o.hosts {
		out = append(out, oh.h)
	}
	o.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// sweep removes the hosts unused since the previous sweep and returns how
// many it removed.
func (o *origHosts) sweep() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for dst, oh := range o.hosts {
		if oh.used.Swap(false) {
			continue
		}
		delete(o.hosts, dst)
		n++
	}
	return n
}

// startOriginalDst publishes an empty host set, keeps the hosts an
// ORIGINAL_DST cluster already had (an update that stays ORIGINAL_DST),
// starts the sweep every cleanup_interval and marks the cluster ready.
func (c *Cluster) startOriginalDst(cfg *Config) {
	o := c.orig.Load()
	if o == nil {
		o = &origHosts{hosts: map[netip.AddrPort]*origHost{}}
		c.orig.Store(o)
	}
	c.hostsMu.Lock()
	empty, _ := newHostSet(nil, nil, nil)
	c.hosts.Store(empty)
	c.hostsMu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	r := &origRunner{cancel: cancel, done: make(chan struct{})}
	c.origRun = r
	interval := cfg.cleanupInterval()
	go func() {
		defer close(r.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if n := o.sweep(); n > 0 {
					c.log.Debug("removed unused original destination hosts", "removed", n)
				}
			}
		}
	}()
	c.markReady()
}

// stopOriginalDst stops the sweep; keep says the cluster stays
// ORIGINAL_DST (its hosts survive), else they are dropped.
func (c *Cluster) stopOriginalDst(keep bool) {
	if r := c.origRun; r != nil {
		r.cancel()
		<-r.done
		c.origRun = nil
	}
	if !keep {
		c.orig.Store(nil)
	}
}

// hostByAddr finds the host at addr for the connection observers: in the
// host set, or among an ORIGINAL_DST cluster's hosts.
func (c *Cluster) hostByAddr(addr string) *lb.Host {
	if h := c.hosts.Load().byAddr[addr]; h != nil {
		return h
	}
	if o := c.orig.Load(); o != nil {
		return o.byAddr(addr)
	}
	return nil
}
