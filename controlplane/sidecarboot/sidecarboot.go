// Package sidecarboot renders the Envoy v3 bootstrap a proxy needs to
// follow outrigger-cp: its node identity, the admin listener, and ADS over
// gRPC to the control plane for listeners and clusters. `outrigger-cp
// bootstrap`, `outrigger-cp sidecar-init` and the tests that start real
// proxies against a control plane all use it.
package sidecarboot

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

// XDSCluster is the static cluster through which the proxy reaches the
// control plane.
const XDSCluster = "outrigger_xds"

// Options say which proxy and where things are.
type Options struct {
	// ID is the proxy's node id (its Consul service ID); Service its
	// node cluster (the destination service, or the gateway's name).
	ID, Service string
	// XDSAddr is the control plane's "host:port": an IP is used as is
	// (STATIC), a host name resolved by the proxy (STRICT_DNS).
	XDSAddr string
	// AdminAddr is the admin listener's "IP:port"; "" for none.
	AdminAddr string
	// Delta asks for incremental xDS (DELTA_GRPC) instead of state of the
	// world.
	Delta bool
	// XDSAddrName and AdminAddrName name the two addresses in errors
	// (a command line passes its flags' names); defaults "xds address"
	// and "admin address".
	XDSAddrName, AdminAddrName string
}

// Config builds the bootstrap, validated.
func Config(o Options) (*bootstrapv3.Bootstrap, error) {
	xdsName, adminName := o.XDSAddrName, o.AdminAddrName
	if xdsName == "" {
		xdsName = "xds address"
	}
	if adminName == "" {
		adminName = "admin address"
	}
	id, service := o.ID, o.Service
	xds, err := socketAddress(xdsName, o.XDSAddr)
	if err != nil {
		return nil, err
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
	apiType := corev3.ApiConfigSource_GRPC
	if o.Delta {
		apiType = corev3.ApiConfigSource_DELTA_GRPC
	}
	ads := func() *corev3.ConfigSource {
		return &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			ResourceApiVersion:    corev3.ApiVersion_V3,
		}
	}
	bs := &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: id, Cluster: service},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             apiType,
				TransportApiVersion: corev3.ApiVersion_V3,
				// The node (Envoy's is large) only on a stream's first request.
				SetNodeOnFirstMessageOnly: true,
				GrpcServices: []*corev3.GrpcService{{
					TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: XDSCluster}},
				}},
			},
			LdsConfig: ads(),
			CdsConfig: ads(),
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{
			Clusters: []*clusterv3.Cluster{{
				Name:                          XDSCluster,
				ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: discovery},
				ConnectTimeout:                durationpb.New(time.Second),
				TypedExtensionProtocolOptions: map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": h2},
				LoadAssignment: &endpointv3.ClusterLoadAssignment{
					ClusterName: XDSCluster,
					Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
						HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
							Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: xds}},
						}},
					}}}},
				},
			}},
		},
	}
	if o.AdminAddr != "" {
		admin, err := socketAddress(adminName, o.AdminAddr)
		if err != nil {
			return nil, err
		}
		if _, err := netip.ParseAddr(admin.GetAddress()); err != nil {
			return nil, fmt.Errorf("%s %q: the admin listener needs an IP address, not a host name", adminName, o.AdminAddr)
		}
		bs.Admin = &bootstrapv3.Admin{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: admin}}}
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

// YAML marshals with protojson (so the field names and well-known types
// are Envoy's) and converts to YAML.
func YAML(bs *bootstrapv3.Bootstrap) ([]byte, error) {
	js, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(bs)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(js)
}
