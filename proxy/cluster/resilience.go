package cluster

import (
	"reflect"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/healthcheck"
	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/outlier"
	"github.com/outrigger-mesh/outrigger/proxy/transport"
)

// publishLocked builds a host set over ts with cfg's balancer and makes it
// current. The health checker and the outlier detector learn the new hosts
// first, so a new host is already marked pending its first health check
// when a balancer can see it. c.hostsMu is held.
func (c *Cluster) publishLocked(prev *hostSet, ts []target, cfg *Config) {
	set, err := newHostSet(prev, ts, &cfg.LB)
	if err != nil {
		// Validate checked the config; this is a bug, not bad input. Keep
		// serving with Envoy's default policy rather than with nothing.
		c.log.Error("load balancer could not be built; using ROUND_ROBIN", "error", err)
		set, _ = newHostSet(prev, ts, nil)
	}
	if hc := c.hc.Load(); hc != nil {
		hc.SetHosts(set.hosts)
	}
	if d := c.outlier.Load(); d != nil {
		d.SetHosts(set.hosts)
	}
	c.hosts.Store(set)
}

// setResilience starts, replaces or stops the outlier detector and the
// health checker when their config changed, and rebuilds the balancer when
// its policy changed. prev is nil for a new cluster.
func (c *Cluster) setResilience(prev, cfg *Config) {
	c.hostsMu.Lock()
	defer c.hostsMu.Unlock()
	hosts := c.hosts.Load().hosts

	if prev == nil || !reflect.DeepEqual(prev.Outlier, cfg.Outlier) {
		var d *outlier.Detector
		if cfg.Outlier != nil {
			d = outlier.New(*cfg.Outlier, c.log.Named("outlier"))
			d.SetHosts(hosts)
		}
		if old := c.outlier.Swap(d); old != nil {
			old.Close()
			if d == nil {
				for _, h := range hosts {
					h.SetFlag(lb.FailedOutlierCheck, false)
				}
			}
		}
	}
	if prev == nil || !reflect.DeepEqual(prev.HealthChecks, cfg.HealthChecks) || !sameTLS(prev, cfg) {
		var hc *healthcheck.Checker
		if len(cfg.HealthChecks) > 0 {
			var err error
			hc, err = healthcheck.New(cfg.HealthChecks, healthcheck.Options{
				ClusterName: cfg.Name,
				TLS:         cfg.TLS,
				Logger:      c.log.Named("health"),
				HasTraffic:  func() bool { return c.stats.RqTotal.Load() > 0 },
				OnPass: func(h *lb.Host) {
					if d := c.outlier.Load(); d != nil {
						d.HealthCheckPassed(h)
					}
				},
			})
			if err != nil { // Validate ran first: a bug
				c.log.Error("health checks not started", "error", err)
				hc = nil
			}
		}
		// Stop the old checker first, so none of its late results can
		// overwrite a flag the new one sets; the new one adopts the hosts'
		// current health instead of failing them all until their first
		// check (which would send the traffic to a lower priority or
		// into panic on every health-check change).
		if old := c.hc.Swap(nil); old != nil {
			old.Close()
			if hc == nil {
				for _, h := range hosts {
					h.SetFlag(lb.FailedActiveHC, false)
				}
			}
		}
		if hc != nil {
			if prev != nil && len(prev.HealthChecks) > 0 {
				hc.AdoptHosts(hosts)
			} else {
				hc.SetHosts(hosts)
			}
			c.hc.Store(hc)
		}
	}
	if prev != nil && !reflect.DeepEqual(prev.LB, cfg.LB) && !discoveryChanged(prev, cfg) {
		// Same hosts, new policy: rebuild the balancer over them.
		cur := c.hosts.Load()
		ts := make([]target, len(cur.hosts))
		for i, h := range cur.hosts {
			ts[i] = target{addr: h.Address, hostname: h.Hostname, weight: h.Weight(),
				priority: h.Priority, locality: h.Locality, unhealthy: h.Flags()&lb.FailedEDSHealth != 0}
		}
		for i := range ts {
			ts[i].localityWeight = localityWeight(cfg, ts[i].priority, ts[i].locality)
		}
		c.publishLocked(cur, ts, cfg)
	}
}

// localityWeight finds a locality's weight in cfg's endpoints.
func localityWeight(cfg *Config, priority uint32, locality string) uint32 {
	for _, ep := range cfg.Endpoints {
		if ep.Priority == priority && ep.Locality == locality {
			return ep.LocalityWeight
		}
	}
	return 0
}

// markReadyAfterHealthChecks marks the cluster ready once its health
// checker has a first result for every host (Envoy's cluster warming),
// or after warmTimeout; at once without health checks.
func (c *Cluster) markReadyAfterHealthChecks(warmTimeout time.Duration) {
	hc := c.hc.Load()
	if hc == nil {
		c.markReady()
		return
	}
	go func() {
		t := time.NewTimer(warmTimeout)
		defer t.Stop()
		select {
		case <-hc.Ready():
		case <-t.C:
			c.log.Warn("health checks gave no first result in time; cluster ready anyway", "after", warmTimeout)
		}
		c.markReady()
	}()
}

// stopResilience stops the health checker and the outlier detector.
func (c *Cluster) stopResilience() {
	if hc := c.hc.Swap(nil); hc != nil {
		hc.Close()
	}
	if d := c.outlier.Swap(nil); d != nil {
		d.Close()
	}
}

// reportOutcome tells the outlier detector how a request to h ended.
func (c *Cluster) reportOutcome(h *Host, status int, kind transport.Kind) {
	d := c.outlier.Load()
	if d == nil {
		return
	}
	o := outlier.Outcome{Status: status}
	if status == 0 {
		switch kind {
		case transport.KindConnect:
			o.Local = outlier.LocalConnectFailure
		case transport.KindTimeout:
			o.Local = outlier.LocalTimeout
		case transport.KindReset:
			o.Local = outlier.LocalReset
		default:
			return // canceled by the client, or never sent: says nothing of the host
		}
	}
	d.Report(h, o)
}

// OutlierStats reads the outlier detector's counters; ok is false when the
// cluster has no outlier detection.
func (c *Cluster) OutlierStats() (s outlier.Stats, ok bool) {
	if d := c.outlier.Load(); d != nil {
		return d.Stats(), true
	}
	return s, false
}

// HealthStats reads the active health checker's counters; ok is false when
// the cluster has no health checks.
func (c *Cluster) HealthStats() (s healthcheck.Stats, ok bool) {
	if hc := c.hc.Load(); hc != nil {
		return hc.Stats(), true
	}
	return s, false
}
