package translate

import (
	"fmt"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Envoy's names for the filters we emit.
const (
	hcmFilterName      = "envoy.filters.network.http_connection_manager"
	tcpProxyFilterName = "envoy.filters.network.tcp_proxy"
	routerFilterName   = "envoy.filters.http.router"
)

// marshalAny packs m deterministically, so equal input gives equal bytes.
func marshalAny(m proto.Message) (*anypb.Any, error) {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil, fmt.Errorf("encoding %s: %w", m.ProtoReflect().Descriptor().Name(), err)
	}
	return a, nil
}

// connectionManager is an HTTP connection manager with only the router
// filter, routing by rds (a route name) or an inline route table.
func connectionManager(statPrefix string, rds string, inline *routev3.RouteConfiguration) (*hcmv3.HttpConnectionManager, error) {
	router, err := marshalAny(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	h := &hcmv3.HttpConnectionManager{
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		StatPrefix: statPrefix,
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       routerFilterName,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
	}
	if inline != nil {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: inline}
	} else {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: rds,
		}}
	}
	return h, nil
}

// hcmFilter is the network filter holding hcm. Its error is the encoding's;
// the caller names the listener.
func hcmFilter(hcm *hcmv3.HttpConnectionManager) (*listenerv3.Filter, error) {
	cfg, err := marshalAny(hcm)
	if err != nil {
		return nil, err
	}
	return &listenerv3.Filter{Name: hcmFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: cfg}}, nil
}

// tcpProxyFilter proxies bytes to cluster. Its error is the encoding's;
// the caller names the listener.
func tcpProxyFilter(statPrefix, cluster string) (*listenerv3.Filter, error) {
	cfg, err := marshalAny(&tcpproxyv3.TcpProxy{
		StatPrefix:       statPrefix,
		ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
	})
	if err != nil {
		return nil, err
	}
	return &listenerv3.Filter{Name: tcpProxyFilterName, ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: cfg}}, nil
}

// socketListener listens on host:port with one filter chain of filters,
// which may be shared with other listeners (the slice too: it is not
// modified).
func socketListener(name, host string, port int, filters ...*listenerv3.Filter) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:         name,
		Address:      socketAddress(host, port),
		FilterChains: []*listenerv3.FilterChain{{Filters: filters}},
	}
}

// apiListener is what grpc-go's xDS resolver asks for with target
// xds:///<name>: a listener with no socket, holding a connection manager
// that takes route <name> from ADS.
func apiListener(name string) (*listenerv3.Listener, error) {
	h, err := connectionManager(name, name, nil)
	if err != nil {
		return nil, err
	}
	cfg, err := marshalAny(h)
	if err != nil {
		return nil, fmt.Errorf("translate: listener %q: %w", name, err)
	}
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: cfg},
	}, nil
}

// localAppRoute is the inbound route table: everything to local_app, with
// requestTimeout when it is not negative (0 disables the timeout).
func localAppRoute(requestTimeout time.Duration) *routev3.RouteConfiguration {
	action := &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: localAppName}}
	if requestTimeout >= 0 {
		action.Timeout = durationpb.New(requestTimeout)
	}
	return &routev3.RouteConfiguration{
		Name: publicListenerName,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    publicListenerName,
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match:  routeMatch(nil),
				Action: &routev3.Route_Route{Route: action},
			}},
		}},
	}
}
