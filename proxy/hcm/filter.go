package hcm

import (
	"net/http"
	"net/netip"

	"github.com/outrigger-mesh/outrigger/proxy/router"
)

// HTTPFilter is an HTTP filter before the router other than the fault and
// grpc_web filters, which the handler runs itself: jwt_authn, rbac,
// local_ratelimit and cors are HTTPFilters built by their own packages.
// Filters run in their listed order once the request's route is matched
// and its cluster picked, direct responses and redirects included (as
// Envoy's router makes those after every decoder filter); a request that
// matches no route gets its 404 without running them.
type HTTPFilter interface {
	// Decode sees the request before the router. It may edit the request
	// headers (they are forwarded as left) and set response headers on w
	// (the upstream's response headers are added to them). To answer the
	// request itself it writes the whole reply (forward.WriteReply shapes
	// one for gRPC too) and returns a Verdict with Status set; no later
	// filter nor the router runs then. Decode must be safe for concurrent
	// use.
	Decode(w http.ResponseWriter, r *http.Request, in *FilterInput) Verdict
}

// ClusterUser is an HTTPFilter that sends requests of its own through
// clusters (jwt_authn fetches remote JWKS): New hands it Deps.Clusters.
type ClusterUser interface {
	UseClusters(Clusters)
}

// FilterInput is what an HTTPFilter learns about a request besides the
// request itself.
type FilterInput struct {
	Route *router.Route
	VHost *router.VirtualHost
	// Cluster is the upstream cluster picked for the request; "" for a
	// direct response or a redirect.
	Cluster string
	// ClientAddress is the client's IP as the connection manager sees it
	// (Envoy's downstream remote address): the peer with
	// use_remote_address, else the x-forwarded-for entry
	// xff_num_trusted_hops from the right.
	ClientAddress netip.Addr
}

// PerRoute is the typed_per_filter_config entry named name (the filter's
// name in http_filters) as its package converted it: the route's, else
// the virtual host's, else nil.
func (in *FilterInput) PerRoute(name string) any {
	if in.Route != nil {
		if v, ok := in.Route.PerFilter[name]; ok {
			return v
		}
	}
	if in.VHost != nil {
		if v, ok := in.VHost.PerFilter[name]; ok {
			return v
		}
	}
	return nil
}

// Verdict is an HTTPFilter's decision; the zero Verdict passes the request
// on.
type Verdict struct {
	// Status is the HTTP status of the reply the filter wrote; 0 passes.
	Status int
	// GRPCStatus is the grpc-status of that reply, when it is one.
	GRPCStatus string
	// Flag is the access log's response flag: Envoy's RL for a rate-limited
	// request; an RBAC or JWT denial sets none, as in Envoy.
	Flag string
}

// Stopped says the filter answered the request.
func (v Verdict) Stopped() bool { return v.Status != 0 }

// StatsReporter is implemented by filters that keep counters (Envoy's
// http.<stat_prefix>.<filter>.* statistics; network filters report the
// same way through listener.ConnFilter values that implement it).
type StatsReporter interface {
	// Stats returns the counters by Envoy's statistic name without the
	// connection manager's prefix (e.g. "rbac.denied").
	Stats() map[string]uint64
}

// FilterStats sums the counters of the filters before the router, by
// statistic name: the fault filters' (fault.*) and every HTTPFilter that is
// a StatsReporter.
func (h *Handler) FilterStats() map[string]uint64 {
	out := map[string]uint64{}
	for _, s := range h.steps {
		var m map[string]uint64
		switch {
		case s.fault != nil:
			m = s.fault.Stats().Named()
		default:
			if r, ok := s.http.(StatsReporter); ok {
				m = r.Stats()
			}
		}
		for k, v := range m {
			out[k] += v
		}
	}
	return out
}
