package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/consul/api"
)

// newConsulClient returns a client of the Consul agent at addr ("host:port"
// or a URL); token and TLS settings still come from the CONSUL_* variables.
func newConsulClient(addr string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul at %s: %w", addr, err)
	}
	return c, nil
}

// newWatcherClient is newConsulClient whose failed queries are counted by
// q (a unix-socket address is not counted: the Consul client builds its own
// transport for it).
func newWatcherClient(addr string, q *queryErrors) (*api.Client, error) {
	cfg := api.DefaultConfig()
	cfg.Address = addr
	hc, err := api.NewHttpClient(cfg.Transport, cfg.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("consul at %s: %w", addr, err)
	}
	q.next = hc.Transport
	hc.Transport = q
	cfg.HttpClient = hc
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("consul at %s: %w", addr, err)
	}
	return c, nil
}

// queryErrors is the watcher's HTTP transport: it counts each query that
// failed (no answer, or an error status) by its watch kind, through count
// once the xDS server that keeps the metric exists. A query cancelled by
// its caller (a watch stopped, the watcher ending) is no failure.
type queryErrors struct {
	next  http.RoundTripper
	count atomic.Pointer[func(watch string)]
}

// RoundTrip implements http.RoundTripper.
func (q *queryErrors) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := q.next.RoundTrip(r)
	failed := err == nil && resp.StatusCode >= http.StatusBadRequest ||
		err != nil && !errors.Is(r.Context().Err(), context.Canceled)
	if failed {
		if count := q.count.Load(); count != nil {
			(*count)(watchKind(r.URL.Path))
		}
	}
	return resp, err
}

// countInto directs the counts to f.
func (q *queryErrors) countInto(f func(watch string)) { q.count.Store(&f) }

// perNameQueries are the Consul queries with a service name at the end of
// their path; the name is left out of the watch kind.
var perNameQueries = []string{"catalog/service", "health/service", "health/connect", "agent/connect/ca/leaf"}

// watchKind names the watch of a Consul API path as the watcher names it,
// without per-service names: /v1/health/connect/web is "health/connect",
// /v1/config/service-router "config/service-router".
func watchKind(path string) string {
	p := strings.TrimPrefix(path, "/v1/")
	for _, q := range perNameQueries {
		if strings.HasPrefix(p, q+"/") {
			return q
		}
	}
	if kind, ok := strings.CutPrefix(p, "config/"); ok {
		kind, _, _ = strings.Cut(kind, "/")
		return "config/" + kind
	}
	return p
}

// consulLookup finds sidecars in Consul: first among the agent's own
// services, then in the catalog (a sidecar registered through another
// agent).
type consulLookup struct {
	client *api.Client
	addr   string
}

// ProxyDestination implements proxyLookup.
func (l consulLookup) ProxyDestination(id string) (string, error) {
	svc, _, err := l.client.Agent().Service(id, nil)
	var se api.StatusError
	switch {
	case err == nil:
		if svc.Kind == api.ServiceKindIngressGateway {
			// A gateway's node.cluster is its own service name.
			return destination(id, svc.Service)
		}
		if svc.Kind != api.ServiceKindConnectProxy || svc.Proxy == nil {
			return "", notProxy(id, string(svc.Kind))
		}
		return destination(id, svc.Proxy.DestinationServiceName)
	case errors.As(err, &se) && se.Code == http.StatusNotFound:
	default:
		return "", fmt.Errorf("looking up service %q in Consul at %s: %w", id, l.addr, err)
	}

	expr, ok := idFilter(id)
	if !ok {
		return "", notFound(id, l.addr)
	}
	filter := &api.QueryOptions{Filter: expr}
	names, _, err := l.client.Catalog().Services(filter)
	if err != nil {
		return "", fmt.Errorf("looking up service %q in Consul's catalog at %s: %w", id, l.addr, err)
	}
	for name := range names {
		// api.CatalogService does not decode ServiceKind.
		var entries []struct {
			api.CatalogService
			ServiceKind api.ServiceKind
		}
		_, err := l.client.Raw().Query("/v1/catalog/service/"+url.PathEscape(name), &entries, filter)
		if err != nil {
			return "", fmt.Errorf("looking up service %q in Consul's catalog at %s: %w", id, l.addr, err)
		}
		for _, e := range entries {
			if e.ServiceID != id {
				continue
			}
			if e.ServiceKind == api.ServiceKindIngressGateway {
				return destination(id, e.ServiceName)
			}
			if e.ServiceProxy == nil || e.ServiceProxy.DestinationServiceName == "" {
				return "", notProxy(id, "")
			}
			return destination(id, e.ServiceProxy.DestinationServiceName)
		}
	}
	return "", notFound(id, l.addr)
}

// idFilter is the Consul filter expression matching service ID id. Its
// string literals have no escapes: a raw `...` string holds anything but a
// backtick, a "..." string anything but a quote (and a backslash, which
// would be unquoted). An ID with both is not one a filter can name.
func idFilter(id string) (string, bool) {
	if !strings.Contains(id, "`") {
		return "ServiceID == `" + id + "`", true
	}
	if !strings.ContainsAny(id, `"\`) {
		return `ServiceID == "` + id + `"`, true
	}
	return "", false
}

func notFound(id, addr string) error {
	return fmt.Errorf("no service with ID %q is registered in Consul at %s: register the sidecar (kind connect-proxy) or the ingress gateway first", id, addr)
}

func notProxy(id, kind string) error {
	if kind == "" {
		kind = "typical"
	}
	return fmt.Errorf("service %q is registered in Consul but is not a connect-proxy (kind %s): give the sidecar's or the ingress gateway's service ID", id, kind)
}

func destination(id, service string) (string, error) {
	if service == "" {
		return "", fmt.Errorf("connect-proxy %q has no proxy.destination_service_name in Consul", id)
	}
	return service, nil
}
