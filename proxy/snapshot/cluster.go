package snapshot

import (
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// Envoy's cluster defaults.
const (
	defaultConnectTimeout = 5 * time.Second
	defaultDNSRefreshRate = 5 * time.Second
)

func (c *converter) cluster(p string, cl *clusterv3.Cluster) cluster.Config {
	out := cluster.Config{
		Name:           cl.GetName(),
		ConnectTimeout: duration(cl.GetConnectTimeout(), defaultConnectTimeout),
		DNSRefreshRate: duration(cl.GetDnsRefreshRate(), defaultDNSRefreshRate),
		IdleTimeout:    defaultConnIdleTimeout,
		Protocol:       cluster.HTTP1,
	}
	if cl.GetName() == "" {
		c.fail(resource.Join(p, "name"), "a cluster needs a name")
	}
	switch cl.GetType() {
	case clusterv3.Cluster_STATIC:
		out.Discovery = cluster.Static
	case clusterv3.Cluster_STRICT_DNS:
		out.Discovery = cluster.StrictDNS
	case clusterv3.Cluster_LOGICAL_DNS:
		out.Discovery = cluster.LogicalDNS
	case clusterv3.Cluster_ORIGINAL_DST:
		out.Discovery = cluster.OriginalDst
	case clusterv3.Cluster_EDS:
		out.Discovery = cluster.EDS
		if cl.GetLoadAssignment() != nil {
			c.fail(resource.Join(p, "load_assignment"), "is not used by an EDS cluster: endpoints come over EDS")
		}
	default:
		c.fail(resource.Join(p, "type"), "%s is not supported yet", cl.GetType())
	}
	if cl.GetEdsClusterConfig() != nil && out.Discovery != cluster.EDS {
		c.fail(resource.Join(p, "eds_cluster_config"), "is only for clusters of type EDS")
	}
	if cl.GetEdsClusterConfig().GetEdsConfig().GetPathConfigSource() != nil {
		c.fail(resource.Join(p, "eds_cluster_config.eds_config.path_config_source"), "is not supported: endpoints come over ads")
	}
	switch cl.GetDnsLookupFamily() {
	case clusterv3.Cluster_V4_ONLY:
		out.DNSFamily = cluster.DNSV4Only
	case clusterv3.Cluster_V6_ONLY:
		out.DNSFamily = cluster.DNSV6Only
	case clusterv3.Cluster_V4_PREFERRED:
		out.DNSFamily = cluster.DNSV4Preferred
	case clusterv3.Cluster_ALL:
		out.DNSFamily = cluster.DNSAll
	default:
		out.DNSFamily = cluster.DNSAuto
	}

	if cb := cl.GetCircuitBreakers(); cb != nil {
		out.Thresholds = c.thresholds(resource.Join(p, "circuit_breakers"), cb)
	}
	if out.Discovery == cluster.OriginalDst || cl.GetLbPolicy() == clusterv3.Cluster_CLUSTER_PROVIDED {
		c.originalDstCluster(p, cl, &out)
	} else {
		out.LB = c.lbConfig(p, cl)
		if od := cl.GetOutlierDetection(); od != nil {
			out.Outlier = c.outlierDetection(resource.Join(p, "outlier_detection"), od)
		}
		out.HealthChecks = c.healthChecks(p, cl.GetHealthChecks())
		out.Endpoints = c.endpoints(p, cl, out.Discovery, &out)
	}
	c.upstreamProtocol(p, cl, &out)
	if out.Protocol == cluster.HTTP3 && cl.GetTransportSocket() == nil {
		c.fail(resource.Join(p, "transport_socket"), "an HTTP/3 cluster needs envoy.transport_sockets.quic (QuicUpstreamTransport): QUIC is always TLS")
	}
	if ts := cl.GetTransportSocket(); ts != nil {
		tp := resource.Join(p, "transport_socket.typed_config")
		var utc tlsv3.UpstreamTlsContext
		if isQUICUpstream(ts.GetTypedConfig()) || out.Protocol == cluster.HTTP3 {
			c.quicUpstream(p, ts.GetTypedConfig(), &out)
		} else if c.unpack(tp, ts.GetTypedConfig(), &utc) {
			out.TLS = c.upstreamTLS(tp, &utc)
			if out.TLS.VerifyConnection != nil {
				out.TLSVerifyKey = VerifyChainKey
			}
		}
	}
	return out
}

func (c *converter) endpoints(p string, cl *clusterv3.Cluster, d cluster.Discovery, out *cluster.Config) []cluster.Endpoint {
	lp := resource.Join(p, "load_assignment")
	needIP := ""
	if d == cluster.Static {
		needIP = "a STATIC cluster needs IP addresses"
	}
	eps, factor := c.assignment(lp, cl.GetLoadAssignment(), needIP)
	if factor > 0 {
		out.LB.OverprovisioningFactor = factor
	}
	if d == cluster.LogicalDNS && len(eps) != 1 {
		c.fail(lp, "a LOGICAL_DNS cluster needs exactly one endpoint, got %d", len(eps))
	}
	if (d == cluster.StrictDNS) && len(eps) == 0 {
		c.fail(lp, "a STRICT_DNS cluster needs at least one endpoint")
	}
	return eps
}

// noUpstreamStreamCap rejects max_concurrent_streams on an upstream: the
// pool follows the server's SETTINGS_MAX_CONCURRENT_STREAMS and has no cap
// of its own yet, so accepting the field would silently ignore it.
func (c *converter) noUpstreamStreamCap(p string, h2 *corev3.Http2ProtocolOptions) {
	if h2.GetMaxConcurrentStreams() != nil {
		c.fail(resource.Join(p, "max_concurrent_streams"), "is not supported yet on clusters (upstream HTTP/2 follows the server's SETTINGS_MAX_CONCURRENT_STREAMS)")
	}
}

// upstreamProtocol applies typed_extension_protocol_options (or the
// deprecated cluster-level http2_protocol_options).
func (c *converter) upstreamProtocol(p string, cl *clusterv3.Cluster, out *cluster.Config) {
	const key = string(resource.UpstreamHTTPOptions)
	tp := resource.Join(p, "typed_extension_protocol_options")
	opts := cl.GetTypedExtensionProtocolOptions()
	for k := range opts {
		if k != key {
			c.fail(resource.Key(tp, k), "unknown key: only %s is supported", key)
		}
	}
	if h2 := cl.GetHttp2ProtocolOptions(); h2 != nil {
		if opts[key] != nil {
			c.fail(resource.Join(p, "http2_protocol_options"), "cannot be combined with typed_extension_protocol_options")
		}
		out.Protocol = cluster.HTTP2
		c.noUpstreamStreamCap(resource.Join(p, "http2_protocol_options"), h2)
	}
	a := opts[key]
	if a == nil {
		return
	}
	hp := resource.Key(tp, key)
	var h upstreamhttpv3.HttpProtocolOptions
	if !c.unpack(hp, a, &h) {
		return
	}
	switch {
	case h.GetExplicitHttpConfig() != nil:
		if o := h.GetExplicitHttpConfig().GetHttp2ProtocolOptions(); o != nil {
			out.Protocol = cluster.HTTP2
			c.noUpstreamStreamCap(resource.Join(hp, "explicit_http_config.http2_protocol_options"), o)
		} else if h.GetExplicitHttpConfig().GetHttp3ProtocolOptions() != nil {
			out.Protocol = cluster.HTTP3
		} else {
			out.Protocol = cluster.HTTP1
		}
	case h.GetUseDownstreamProtocolConfig() != nil:
		out.Protocol = cluster.UseDownstreamProto
		c.noUpstreamStreamCap(resource.Join(hp, "use_downstream_protocol_config.http2_protocol_options"),
			h.GetUseDownstreamProtocolConfig().GetHttp2ProtocolOptions())
	default:
		c.fail(hp, "explicit_http_config or use_downstream_protocol_config is required")
	}
	common := h.GetCommonHttpProtocolOptions()
	out.IdleTimeout = duration(common.GetIdleTimeout(), defaultConnIdleTimeout)
	out.MaxRequestsPerConnection = common.GetMaxRequestsPerConnection().GetValue()
	if out.Protocol == cluster.HTTP3 && common.GetIdleTimeout() != nil && out.IdleTimeout == 0 {
		c.fail(resource.Join(hp, "common_http_protocol_options.idle_timeout"), "0s (disabled) is not supported yet on HTTP/3 upstreams: QUIC's idle timeout would apply")
	}
	if out.Protocol == cluster.HTTP3 && out.MaxRequestsPerConnection > 0 {
		c.fail(resource.Join(hp, "common_http_protocol_options.max_requests_per_connection"), "is not supported yet on HTTP/3 upstreams")
	}
	if common.GetMaxStreamDuration() != nil {
		c.fail(resource.Join(hp, "common_http_protocol_options.max_stream_duration"), "is not supported yet on clusters")
	}
}
