package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"sigs.k8s.io/yaml"
)

// xdsCluster is the static cluster through which the proxy reaches us.
const xdsCluster = "outrigger_xds"

// proxyLookup finds a registered sidecar.
type proxyLookup interface {
	// ProxyDestination returns the destination service of the connect-proxy
	// registered with service ID id, or an error that says why there is
	// none.
	ProxyDestination(id string) (string, error)
}

// bootstrapYAML looks the proxy up and renders its bootstrap.
func bootstrapYAML(o *bootstrapOptions, lookup proxyLookup) ([]byte, error) {
	service, err := lookup.ProxyDestination(o.proxyID)
	if err != nil {
		return nil, err
	}
	bs, err := bootstrapConfig(o.proxyID, service, o.xdsAddr, o.adminAddr)
	if err != nil {
		return nil, err
	}
	return renderYAML(bs)
}

// bootstrapConfig builds the Envoy v3 bootstrap of proxy id (node.cluster
// is its destination service): ADS over gRPC to xdsAddr for listeners and
// clusters, the admin listener on adminAddr.
func bootstrapConfig(id, service, xdsAddr, adminAddr string) (*bootstrapv3.Bootstrap, error) {
	xds, err := socketAddress("-xds-addr", xdsAddr)
	if err != nil {
		return nil, err
	}
	admin, err := socketAddress("-admin-addr", adminAddr)
	if err != nil {
		return nil, err
	}
	if _, err := netip.ParseAddr(admin.GetAddress()); err != nil {
		return nil, fmt.Errorf("-admin-addr %q: the admin listener needs an IP address, not a host name", adminAddr)
	}
	// A host name is resolved by the proxy (STRICT_DNS); an IP is used as is.
	discovery := clusterv3.Cluster_STATIC
	if _, err := netip.ParseAddr(xds.GetAddress()); err != nil {
		discovery = clusterv3.Cluster_STRICT_DNS
	}
	h2, err := anypb.New(&httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	})
	if err != nil {
		return nil, err
	}
	ads := func() *corev3.ConfigSource {
		return &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			ResourceApiVersion:    corev3.ApiVersion_V3,
		}
	}
	bs := &bootstrapv3.Bootstrap{
		Node:  &corev3.Node{Id: id, Cluster: service},
		Admin: &bootstrapv3.Admin{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: admin}}},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				// The node (Envoy's is large) only on a stream's first request.
				SetNodeOnFirstMessageOnly: true,
				GrpcServices: []*corev3.GrpcService{{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: xdsCluster}},
				}},
			},
			LdsConfig: ads(),
			CdsConfig: ads(),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Clusters: []*clusterv3.Cluster{{
				Name:                          xdsCluster,
				ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: discovery},
				ConnectTimeout:                durationpb.New(time.Second),
				TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2},
				LoadAssignment: &endpointv3.ClusterLoadAssignment{
					ClusterName: xdsCluster,
					Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
						HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
							Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: xds}},
						}},
					}}}},
				},
			}},
		},
	}
	if err := bs.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap for %q: %w", id, err)
	}
	return bs, nil
}

// socketAddress parses "host:port".
func socketAddress(flagName, hostPort string) (*corev3.SocketAddress, error) {
	host, portStr, err := net.SplitHostPort(hostPort)
	if err != nil {
		return nil, fmt.Errorf("%s %q: %w", flagName, hostPort, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || port == 0 {
		return nil, fmt.Errorf("%s %q: the port must be 1-65535", flagName, hostPort)
	}
	if host == "" {
		return nil, fmt.Errorf("%s %q: a host is required", flagName, hostPort)
	}
	return &corev3.SocketAddress{Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)}}, nil
}

// renderYAML marshals with protojson (so the field names and well-known
// types are Envoy's) and converts to YAML.
func renderYAML(bs *bootstrapv3.Bootstrap) ([]byte, error) {
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(bs)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(js)
}
