package client

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

var (
	resourceWrapperURL = resource.APITypePrefix + string(proto.MessageName(&discoveryv3.Resource{}))
	hcmURL             = resource.APITypePrefix + string(proto.MessageName(&hcmv3.HttpConnectionManager{}))
)

// decoded is one resource of a response.
type decoded struct {
	name string
	e    *entry // nil for a heartbeat: a wrapper without a body keeps what we have
}

// decodeAny decodes one state-of-the-world resource of kind k: the Any
// itself, or an envoy.service.discovery.v3.Resource wrapping it.
func decodeAny(k kind, a *anypb.Any) (decoded, error) {
	if a.GetTypeUrl() == resourceWrapperURL {
		w := new(discoveryv3.Resource)
		if err := anypb.UnmarshalTo(a, w, proto.UnmarshalOptions{}); err != nil {
			return decoded{}, fmt.Errorf("decode Resource wrapper: %w", err)
		}
		return decodeWrapped(k, w)
	}
	e, name, err := decodeBody(k, a)
	if err != nil {
		return decoded{}, err
	}
	return decoded{name: name, e: e}, nil
}

// decodeWrapped decodes a Resource wrapper (delta's unit, optional in the
// state of the world). Its name, when set, must match the body's.
func decodeWrapped(k kind, w *discoveryv3.Resource) (decoded, error) {
	if w.GetResource() == nil {
		if w.GetName() == "" {
			return decoded{}, errors.New("resource wrapper with neither name nor body")
		}
		return decoded{name: w.GetName()}, nil
	}
	e, name, err := decodeBody(k, w.GetResource())
	if err != nil {
		if w.GetName() != "" {
			return decoded{}, fmt.Errorf("%s %q: %w", kindNoun[k], w.GetName(), err)
		}
		return decoded{}, err
	}
	if w.GetName() != "" && w.GetName() != name {
		return decoded{}, fmt.Errorf("%s %q: wrapper is named %q", kindNoun[k], name, w.GetName())
	}
	e.version = w.GetVersion()
	return decoded{name: name, e: e}, nil
}

// decodeBody unmarshals a into kind k's message and derives what it
// references.
func decodeBody(k kind, a *anypb.Any) (*entry, string, error) {
	if a.GetTypeUrl() != kindURL[k] {
		return nil, "", fmt.Errorf("resource of type %q in a %s response", a.GetTypeUrl(), kindURL[k])
	}
	var m proto.Message
	switch k {
	case kindListener:
		m = new(listenerv3.Listener)
	case kindRoute:
		m = new(routev3.RouteConfiguration)
	case kindCluster:
		m = new(clusterv3.Cluster)
	case kindEndpoint:
		m = new(endpointv3.ClusterLoadAssignment)
	}
	if err := anypb.UnmarshalTo(a, m, proto.UnmarshalOptions{}); err != nil {
		return nil, "", fmt.Errorf("decode %s: %w", kindNoun[k], err)
	}
	name := nameOf(m)
	if name == "" {
		return nil, "", fmt.Errorf("%s without a name", kindNoun[k])
	}
	e := &entry{msg: m}
	var err error
	switch r := m.(type) {
	case *listenerv3.Listener:
		e.refs, err = listenerRoutes(r)
	case *clusterv3.Cluster:
		e.refs = clusterEndpoints(r)
	}
	if err != nil {
		return nil, name, fmt.Errorf("%s %q: %w", kindNoun[k], name, err)
	}
	return e, name, nil
}

func nameOf(m proto.Message) string {
	switch r := m.(type) {
	case *listenerv3.Listener:
		return r.GetName()
	case *routev3.RouteConfiguration:
		return r.GetName()
	case *clusterv3.Cluster:
		return r.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return r.GetClusterName()
	}
	return ""
}

// listenerRoutes returns the RDS names of every HttpConnectionManager in the
// listener's filter chains, default chain and api_listener, sorted.
func listenerRoutes(l *listenerv3.Listener) ([]string, error) {
	var names []string
	add := func(path string, a *anypb.Any) error {
		if a.GetTypeUrl() != hcmURL {
			return nil
		}
		hcm := new(hcmv3.HttpConnectionManager)
		if err := anypb.UnmarshalTo(a, hcm, proto.UnmarshalOptions{}); err != nil {
			return fmt.Errorf("%s: decode http_connection_manager: %w", path, err)
		}
		rds := hcm.GetRds()
		if rds == nil {
			return nil
		}
		if rds.GetRouteConfigName() == "" {
			return fmt.Errorf("%s: rds without route_config_name", path)
		}
		names = append(names, rds.GetRouteConfigName())
		return nil
	}
	chains := func(prefix string, fc *listenerv3.FilterChain) error {
		for i, f := range fc.GetFilters() {
			if err := add(fmt.Sprintf("%s.filters[%d].typed_config", prefix, i), f.GetTypedConfig()); err != nil {
				return err
			}
		}
		return nil
	}
	for i, fc := range l.GetFilterChains() {
		if err := chains(fmt.Sprintf("filter_chains[%d]", i), fc); err != nil {
			return nil, err
		}
	}
	if fc := l.GetDefaultFilterChain(); fc != nil {
		if err := chains("default_filter_chain", fc); err != nil {
			return nil, err
		}
	}
	if a := l.GetApiListener().GetApiListener(); a != nil {
		if err := add("api_listener.api_listener", a); err != nil {
			return nil, err
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// clusterEndpoints returns the EDS name of an EDS cluster: its
// eds_cluster_config.service_name, else its name.
func clusterEndpoints(c *clusterv3.Cluster) []string {
	if c.GetType() != clusterv3.Cluster_EDS {
		return nil
	}
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return []string{n}
	}
	return []string{c.GetName()}
}

// joinErrors renders up to a few errors as one error_detail message.
func joinErrors(errs []error) string {
	const most = 8
	var b strings.Builder
	for i, err := range errs {
		if i == most {
			fmt.Fprintf(&b, "; and %d more", len(errs)-most)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}
