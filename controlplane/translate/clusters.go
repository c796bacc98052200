package translate

import (
	"net"
	"net/netip"
	"sort"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/hashicorp/consul/api"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// mode says who consumes the output, which decides whose endpoints a
// cluster gets and a few details of shape.
type mode int

const (
	// sidecarMode: endpoints are the sidecars in front of each instance.
	sidecarMode mode = iota
	// proxylessMode: endpoints are the service's own instances, for gRPC
	// clients that dial them directly; CLAs carry the locality and weight
	// grpc-go requires, and LB policies grpc-go lacks are mapped.
	proxylessMode
)

// upstreamHTTPOptionsKey is the typed_extension_protocol_options key of
// HttpProtocolOptions.
const upstreamHTTPOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// adsSource is the config source of every dynamic resource: the same ADS
// stream.
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

// edsCluster is the cluster of one resolved target, for an upstream whose
// config resolved to s. A sidecar's gets what Consul gives every target
// cluster of a discovery chain (makeUpstreamClustersForDiscoveryChain):
// panic mode off, the upstream's limits as circuit breakers and its
// passive health check as outlier detection, present even when empty.
// Proxyless clusters have no downstream whose config could apply.
func edsCluster(m *model.Mesh, res *resolution, md mode, s clusterSettings) (*clusterv3.Cluster, error) {
	connectTimeout := res.connectTimeout
	if s.connectTimeout > 0 {
		connectTimeout = s.connectTimeout
	}
	c := &clusterv3.Cluster{
		Name:                 res.target.cluster(),
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		ConnectTimeout:       durationpb.New(connectTimeout),
	}
	if md == sidecarMode {
		c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 0}}
		c.CircuitBreakers = s.limits.circuitBreakers()
		c.OutlierDetection = s.passive.outlierDetection()
	}
	setLB(c, res.lb, md)
	if err := setUpstreamProtocol(c, m.Protocol(res.target.service)); err != nil {
		return nil, err
	}
	return c, nil
}

// setLB maps a resolver's load balancer onto the cluster. gRPC clients
// implement only ROUND_ROBIN, RING_HASH and LEAST_REQUEST: for them random
// becomes ROUND_ROBIN and maglev (a consistent hash) RING_HASH.
func setLB(c *clusterv3.Cluster, lb *api.LoadBalancer, md mode) {
	if lb == nil {
		return
	}
	switch lb.Policy {
	case "least_request":
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		if lr := lb.LeastRequestConfig; lr != nil && lr.ChoiceCount > 0 {
			c.LbConfig = &clusterv3.Cluster_LeastRequestLbConfig_{LeastRequestLbConfig: &clusterv3.Cluster_LeastRequestLbConfig{
				ChoiceCount: wrapperspb.UInt32(lr.ChoiceCount),
			}}
		}
	case "random":
		if md == sidecarMode {
			c.LbPolicy = clusterv3.Cluster_RANDOM
		}
	case "ring_hash", "maglev":
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		if lb.Policy == "maglev" && md == sidecarMode {
			c.LbPolicy = clusterv3.Cluster_MAGLEV
			return
		}
		if rh := lb.RingHashConfig; rh != nil && (rh.MinimumRingSize > 0 || rh.MaximumRingSize > 0) {
			cfg := &clusterv3.Cluster_RingHashLbConfig{}
			if rh.MinimumRingSize > 0 {
				cfg.MinimumRingSize = wrapperspb.UInt64(rh.MinimumRingSize)
			}
			if rh.MaximumRingSize > 0 {
				cfg.MaximumRingSize = wrapperspb.UInt64(rh.MaximumRingSize)
			}
			c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: cfg}
		}
	}
}

// setUpstreamProtocol makes the cluster speak HTTP/2 to http2 and grpc
// services; HTTP/1.1 and tcp need nothing (Envoy's default).
func setUpstreamProtocol(c *clusterv3.Cluster, protocol string) error {
	if protocol != "http2" && protocol != "grpc" {
		return nil
	}
	opts, err := marshalAny(&upstreamhttpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
				},
			},
		},
	})
	if err != nil {
		return err
	}
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{upstreamHTTPOptionsKey: opts}
	return nil
}

// loadAssignment is the CLA of one resolved target: its endpoints at
// priority 0 and each failover target's at priorities 1..n. Every priority
// is present (possibly empty) when there is failover, so priorities stay
// contiguous as gRPC requires; an address appears once, at its best
// priority.
func loadAssignment(m *model.Mesh, res *resolution, md mode) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: res.target.cluster()}
	seen := map[string]bool{}
	for prio, t := range append([]target{res.target}, res.failover...) {
		eps := lbEndpoints(endpointsOf(m, t, md), seen)
		if len(eps) == 0 && len(res.failover) == 0 {
			break
		}
		loc := &endpointv3.LocalityLbEndpoints{LbEndpoints: eps, Priority: uint32(prio)}
		if md == proxylessMode {
			loc.Locality = &corev3.Locality{}
			loc.LoadBalancingWeight = wrapperspb.UInt32(1)
		}
		cla.Endpoints = append(cla.Endpoints, loc)
	}
	return cla
}

// endpointsOf returns the passing entries that serve t: the sidecars in
// front of the service (or of the subset) for sidecars, the instances
// themselves for proxyless clients.
func endpointsOf(m *model.Mesh, t target, md mode) []*api.ServiceEntry {
	s := m.Services[t.service]
	if s == nil {
		return nil
	}
	switch {
	case md == sidecarMode && t.subset == "":
		return s.Sidecars
	case md == sidecarMode:
		return s.Subsets[t.subset]
	case t.subset == "":
		return s.Instances
	}
	// The model evaluates subset filters on sidecars only; a subset's
	// instances are the ones its sidecars front (same node, the sidecar's
	// DestinationServiceID).
	type key struct{ node, id string }
	fronted := map[key]bool{}
	for _, sc := range s.Subsets[t.subset] {
		if sc.Node != nil && sc.Service != nil && sc.Service.Proxy != nil {
			fronted[key{sc.Node.Node, sc.Service.Proxy.DestinationServiceID}] = true
		}
	}
	var out []*api.ServiceEntry
	for _, in := range s.Instances {
		if in.Node != nil && in.Service != nil && fronted[key{in.Node.Node, in.Service.ID}] {
			out = append(out, in)
		}
	}
	return out
}

// lbEndpoints renders entries as endpoints sorted by address, skipping
// addresses already in seen (and adding the rest to it).
func lbEndpoints(entries []*api.ServiceEntry, seen map[string]bool) []*endpointv3.LbEndpoint {
	type ep struct {
		host   string
		port   int
		weight int
	}
	var eps []ep
	for _, e := range entries {
		if e == nil || e.Service == nil || e.Service.Port <= 0 || e.Service.Port > 65535 {
			continue
		}
		host := e.Service.Address
		if host == "" && e.Node != nil {
			host = e.Node.Address
		}
		if host == "" {
			continue
		}
		addr := net.JoinHostPort(host, strconv.Itoa(e.Service.Port))
		if seen[addr] {
			continue
		}
		seen[addr] = true
		eps = append(eps, ep{host, e.Service.Port, e.Service.Weights.Passing})
	}
	sort.Slice(eps, func(i, j int) bool {
		if eps[i].host != eps[j].host {
			return eps[i].host < eps[j].host
		}
		return eps[i].port < eps[j].port
	})
	out := make([]*endpointv3.LbEndpoint, len(eps))
	for i, e := range eps {
		out[i] = &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(e.host, e.port),
			}},
		}
		if e.weight > 0 {
			out[i].LoadBalancingWeight = wrapperspb.UInt32(uint32(e.weight))
		}
	}
	return out
}

func socketAddress(host string, port int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

// localAppCluster is the sidecar's own application: STATIC on its IP
// (STRICT_DNS when the local address is a name).
func localAppCluster(addr string, port int, connectTimeout time.Duration, protocol string) (*clusterv3.Cluster, error) {
	typ := clusterv3.Cluster_STATIC
	if _, err := netip.ParseAddr(addr); err != nil {
		typ = clusterv3.Cluster_STRICT_DNS
	}
	c := &clusterv3.Cluster{
		Name:                 localAppName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: typ},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: localAppName,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{{
					HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
						Address: socketAddress(addr, port),
					}},
				}},
			}},
		},
	}
	if err := setUpstreamProtocol(c, protocol); err != nil {
		return nil, err
	}
	return c, nil
}
