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
	quicv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/quic/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
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
	case kindSecret:
		m = new(tlsv3.Secret)
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
		if err == nil {
			e.secrets, err = listenerSecrets(r)
		}
	case *clusterv3.Cluster:
		e.refs = clusterEndpoints(r)
		e.secrets, err = clusterSecrets(r)
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
	case *tlsv3.Secret:
		return r.GetName()
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

// listenerSecrets returns the names of the SDS secrets the listener's TLS
// contexts (filter chains, default chain; TLS or QUIC) expect over ADS,
// sorted.
func listenerSecrets(l *listenerv3.Listener) ([]string, error) {
	var names []string
	chain := func(path string, fc *listenerv3.FilterChain) error {
		a := fc.GetTransportSocket().GetTypedConfig()
		if a == nil {
			return nil
		}
		var common *tlsv3.CommonTlsContext
		switch {
		case a.MessageIs((*tlsv3.DownstreamTlsContext)(nil)):
			d := new(tlsv3.DownstreamTlsContext)
			if err := anypb.UnmarshalTo(a, d, proto.UnmarshalOptions{}); err != nil {
				return fmt.Errorf("%s.transport_socket: decode DownstreamTlsContext: %w", path, err)
			}
			common = d.GetCommonTlsContext()
		case a.MessageIs((*quicv3.QuicDownstreamTransport)(nil)):
			q := new(quicv3.QuicDownstreamTransport)
			if err := anypb.UnmarshalTo(a, q, proto.UnmarshalOptions{}); err != nil {
				return fmt.Errorf("%s.transport_socket: decode QuicDownstreamTransport: %w", path, err)
			}
			common = q.GetDownstreamTlsContext().GetCommonTlsContext()
		}
		names = adsSecretNames(common, names)
		return nil
	}
	for i, fc := range l.GetFilterChains() {
		if err := chain(fmt.Sprintf("filter_chains[%d]", i), fc); err != nil {
			return nil, err
		}
	}
	if fc := l.GetDefaultFilterChain(); fc != nil {
		if err := chain("default_filter_chain", fc); err != nil {
			return nil, err
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// clusterSecrets returns the names of the SDS secrets the cluster's TLS
// context (TLS or QUIC) expects over ADS, sorted.
func clusterSecrets(c *clusterv3.Cluster) ([]string, error) {
	a := c.GetTransportSocket().GetTypedConfig()
	if a == nil {
		return nil, nil
	}
	var common *tlsv3.CommonTlsContext
	switch {
	case a.MessageIs((*tlsv3.UpstreamTlsContext)(nil)):
		u := new(tlsv3.UpstreamTlsContext)
		if err := anypb.UnmarshalTo(a, u, proto.UnmarshalOptions{}); err != nil {
			return nil, fmt.Errorf("transport_socket: decode UpstreamTlsContext: %w", err)
		}
		common = u.GetCommonTlsContext()
	case a.MessageIs((*quicv3.QuicUpstreamTransport)(nil)):
		q := new(quicv3.QuicUpstreamTransport)
		if err := anypb.UnmarshalTo(a, q, proto.UnmarshalOptions{}); err != nil {
			return nil, fmt.Errorf("transport_socket: decode QuicUpstreamTransport: %w", err)
		}
		common = q.GetUpstreamTlsContext().GetCommonTlsContext()
	}
	names := adsSecretNames(common, nil)
	slices.Sort(names)
	return slices.Compact(names), nil
}

// adsSecretNames appends the names of common's SDS references whose
// sds_config is ads.
func adsSecretNames(common *tlsv3.CommonTlsContext, names []string) []string {
	add := func(ref *tlsv3.SdsSecretConfig) {
		if ref.GetSdsConfig().GetAds() != nil && ref.GetName() != "" {
			names = append(names, ref.GetName())
		}
	}
	for _, ref := range common.GetTlsCertificateSdsSecretConfigs() {
		add(ref)
	}
	add(common.GetValidationContextSdsSecretConfig())
	add(common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig())
	return names
}
