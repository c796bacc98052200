package cluster

import (
	"context"
	"net"
	"slices"
	"strconv"
	"time"
)

// Resolver looks up a name's addresses; *net.Resolver is one. network is
// "ip", "ip4" or "ip6".
type Resolver interface {
	LookupIP(ctx context.Context, network, host string) ([]net.IP, error)
}

// dnsTimeout bounds one lookup, as Envoy's resolver does.
const dnsTimeout = 5 * time.Second

// dnsRunner re-resolves a STRICT_DNS or LOGICAL_DNS cluster's names on a
// goroutine the manager owns through stop.
type dnsRunner struct {
	cancel context.CancelFunc
	done   chan struct{}
}

func (c *Cluster) startDNS(r Resolver, cfg *Config) {
	ctx, cancel := context.WithCancel(context.Background())
	d := &dnsRunner{cancel: cancel, done: make(chan struct{})}
	c.dns = d
	go func() {
		defer close(d.done)
		c.runDNS(ctx, r, cfg)
	}()
}

// stopDNS cancels the resolver goroutine, if any, and waits for it.
func (c *Cluster) stopDNS() {
	if d := c.dns; d != nil {
		d.cancel()
		<-d.done
		c.dns = nil
	}
}

func (c *Cluster) runDNS(ctx context.Context, r Resolver, cfg *Config) {
	tick := time.NewTicker(cfg.dnsRefreshRate())
	defer tick.Stop()
	for {
		c.resolve(ctx, r, cfg)
		if ctx.Err() != nil {
			return
		}
		c.markReady()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// resolve looks every endpoint up once and publishes the hosts if they
// changed. A name that fails to resolve keeps the addresses it had.
func (c *Cluster) resolve(ctx context.Context, r Resolver, cfg *Config) {
	var ts []target
	prev := c.hosts.Load()
	for i := range cfg.Endpoints {
		ep := &cfg.Endpoints[i]
		host, port, _ := net.SplitHostPort(ep.Address) // validated
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			continue
		}
		if ip := net.ParseIP(host); ip != nil {
			ts = append(ts, endpointTarget(ep, ep.Address, ""))
			continue
		}
		ips, err := lookup(ctx, r, cfg.DNSFamily, host)
		if ctx.Err() != nil {
			return // stopping: publish nothing half-resolved
		}
		if err != nil {
			old := prev.lastGood(host, port)
			c.log.Warn("DNS resolution failed; keeping the last good addresses",
				"name", host, "error", err, "kept", len(old))
			ts = append(ts, old...)
			continue
		}
		if cfg.Discovery == LogicalDNS {
			ips = ips[:1]
		}
		for _, ip := range ips {
			ts = append(ts, endpointTarget(ep, net.JoinHostPort(ip.String(), port), host))
		}
	}
	c.hostsMu.Lock()
	defer c.hostsMu.Unlock()
	cur := c.hosts.Load()
	if cur.sameTargets(ts) {
		return
	}
	c.publishLocked(cur, ts, cfg)
	c.log.Debug("DNS hosts updated", "hosts", len(ts))
}

// lastGood returns the targets a name resolved to before.
func (s *hostSet) lastGood(name, port string) []target {
	var ts []target
	for _, h := range s.hosts {
		if h.Hostname != name {
			continue
		}
		if _, p, _ := net.SplitHostPort(h.Address); p == port {
			ts = append(ts, target{addr: h.Address, hostname: name, weight: h.Weight(), priority: h.Priority, locality: h.Locality})
		}
	}
	return ts
}

// lookup resolves name per Envoy's dns_lookup_family.
func lookup(ctx context.Context, r Resolver, family DNSFamily, name string) ([]net.IP, error) {
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	network := "ip"
	switch family {
	case DNSV4Only:
		network = "ip4"
	case DNSV6Only:
		network = "ip6"
	}
	ips, err := r.LookupIP(ctx, network, name)
	if err != nil {
		return nil, err
	}
	var v4, v6 []net.IP
	for _, ip := range ips {
		if ip4 := ip.To4(); ip4 != nil {
			v4 = append(v4, ip4)
		} else {
			v6 = append(v6, ip)
		}
	}
	var out []net.IP
	switch family {
	case DNSV4Only:
		out = v4
	case DNSV6Only:
		out = v6
	case DNSAuto: // IPv6 if there is any, else IPv4
		out = v6
		if len(out) == 0 {
			out = v4
		}
	case DNSV4Preferred:
		out = v4
		if len(out) == 0 {
			out = v6
		}
	case DNSAll:
		out = slices.Concat(v4, v6)
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no addresses of the requested family", Name: name, IsNotFound: true}
	}
	return out, nil
}
