package bootstrap

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/proxy/router"
)

const realistic = `
node: {id: edge-1, cluster: edge, metadata: {team: web}, locality: {zone: a}}
stats_flush_interval: 10s
layered_runtime: {layers: [{name: static, static_layer: {}}]}
admin:
  access_log: [{name: envoy.access_loggers.stdout, typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog}}]
  address: {socket_address: {address: "::1", port_value: 9901}}
static_resources:
  listeners:
  - name: https
    address: {socket_address: {address: 0.0.0.0, port_value: 8443}}
    listener_filters:
    - name: envoy.filters.listener.tls_inspector
      typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}
    filter_chains:
    - name: wildcard
      filter_chain_match: {server_names: ["*.example.com"]}
      transport_socket: &tls
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_params: {tls_minimum_protocol_version: TLSv1_3}
            tls_certificates: [{certificate_chain: {filename: CERT}, private_key: {filename: KEY}}]
            validation_context: {trusted_ca: {filename: CA}}
      filters: &filters
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: https
          codec_type: HTTP2
          use_remote_address: true
          xff_num_trusted_hops: 1
          generate_request_id: false
          max_request_headers_kb: 32
          request_headers_timeout: 0s
          stream_idle_timeout: 30s
          request_timeout: 60s
          server_name: edge
          server_header_transformation: PASS_THROUGH
          common_http_protocol_options: {idle_timeout: 120s, max_stream_duration: 300s}
          http2_protocol_options: {max_concurrent_streams: 50}
          upgrade_configs: [{upgrade_type: WebSocket}, {upgrade_type: CONNECT, enabled: false}]
          access_log:
          - name: envoy.access_loggers.file
            typed_config: {"@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: /var/log/access.json}
          route_config:
            name: main
            response_headers_to_add: [{header: {key: X-Served-By, value: "edge 100%%"}}]
            virtual_hosts:
            - name: api
              domains: ["api.example.com", "api.example.com:8443"]
              request_headers_to_remove: [X-Debug]
              routes:
              - match: {prefix: "/v1/", headers: [{name: X-Canary, string_match: {exact: "yes"}}]}
                route:
                  weighted_clusters:
                    clusters: [{name: api, weight: 90}, {name: api-canary, weight: 10, request_headers_to_add: [{header: {key: x-canary, value: "1"}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}]}]
              - match: {safe_regex: {regex: "/users/[0-9]+"}, case_sensitive: false}
                route: {cluster: api, regex_rewrite: {pattern: {regex: "^/users/([0-9]+)$"}, substitution: "/u/\\1"}, timeout: 0s, idle_timeout: 5s}
              - match: {path: /old}
                redirect: {path_redirect: /new, response_code: PERMANENT_REDIRECT}
              - match: {prefix: /grpc, grpc: {}, query_parameters: [{name: debug}]}
                route: {cluster: api, prefix_rewrite: /, host_rewrite_literal: grpc.internal}
              - match: {prefix: /health}
                direct_response: {status: 200, body: {inline_string: ok}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
    - name: exact
      filter_chain_match: {server_names: ["api.example.com"], application_protocols: [h2]}
      transport_socket: *tls
      filters: *filters
    default_filter_chain:
      transport_socket: *tls
      filters: *filters
  clusters:
  - name: api
    type: STRICT_DNS
    dns_lookup_family: V4_ONLY
    dns_refresh_rate: 30s
    alt_stat_name: api_stats
    load_assignment:
      cluster_name: api
      endpoints:
      - lb_endpoints:
        - {endpoint: {address: {socket_address: {address: localhost, port_value: 9000}}}, load_balancing_weight: 3}
        - endpoint: {address: {socket_address: {address: localhost, port_value: 9001}}}
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        common_http_protocol_options: {idle_timeout: 60s, max_requests_per_connection: 1000}
        explicit_http_config: {http2_protocol_options: {}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: api.internal
        common_tls_context: {validation_context: {trusted_ca: {filename: CA}}, tls_certificates: [{certificate_chain: {filename: CERT}, private_key: {filename: KEY}}]}
  - name: api-canary
    type: STATIC
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: api-canary
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: "::1", port_value: 9100}}}}]}]
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        use_downstream_protocol_config: {}
`

func TestLoadRealistic(t *testing.T) {
	ca, cert, key := testCerts(t)
	yml := strings.NewReplacer("CERT", cert, "KEY", key, "CA", ca).Replace(realistic)
	b, err := Load(writeFile(t, "bootstrap.yaml", yml), "")
	if err != nil {
		t.Fatal(err)
	}
	if b.Node != (Node{ID: "edge-1", Cluster: "edge"}) || b.Admin != "[::1]:9901" || b.ADS != nil {
		t.Errorf("node %+v admin %q ads %+v", b.Node, b.Admin, b.ADS)
	}
	wantIgnored := "admin.access_log node.metadata node.locality layered_runtime stats_flush_interval"
	for _, w := range strings.Fields(wantIgnored) {
		if !strings.Contains(strings.Join(b.Ignored, " "), w) {
			t.Errorf("ignored %q misses %s", b.Ignored, w)
		}
	}

	l := b.Static.Listeners[0]
	if l.Config.Name != "https" || l.Config.Address != "0.0.0.0:8443" {
		t.Errorf("listener %q %q", l.Config.Name, l.Config.Address)
	}
	// The exact server name goes before the wildcard, whatever the file order.
	if got := []string{l.Config.FilterChains[0].Name, l.Config.FilterChains[1].Name}; got[0] != "exact" || got[1] != "wildcard" {
		t.Errorf("chain order = %v", got)
	}
	if len(l.HTTP) != 2 || l.Config.DefaultChain == nil || l.DefaultHTTP == nil {
		t.Fatalf("chains: %d http, default %v", len(l.HTTP), l.Config.DefaultChain != nil)
	}
	fc := l.Config.FilterChains[0]
	if fc.TLS == nil || fc.TLS.ClientAuth != tls.RequireAndVerifyClientCert || fc.TLS.MinVersion != tls.VersionTLS13 ||
		strings.Join(fc.TLS.NextProtos, ",") != "h2" || len(fc.TLS.Certificates) != 1 || fc.TLS.ClientCAs == nil {
		t.Errorf("server TLS = %+v", fc.TLS)
	}
	wantSettings := listener.HTTPSettings{Codec: listener.CodecHTTP2, MaxRequestHeadersBytes: 32 << 10,
		RequestHeadersTimeout: 0, StreamIdleTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
		MaxConcurrentStreams: 50, DrainTimeout: 5 * time.Second}
	if fc.HTTP != wantSettings {
		t.Errorf("settings = %+v\nwant       %+v", fc.HTTP, wantSettings)
	}
	h := l.HTTP[0]
	if !h.UseRemoteAddress || h.XFFNumTrustedHops != 1 || h.GenerateRequestID || h.ServerName != "edge" ||
		!h.ServerHeaderPassThrough || h.RequestTimeout != time.Minute || h.MaxStreamDuration != 5*time.Minute ||
		strings.Join(h.Upgrades, ",") != "websocket" || len(h.AccessLogs) != 1 || h.AccessLogs[0].Path != "/var/log/access.json" ||
		h.StatPrefix != "https" {
		t.Errorf("hcm = %+v", h)
	}

	rc := h.Routes
	if rc == nil || rc.Name != "main" || rc.Headers.ResponseAdd[0] != (router.HeaderValue{Name: "x-served-by", Value: "edge 100%", Append: true}) {
		t.Fatalf("route config = %+v", rc)
	}
	vh := rc.VirtualHosts[0]
	if strings.Join(vh.Domains, ",") != "api.example.com,api.example.com:8443" || vh.Headers.RequestRemove[0] != "x-debug" {
		t.Errorf("vhost = %+v", vh)
	}
	r0 := vh.Routes[0]
	if r0.Match.Prefix != "/v1/" || r0.Match.Headers[0].Name != "x-canary" || r0.Match.Headers[0].String.Value != "yes" ||
		r0.Forward.TotalWeight != 100 || r0.Forward.Timeout != 15*time.Second ||
		r0.Forward.WeightedClusters[1].Headers.RequestAdd[0] != (router.HeaderValue{Name: "x-canary", Value: "1"}) {
		t.Errorf("route 0 = %+v / %+v", r0.Match, r0.Forward)
	}
	r1 := vh.Routes[1]
	if !r1.Match.Regex.MatchString("/users/42") || r1.Match.Regex.MatchString("/users/42/x") || !r1.Match.CaseInsensitive ||
		r1.Forward.Timeout != 0 || r1.Forward.IdleTimeout != 5*time.Second ||
		r1.Forward.RegexRewrite.Pattern.ReplaceAllString("/users/7", r1.Forward.RegexRewrite.Substitution) != "/u/7" {
		t.Errorf("route 1 = %+v / %+v", r1.Match, r1.Forward)
	}
	if rd := vh.Routes[2].Redirect; rd == nil || rd.PathRedirect != "/new" || rd.Status != 308 {
		t.Errorf("redirect = %+v", rd)
	}
	if r3 := vh.Routes[3]; !r3.Match.GRPC || !r3.Match.QueryParams[0].Present || r3.Forward.HostRewriteLiteral != "grpc.internal" || r3.Forward.PrefixRewrite != "/" {
		t.Errorf("route 3 = %+v / %+v", r3.Match, r3.Forward)
	}
	if d := vh.Routes[4].Direct; d == nil || d.Status != 200 || string(d.Body) != "ok" {
		t.Errorf("direct = %+v", d)
	}

	api, canary := b.Static.Clusters[0], b.Static.Clusters[1]
	if api.Discovery != cluster.StrictDNS || api.DNSFamily != cluster.DNSV4Only || api.DNSRefreshRate != 30*time.Second ||
		api.ConnectTimeout != 5*time.Second || api.Protocol != cluster.HTTP2 ||
		api.IdleTimeout != time.Minute || api.MaxRequestsPerConnection != 1000 ||
		len(api.Endpoints) != 2 || api.Endpoints[0] != (cluster.Endpoint{Address: "localhost:9000", Weight: 3}) {
		t.Errorf("api = %+v", api)
	}
	if api.TLS == nil || api.TLS.ServerName != "api.internal" || !api.TLS.InsecureSkipVerify || api.TLS.VerifyConnection == nil ||
		api.TLS.MaxVersion != tls.VersionTLS12 || len(api.TLS.Certificates) != 1 {
		t.Errorf("api TLS = %+v", api.TLS)
	}
	if canary.Discovery != cluster.Static || canary.ConnectTimeout != 250*time.Millisecond || canary.Protocol != cluster.UseDownstreamProto ||
		canary.Endpoints[0].Address != "[::1]:9100" || canary.IdleTimeout != time.Hour || canary.DNSRefreshRate != 5*time.Second {
		t.Errorf("canary = %+v", canary)
	}
	if err := b.Static.Consistent(); err != nil {
		t.Errorf("Consistent: %v", err)
	}
}

func TestLoadDefaultsJSONAndMerge(t *testing.T) {
	js := `{"static_resources": {"clusters": [{"name": "app", "type": "STATIC"}],
	  "listeners": [{"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
	    "filter_chains": [{"filters": [{"name": "hcm", "typed_config": {
	      "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
	      "stat_prefix": "l",
	      "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "app"}}]}]},
	      "http_filters": [{"name": "r", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}}]}]}]}}`
	b, err := Load(writeFile(t, "b.json", js), "node: {id: from-flag}\nstatic_resources: {clusters: [{name: extra, type: STATIC}]}")
	if err != nil {
		t.Fatal(err)
	}
	if b.Node.ID != "from-flag" || len(b.Static.Clusters) != 2 || b.Admin != "" {
		t.Errorf("merge: node %+v, %d clusters, admin %q", b.Node, len(b.Static.Clusters), b.Admin)
	}
	l := b.Static.Listeners[0]
	want := listener.HTTPSettings{Codec: listener.CodecAuto, MaxRequestHeadersBytes: 60 << 10,
		RequestHeadersTimeout: 10 * time.Second, StreamIdleTimeout: 5 * time.Minute, IdleTimeout: time.Hour,
		MaxConcurrentStreams: 1000, DrainTimeout: 5 * time.Second}
	if l.Config.FilterChains[0].HTTP != want {
		t.Errorf("defaults = %+v\nwant       %+v", l.Config.FilterChains[0].HTTP, want)
	}
	h := l.HTTP[0]
	if !h.GenerateRequestID || h.ServerName != "outrigger" || h.StreamIdleTimeout != 5*time.Minute ||
		h.Routes.VirtualHosts[0].Routes[0].Forward.Timeout != 15*time.Second {
		t.Errorf("hcm defaults = %+v", h)
	}
	c := b.Static.Clusters[0]
	if c.ConnectTimeout != 5*time.Second || c.DNSRefreshRate != 5*time.Second || c.Protocol != cluster.HTTP1 || c.IdleTimeout != time.Hour {
		t.Errorf("cluster defaults = %+v", c)
	}
}
