package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/forward"
	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/proxy/snapshot"
	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
	"github.com/outrigger-mesh/outrigger/proxy/tracing"
	"github.com/outrigger-mesh/outrigger/proxy/transport"
)

// accessLogs shares one writer per path across connection managers, so two
// listeners logging to stdout do not interleave partial lines.
type accessLogs struct {
	mu   sync.Mutex
	byID map[string]*telemetry.AccessLogger
}

func newAccessLogs() *accessLogs {
	return &accessLogs{byID: map[string]*telemetry.AccessLogger{}}
}

func (a *accessLogs) get(path string) (*telemetry.AccessLogger, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if l, ok := a.byID[path]; ok {
		return l, nil
	}
	l, err := telemetry.NewAccessLogger(path)
	if err != nil {
		return nil, err
	}
	a.byID[path] = l
	return l, nil
}

func (a *accessLogs) closeAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for p, l := range a.byID {
		_ = l.Close()
		delete(a.byID, p)
	}
}

// listenerObserver feeds a listener's request metrics.
type listenerObserver struct{ s *telemetry.ListenerStats }

func (o listenerObserver) Observe(e *telemetry.Entry) {
	o.s.RecordRequest(e.Status, e.Duration)
}

// clusterSource resolves cluster names for the connection managers. A
// *cluster.Cluster is a forward.Upstream as it is: no per-request wrapper.
type clusterSource struct{ m *cluster.Manager }

func (s clusterSource) Upstream(name string) (forward.Upstream, bool) {
	c := s.m.Get(name)
	if c == nil {
		return nil, false
	}
	return c, true
}

// clusterDialer connects the tracing exporters of envoy_grpc clusters to
// a host of the cluster (plaintext TCP).
func clusterDialer(m *cluster.Manager) tracing.Dialer {
	return func(ctx context.Context, name string) (net.Conn, error) {
		c := m.Get(name)
		if c == nil {
			return nil, fmt.Errorf("tracing: cluster %q does not exist", name)
		}
		h, err := c.Pick(nil)
		if err != nil {
			return nil, fmt.Errorf("tracing: cluster %q: %w", name, err)
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", h.Address)
	}
}

// classify maps the cluster's and transport's typed errors to reasons.
func classify(err error) (forward.Reason, bool) {
	switch {
	case errors.Is(err, cluster.ErrNoHealthyUpstream):
		return forward.ReasonNoHealthyUpstream, true
	case errors.Is(err, cluster.ErrOverflow), errors.Is(err, transport.ErrOverflow):
		return forward.ReasonOverflow, true
	case errors.Is(err, transport.ErrConnect):
		return forward.ReasonConnectFailure, true
	case errors.Is(err, transport.ErrTimeout):
		return forward.ReasonUpstreamTimeout, true
	case errors.Is(err, transport.ErrReset):
		return forward.ReasonUpstreamReset, true
	}
	return 0, false
}

// downstreamCounts reads the listeners' counters for a metrics scrape.
func (s *Server) downstreamCounts() []telemetry.DownstreamCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]telemetry.DownstreamCounts, 0, len(s.listeners))
	for _, ll := range s.listeners {
		st := ll.l.Stats()
		out = append(out, telemetry.DownstreamCounts{
			Listener:            ll.name,
			CxTotal:             st.DownstreamCxTotal,
			CxActive:            st.DownstreamCxActive,
			CxRejected:          st.DownstreamCxRejected,
			CxFiltered:          st.CxFiltered,
			RqSmugglingRejected: st.RqSmugglingRejected,
			RqHeadersTooLarge:   st.RqHeadersTooLarge,
			RqHeaderTimeouts:    st.RqHeaderTimeouts,
			Filters:             ll.filterStats(),
		})
	}
	return out
}

// upstreamCounts reads the clusters' counters for a metrics scrape.
func (s *Server) upstreamCounts() []telemetry.UpstreamCounts {
	cls := s.cls.Clusters()
	out := make([]telemetry.UpstreamCounts, 0, len(cls))
	for _, c := range cls {
		st := c.Stats()
		out = append(out, telemetry.UpstreamCounts{
			Cluster:       c.Name(),
			RqTotal:       st.RqTotal.Load(),
			RqActive:      st.RqActive.Load(),
			Rq5xx:         st.Rq5xx.Load(),
			RqConnectFail: st.RqConnectFail.Load(),
			RqReset:       st.RqReset.Load(),
			RqTimeout:     st.RqTimeout.Load(),
			RqCanceled:    st.RqCanceled.Load(),
			CxTotal:       st.CxTotal.Load(),
			CxActive:      st.CxActive.Load(),
			CxConnectFail: st.CxConnectFail.Load(),

			RqRetry:           st.RqRetry.Load(),
			RqRetrySuccess:    st.RqRetrySuccess.Load(),
			RqRetryOverflow:   st.RqRetryOverflow.Load(),
			RqPendingOverflow: st.RqPendingOverflow.Load(),
			CxOverflow:        st.CxOverflow.Load(),
		})
		u := &out[len(out)-1]
		cum, sum := st.RqTime.Read()
		u.RqTimeBuckets, u.RqTimeSum = cum[:], sum
		if os, ok := c.OutlierStats(); ok {
			u.Outlier = true
			u.EjectionsActive = os.EjectionsActive
			u.EjectionsEnforced = os.EjectionsEnforcedTotal
			u.EjectionsOverflow = os.EjectionsOverflow
		}
		if hs, ok := c.HealthStats(); ok {
			u.HealthChecked = true
			u.HCAttempt, u.HCSuccess, u.HCFailure, u.HCHealthy = hs.Attempt, hs.Success, hs.Failure, hs.Healthy
		}
	}
	return out
}

// localCertificate returns what a chain's TLS config presents, for the By
// of x-forwarded-client-cert: its first static certificate, or the one its
// GetCertificate / GetConfigForClient returns now (certificates from SDS
// rotate), parsed once per certificate. nil without TLS.
func localCertificate(cfg *tls.Config) func() *x509.Certificate {
	if cfg == nil {
		return nil
	}
	var last atomic.Pointer[parsedCert]
	return func() *x509.Certificate {
		cert := currentCertificate(cfg)
		if cert == nil || len(cert.Certificate) == 0 {
			return nil
		}
		if cert.Leaf != nil {
			return cert.Leaf
		}
		der := cert.Certificate[0]
		if p := last.Load(); p != nil && bytes.Equal(p.der, der) {
			return p.leaf
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			return nil
		}
		last.Store(&parsedCert{der: der, leaf: leaf})
		return leaf
	}
}

type parsedCert struct {
	der  []byte
	leaf *x509.Certificate
}

func currentCertificate(cfg *tls.Config) *tls.Certificate {
	for range 2 { // GetConfigForClient returns a config that has them
		switch {
		case len(cfg.Certificates) > 0:
			return &cfg.Certificates[0]
		case cfg.GetCertificate != nil:
			c, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
			if err != nil {
				return nil
			}
			return c
		case cfg.GetConfigForClient != nil:
			next, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
			if err != nil || next == nil {
				return nil
			}
			cfg = next
		default:
			return nil
		}
	}
	return nil
}

// filterStats sums a listener's filter counters by statistic name: its
// connection managers' HTTP filters and its chains' network filters.
func (ll *liveListener) filterStats() map[string]uint64 {
	var out map[string]uint64
	add := func(m map[string]uint64) {
		if len(m) == 0 {
			return
		}
		if out == nil {
			out = map[string]uint64{}
		}
		for k, v := range m {
			out[k] += v
		}
	}
	for _, h := range ll.handlers {
		add(h.FilterStats())
	}
	for _, f := range ll.connFilters {
		if r, ok := f.(hcm.StatsReporter); ok {
			add(r.Stats())
		}
	}
	return out
}

// loggedFilter is a filter that logs (RBAC denials with both identities,
// JWT failures, ...) once given the proxy's logger.
type loggedFilter interface{ SetLogger(hclog.Logger) }

// setFilterLoggers hands every filter of a listener that logs a logger
// named for its kind and scoped to the listener.
func setFilterLoggers(log hclog.Logger, lname string, chains []listener.FilterChain, sl *snapshot.Listener) {
	set := func(f any) {
		if lf, ok := f.(loggedFilter); ok {
			lf.SetLogger(log.Named("filter").With("listener", lname))
		}
	}
	for _, fc := range chains {
		for _, f := range fc.ConnFilters {
			set(f)
		}
	}
	if sl.Config.DefaultChain != nil {
		for _, f := range sl.Config.DefaultChain.ConnFilters {
			set(f)
		}
	}
	hcms := append([]hcm.Config(nil), sl.HTTP...)
	if sl.DefaultHTTP != nil {
		hcms = append(hcms, *sl.DefaultHTTP)
	}
	for _, h := range hcms {
		for _, f := range h.Filters {
			if f.HTTP != nil {
				set(f.HTTP)
			}
		}
	}
}
