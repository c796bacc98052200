package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

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
		entries, _, err := l.client.Catalog().Service(name, "", filter)
		if err != nil {
			return "", fmt.Errorf("looking up service %q in Consul's catalog at %s: %w", id, l.addr, err)
		}
		for _, e := range entries {
			if e.ServiceID != id {
				continue
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
	return fmt.Errorf("no service with ID %q is registered in Consul at %s: register the sidecar (kind connect-proxy) first", id, addr)
}

func notProxy(id, kind string) error {
	if kind == "" {
		kind = "typical"
	}
	return fmt.Errorf("service %q is registered in Consul but is not a connect-proxy (kind %s): give the sidecar's service ID", id, kind)
}

func destination(id, service string) (string, error) {
	if service == "" {
		return "", fmt.Errorf("connect-proxy %q has no proxy.destination_service_name in Consul", id)
	}
	return service, nil
}
