package snapshot

import (
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/tcpproxy"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// isTCPProxy reports whether a network filter's typed_config is a TcpProxy.
func isTCPProxy(a *anypb.Any) bool {
	return a.GetTypeUrl() == resource.TypeURLPrefix+string(resource.TCPProxy)
}

// tcpChainHTTP is the placeholder connection manager of a TCP proxy chain
// (see chain): an empty inline route table, nothing to resolve.
func tcpChainHTTP() hcm.Config { return hcm.Config{Routes: &router.Config{}} }

// tcpChain converts a chain whose one network filter (at fp) is the TCP
// proxy. Its TLS, when it has a transport_socket, is terminated with the
// context's own ALPN list; without one, a chain matching on TLS properties
// passes TLS through.
func (c *converter) tcpChain(p, fp string, fc *listenerv3.FilterChain, f *listenerv3.Filter, out listener.FilterChain) (listener.FilterChain, hcm.Config, bool) {
	tp := resource.Join(fp, "typed_config")
	var m tcpproxyv3.TcpProxy
	if !c.unpack(tp, f.GetTypedConfig(), &m) {
		return out, hcm.Config{}, false
	}
	cfg := c.tcpProxy(tp, &m)
	out.TCPProxy = &cfg
	if ts := fc.GetTransportSocket(); ts != nil {
		sp := resource.Join(resource.Join(p, "transport_socket"), "typed_config")
		var dtc tlsv3.DownstreamTlsContext
		if c.unpack(sp, ts.GetTypedConfig(), &dtc) {
			out.TLS = c.serverTLS(sp, &dtc, listener.CodecAuto)
			// No HTTP codec here: ALPN is what the context lists, if anything.
			out.TLS.NextProtos = dtc.GetCommonTlsContext().GetAlpnProtocols()
		}
	}
	return out, tcpChainHTTP(), true
}

// tcpProxy converts a TcpProxy; its clusters are checked like routes'.
func (c *converter) tcpProxy(p string, m *tcpproxyv3.TcpProxy) tcpproxy.Config {
	cfg := tcpproxy.Config{
		StatPrefix:         m.GetStatPrefix(),
		IdleTimeout:        duration(m.GetIdleTimeout(), tcpproxy.DefaultIdleTimeout),
		MaxConnectAttempts: tcpproxy.DefaultMaxConnectAttempts,
	}
	if n := m.GetMaxConnectAttempts(); n != nil {
		cfg.MaxConnectAttempts = n.GetValue()
	}
	switch spec := m.GetClusterSpecifier().(type) {
	case *tcpproxyv3.TcpProxy_Cluster:
		cfg.Cluster = spec.Cluster
		c.clusterRefs = append(c.clusterRefs, reference{path: resource.Join(p, "cluster"), name: spec.Cluster})
	case *tcpproxyv3.TcpProxy_WeightedClusters:
		wp := resource.Join(resource.Join(p, "weighted_clusters"), "clusters")
		for i, w := range spec.WeightedClusters.GetClusters() {
			cfg.WeightedClusters = append(cfg.WeightedClusters, tcpproxy.WeightedCluster{Name: w.GetName(), Weight: w.GetWeight()})
			c.clusterRefs = append(c.clusterRefs, reference{path: resource.Join(resource.Index(wp, i), "name"), name: w.GetName()})
		}
	default:
		c.fail(p, "cluster or weighted_clusters is required")
		return cfg
	}
	for i, al := range m.GetAccessLog() {
		ap := resource.Join(resource.Index(resource.Join(p, "access_log"), i), "typed_config")
		if log, ok := c.accessLog(ap, al.GetTypedConfig()); ok {
			cfg.AccessLogs = append(cfg.AccessLogs, tcpproxy.AccessLog{Path: log.Path, Format: log.Format})
		}
	}
	if err := cfg.Validate(); err != nil {
		c.fail(p, "%v", err)
	}
	return cfg
}
