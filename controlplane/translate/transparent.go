package translate

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	"github.com/hashicorp/consul/api"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Transparent mode (Consul's Proxy.Mode "transparent"): the app dials its
// upstreams' own addresses and `outrigger redirect-traffic`'s rules send
// those connections to the sidecar's outbound listener, which recovers
// where each was going.
const (
	// DefaultOutboundListenerPort is Consul's
	// TransparentProxy.OutboundListenerPort default.
	DefaultOutboundListenerPort = 15001
	// OriginalDestinationCluster is the passthrough cluster (Consul's
	// name): type ORIGINAL_DST, each connection to where it was going.
	OriginalDestinationCluster = "original-destination"

	originalDstFilterName = "envoy.filters.listener.original_dst"
	outboundListenerName  = "outbound_listener"
	passthroughConnect    = 5 * time.Second
)

// transparentPort returns the outbound listener's port when the proxy is
// in transparent mode (its registration's Mode, else proxy-defaults'),
// and 0 when it is not.
func transparentPort(sp *api.AgentServiceConnectProxyConfig, defaults *api.ProxyConfigEntry) int {
	mode := sp.Mode
	if mode == api.ProxyModeDefault && defaults != nil {
		mode = defaults.Mode
	}
	if mode != api.ProxyModeTransparent {
		return 0
	}
	if tp := sp.TransparentProxy; tp != nil && tp.OutboundListenerPort != 0 {
		return tp.OutboundListenerPort
	}
	if defaults != nil && defaults.TransparentProxy != nil && defaults.TransparentProxy.OutboundListenerPort != 0 {
		return defaults.TransparentProxy.OutboundListenerPort
	}
	return DefaultOutboundListenerPort
}

// transparent adds the outbound listener "outbound_listener:127.0.0.1:<port>"
// with the original_dst listener filter: one filter chain per upstream
// service (per port its instances listen on), matched by destination port
// and the passing instances' addresses (prefix_ranges, one /32 or /128
// each) and routed through the upstream's discovery chain as its own
// listener is; and a default chain that sends everything else to its
// original destination through the ORIGINAL_DST cluster
// "original-destination" (Consul's passthrough, which its mesh config
// entry can turn off with MeshDestinationsOnly; that entry is not in the
// model yet, so passthrough is always on, Consul's default).
//
// Consul matches on the upstreams' virtual IPs, which its DNS hands the
// app; the catalog's instance addresses are what the app dials without
// Consul DNS. Upstreams are the registration's (any with a service
// destination in this datacenter; their LocalBindPort may be 0): Consul's
// implicit upstreams from intentions are not added.
func (b *builder) transparent(id, downstream string, port int, ups []api.Upstream) error {
	name := fmt.Sprintf("%s:%s:%d", outboundListenerName, defaultBindAddress, port)
	if err := b.bind(id, name, defaultBindAddress, port); err != nil {
		return err
	}
	fa, err := marshalAny(&originaldstv3.OriginalDst{})
	if err != nil {
		return fmt.Errorf("translate: listener %q: %w", name, err)
	}
	l := &listenerv3.Listener{
		Name:             name,
		Address:          socketAddress(defaultBindAddress, port),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name:       originalDstFilterName,
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: fa},
		}},
	}
	seen := map[netip.AddrPort]bool{}
	done := map[string]bool{}
	for _, u := range ups {
		if u.DestinationType != "" && u.DestinationType != api.UpstreamDestTypeService ||
			u.DestinationPeer != "" || u.Datacenter != "" && u.Datacenter != b.t.m.Datacenter ||
			u.DestinationName == "" || done[u.DestinationName] {
			continue
		}
		dest := u.DestinationName
		done[dest] = true
		byPort := b.instanceAddrs(dest, seen)
		if len(byPort) == 0 {
			continue // no passing instance: nothing to match
		}
		s, err := upstreamSettings(b.t.m, id, downstream, u)
		if err != nil {
			return err
		}
		ce, err := b.chain(dest, s)
		if err != nil {
			return err
		}
		if isHTTP(ce.ch.protocol) {
			if _, ok := b.routes[dest]; !ok {
				b.routes[dest] = ce.route
			}
		}
		out := ce.outbound
		if out.err != nil {
			return out.err
		}
		if out.marshalErr != nil {
			return fmt.Errorf("translate: listener %q: %w", name, out.marshalErr)
		}
		ports := slices.Sorted(maps.Keys(byPort))
		for _, p := range ports {
			m := &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(uint32(p))}
			for _, a := range byPort[p] {
				m.PrefixRanges = append(m.PrefixRanges, &corev3.CidrRange{AddressPrefix: a.String(), PrefixLen: wrapperspb.UInt32(uint32(a.BitLen()))})
			}
			l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{
				Name:             fmt.Sprintf("%s:%d", dest, p),
				FilterChainMatch: m,
				Filters:          []*listenerv3.Filter{out.f},
			})
		}
	}
	pass, err := tcpProxyFilter("upstream."+OriginalDestinationCluster, OriginalDestinationCluster)
	if err != nil {
		return fmt.Errorf("translate: listener %q: %w", name, err)
	}
	l.DefaultFilterChain = &listenerv3.FilterChain{Name: OriginalDestinationCluster, Filters: []*listenerv3.Filter{pass}}
	if _, ok := b.clusters[OriginalDestinationCluster]; !ok {
		b.clusters[OriginalDestinationCluster] = unchecked(&clusterv3.Cluster{
			Name:                 OriginalDestinationCluster,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
			LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
			ConnectTimeout:       durationpb.New(passthroughConnect),
		})
	}
	b.listeners[name] = unchecked(l)
	return nil
}

// instanceAddrs groups the passing instances of service by port, each
// port's addresses sorted; an address:port an earlier upstream claimed
// (seen) is left out, so no two chains match the same destination.
func (b *builder) instanceAddrs(service string, seen map[netip.AddrPort]bool) map[int][]netip.Addr {
	svc := b.t.m.Services[service]
	if svc == nil {
		return nil
	}
	out := map[int][]netip.Addr{}
	for _, e := range svc.Instances {
		if e.Service == nil || e.Service.Port <= 0 || e.Service.Port > 65535 {
			continue
		}
		host := e.Service.Address
		if host == "" && e.Node != nil {
			host = e.Node.Address
		}
		a, err := netip.ParseAddr(host)
		if err != nil {
			continue // a DNS name cannot be matched by address
		}
		a = a.Unmap()
		ap := netip.AddrPortFrom(a, uint16(e.Service.Port))
		if seen[ap] {
			continue
		}
		seen[ap] = true
		out[e.Service.Port] = append(out[e.Service.Port], a)
	}
	for _, as := range out {
		slices.SortFunc(as, func(x, y netip.Addr) int { return x.Compare(y) })
	}
	return out
}
