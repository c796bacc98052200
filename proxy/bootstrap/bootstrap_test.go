package bootstrap

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// base is a small valid bootstrap; cases edit it by replacing exact lines.
const base = `
node: {id: n1, cluster: edge}
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 9901}}
static_resources:
  listeners:
  - name: web
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: web
          codec_type: AUTO
          route_config:
            name: local
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route: {cluster: app}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: app
    connect_timeout: 1s
    type: STATIC
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}
`

const (
	lineCodec    = "          codec_type: AUTO"
	lineRoute    = "                route: {cluster: app}"
	lineMatch    = "              - match: {prefix: \"/\"}"
	lineCluster  = "    type: STATIC"
	lineEndpoint = "        - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8080}}}"
	lineFilters  = "          http_filters:"
	lineRouter   = "          - name: envoy.filters.http.router"
	lineChain    = "    - filters:"
	lineAdmin    = "  address: {socket_address: {address: 127.0.0.1, port_value: 9901}}"
	lineListener = "    address: {socket_address: {address: 127.0.0.1, port_value: 0}}"
	lineDomains  = "              domains: [\"*\"]"
	lineNode     = "node: {id: n1, cluster: edge}"
)

const routerTyped = `            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}`

func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	s := base
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]+"\n") {
			t.Fatalf("base has no line %q", pairs[i])
		}
		s = strings.Replace(s, pairs[i]+"\n", pairs[i+1]+"\n", 1)
	}
	return s
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadRejects(t *testing.T) {
	ca, cert, key := testCerts(t)
	tlsChain := func(ctx string) string {
		return "    - transport_socket:\n        name: envoy.transport_sockets.tls\n        typed_config:\n" +
			"          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext\n" +
			ctx + "\n      filters:"
	}
	upTLS := lineCluster + "\n    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n" +
		"        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n"
	certs := "          common_tls_context:\n            tls_certificates:\n            - certificate_chain: {filename: " + cert + "}\n              private_key: {filename: " + key + "}"
	const hcmPath = "static_resources.listeners[0].filter_chains[0].filters[0].typed_config"
	const routePath = hcmPath + ".route_config.virtual_hosts[0].routes[0]"
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{"unsupported enum", edit(t, lineCluster, lineCluster+"\n    lb_policy: LOAD_BALANCING_POLICY_CONFIG"),
			"static_resources.clusters[0].lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported yet"},
		{"unsupported cluster field", edit(t, lineCluster, lineCluster+"\n    preconnect_policy: {}"),
			"static_resources.clusters[0].preconnect_policy: Cluster.preconnect_policy is not supported yet"},
		{"unknown http filter type", edit(t, lineFilters, lineFilters+"\n          - name: lua\n            typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua}"),
			hcmPath + ".http_filters[0].typed_config: type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua is not supported yet"},
		{"known but unsupported filter type", edit(t, lineFilters, lineFilters+"\n          - name: odd\n            typed_config: {\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: x}"),
			hcmPath + ".http_filters[0].typed_config: type.googleapis.com/envoy.config.cluster.v3.Cluster is not supported yet"},
		{"router not last", edit(t, lineFilters, lineFilters+"\n"+lineRouter+"\n"+routerTyped),
			hcmPath + ".http_filters[0]: the router must be the last http filter"},
		{"no http filters", edit(t, lineFilters, "          http_filters: []", lineRouter, "", routerTyped, ""),
			hcmPath + ".http_filters: the envoy.filters.http.router filter is required"},
		{"HTTP3 codec on a TCP listener", edit(t, lineCodec, "          codec_type: HTTP3"), hcmPath + ".codec_type: HTTP3 needs a QUIC listener (udp_listener_config.quic_options)"},
		{"unsupported server header transformation", edit(t, lineCodec, lineCodec+"\n          server_header_transformation: APPEND_IF_ABSENT"),
			hcmPath + ".server_header_transformation: APPEND_IF_ABSENT is not supported yet"},
		{"upstream h2 stream cap", edit(t, lineCluster, lineCluster+"\n    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: {http2_protocol_options: {max_concurrent_streams: 10}}"),
			"static_resources.clusters[0].typed_extension_protocol_options[\"envoy.extensions.upstreams.http.v3.HttpProtocolOptions\"].explicit_http_config.http2_protocol_options.max_concurrent_streams: is not supported yet on clusters"},
		{"bad yaml", "static_resources: [\n", "did not find expected node content"},
		{"empty", "\n", "empty configuration"},
		{"unknown field", edit(t, lineCluster, lineCluster+"\n    bogus_field: 1"),
			`static_resources.clusters[0].bogus_field: unknown field "bogus_field"`},
		{"ValidateAll failure", edit(t, lineListener, "    address: {socket_address: {address: 127.0.0.1, port_value: 70000}}"),
			"static_resources.listeners[0].address.socket_address.port_value: value must be less than or equal to 65535"},
		{"ValidateAll inside typed_config", edit(t, lineCodec, lineCodec+"\n          xff_num_trusted_hops: 1\n          max_request_headers_kb: 100000"),
			hcmPath + ".max_request_headers_kb: value must be inside range (0, 8192]"},
		{"missing cluster", edit(t, lineRoute, "                route: {cluster: nope}"),
			routePath + `.route.cluster: cluster "nope" is not defined`},
		{"duplicate cluster", base + "  - {name: app, type: STATIC}\n",
			`static_resources.clusters[1].name: cluster "app" is also the name of clusters[0]`},
		{"bad regex", edit(t, lineMatch, `              - match: {safe_regex: {regex: "a("}}`),
			routePath + `.match.safe_regex.regex: invalid regex "a("`},
		{"percent operator", edit(t, lineRoute, lineRoute+"\n                request_headers_to_add: [{header: {key: x-client, value: \"%DOWNSTREAM_REMOTE_ADDRESS%\"}}]"),
			routePath + ".request_headers_to_add[0].header.value: \"%DOWNSTREAM_REMOTE_ADDRESS%\" uses % command operators"},
		{"unsupported append action", edit(t, lineRoute, lineRoute+"\n                response_headers_to_add: [{header: {key: x, value: v}, append_action: OVERWRITE_IF_EXISTS}]"),
			routePath + ".response_headers_to_add[0].append_action: OVERWRITE_IF_EXISTS is not supported yet"},
		{"weighted total mismatch", edit(t, lineRoute, "                route: {weighted_clusters: {total_weight: 10, clusters: [{name: app, weight: 3}]}}"),
			routePath + ".route.weighted_clusters.total_weight: is 10 but the weights sum to 3"},
		{"bad regex rewrite", edit(t, lineRoute, `                route: {cluster: app, regex_rewrite: {pattern: {regex: "(("}, substitution: x}}`),
			routePath + ".route.regex_rewrite.pattern.regex: invalid regex"},
		{"unsupported route field", edit(t, lineRoute, "                route: {cluster: app, request_mirror_policies: [{cluster: app}]}"),
			routePath + ".route.request_mirror_policies: RouteAction.request_mirror_policies is not supported yet"},
		{"unknown field in cluster", edit(t, lineCluster, "    type: EDS\n    eds_cluster_config: {eds_config: {ads: {}}}", "    load_assignment:", "    xload_assignment:"),
			"unknown field"},
		{"EDS in static resources, no assignment", strings.Replace(base, "    type: STATIC\n    load_assignment:\n      cluster_name: app\n      endpoints:\n      - lb_endpoints:\n"+lineEndpoint+"\n",
			"    type: EDS\n    eds_cluster_config: {eds_config: {ads: {}}}\n", 1),
			"static_resources.clusters[0].type: EDS is not supported in static_resources yet"},
		{"STATIC needs IPs", edit(t, lineEndpoint, "        - endpoint: {address: {socket_address: {address: app.local, port_value: 8080}}}"),
			`static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "app.local": a STATIC cluster needs IP addresses`},
		{"LOGICAL_DNS takes one endpoint", edit(t, lineCluster, "    type: LOGICAL_DNS", lineEndpoint, lineEndpoint+"\n"+lineEndpoint),
			"static_resources.clusters[0].load_assignment: a LOGICAL_DNS cluster needs exactly one endpoint, got 2"},
		{"protocol options key", edit(t, lineCluster, lineCluster+"\n    typed_extension_protocol_options:\n      envoy.upstreams.http.http_protocol_options:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: {http2_protocol_options: {}}"),
			`static_resources.clusters[0].typed_extension_protocol_options["envoy.upstreams.http.http_protocol_options"]: unknown key`},
		{"missing certificate file", edit(t, lineChain, tlsChain("          common_tls_context: {tls_certificates: [{certificate_chain: {filename: /nonexistent/cert.pem}, private_key: {inline_string: x}}]}")),
			"static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.tls_certificates[0].certificate_chain.filename: open /nonexistent/cert.pem"},
		{"client cert without CA", edit(t, lineChain, tlsChain(certs+"\n          require_client_certificate: true")),
			"static_resources.listeners[0].filter_chains[0].transport_socket.typed_config.require_client_certificate: needs a validation context"},
		{"subject alt name of type OTHER_NAME", edit(t, lineChain, tlsChain(certs+"\n            validation_context: {trusted_ca: {filename: "+ca+"}, match_typed_subject_alt_names: [{san_type: OTHER_NAME, matcher: {exact: a}}]}")),
			"common_tls_context.validation_context.match_typed_subject_alt_names[0].san_type"},
		{"tls versions inverted", edit(t, lineChain, tlsChain(certs+"\n            tls_params: {tls_minimum_protocol_version: TLSv1_3, tls_maximum_protocol_version: TLSv1_2}")),
			"common_tls_context.tls_params: tls_minimum_protocol_version is above tls_maximum_protocol_version"},
		{"TLS 1.0 not supported", edit(t, lineChain, tlsChain(certs+"\n            tls_params: {tls_minimum_protocol_version: TLSv1_0}")),
			"tls_params.tls_minimum_protocol_version: TLSv1_0 is not supported yet"},
		{"upstream alpn", edit(t, lineCluster, upTLS+"        common_tls_context: {alpn_protocols: [h2]}"),
			"static_resources.clusters[0].transport_socket.typed_config.common_tls_context.alpn_protocols: is not supported upstream"},
		{"unknown field in connection manager", strings.Replace(base, "          route_config:\n            name: local\n", "          rds: {route_config_name: r, config_source: {ads: {}}}\n          route_config_unused:\n", 1),
			"unknown field"},
		{"filter chain without filters", edit(t, lineChain, "    - filters: []\n"+lineChain),
			"static_resources.listeners[0].filter_chains[0].filters: the HTTP connection manager or the TCP proxy is required, last"},
		{"admin pipe", edit(t, lineAdmin, "  address: {pipe: {path: /tmp/admin.sock}}"),
			"admin.address.pipe: Address.pipe is not supported yet"},
		{"header_prefix", edit(t, lineNode, lineNode+"\nheader_prefix: x-foo"), "header_prefix: Bootstrap.header_prefix is not supported yet"},
		{"access log format", edit(t, lineCodec, lineCodec+"\n          access_log: [{name: stdout, typed_config: {\"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog, log_format: {text_format_source: {inline_string: x}, formatters: [{name: f, typed_config: {\"@type\": type.googleapis.com/google.protobuf.Empty}}]}}}]"),
			hcmPath + ".access_log[0].typed_config.log_format.formatters: SubstitutionFormatString.formatters is not supported yet"},
		{"ads cluster missing", base + "dynamic_resources:\n  ads_config: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}\n",
			`dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name: cluster "xds" is not defined in static_resources`},
		{"lds from a file", base + "dynamic_resources:\n  ads_config: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: app}}]}\n  lds_config: {path_config_source: {path: /tmp/lds.yaml}}\n",
			"dynamic_resources.lds_config.path_config_source: is not supported: listeners come over ads"},
		{"cds from a file", base + "dynamic_resources:\n  ads_config: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: app}}]}\n  cds_config: {path_config_source: {path: /tmp/cds.yaml}}\n",
			"dynamic_resources.cds_config.path_config_source: is not supported: clusters come over ads"},
		{"SDS over ADS without ADS", edit(t, lineChain, tlsChain("          common_tls_context:\n            tls_certificate_sds_secret_configs: [{name: leaf, sds_config: {ads: {}, resource_api_version: V3}}]")),
			"dynamic_resources.ads_config: is required: secrets leaf use sds_config.ads"},
		{"bad domain wildcard", edit(t, lineDomains, `              domains: ["a.*.com"]`),
			hcmPath + `.route_config.virtual_hosts[0].domains[0]: "a.*.com": a wildcard must be`},
		{"several problems at once", edit(t, lineCluster, lineCluster+"\n    lb_policy: LOAD_BALANCING_POLICY_CONFIG\n    respect_dns_ttl: true"),
			"static_resources.clusters[0].lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported yet\nstatic_resources.clusters[0].respect_dns_ttl: Cluster.respect_dns_ttl is not supported yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeFile(t, "bootstrap.yaml", tt.yaml), "")
			if err == nil {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error:\n%v\nwant it to contain:\n%s", err, tt.wantErr)
			}
		})
	}
}

func TestLoadRDSPending(t *testing.T) {
	withRDS := strings.Replace(base, "          route_config:\n            name: local\n            virtual_hosts:\n            - name: all\n              domains: [\"*\"]\n              routes:\n"+lineMatch+"\n"+lineRoute+"\n",
		"          rds: {route_config_name: r, config_source: {ads: {}}}\n", 1)
	if withRDS == base {
		t.Fatal("rds edit did not apply")
	}
	_, err := Load(writeFile(t, "b.yaml", withRDS), "")
	if err == nil || !strings.Contains(err.Error(), `rds.route_config_name: route configuration "r" is not defined`) {
		t.Fatalf("without dynamic_resources: got %v", err)
	}
	dyn := withRDS + "dynamic_resources:\n  ads_config: {api_type: DELTA_GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: app}, timeout: 3s}]}\n  cds_config: {ads: {}, resource_api_version: V3}\n"
	b, err := Load(writeFile(t, "b.yaml", dyn), "")
	if err != nil {
		t.Fatal(err)
	}
	if b.ADS == nil || b.ADS.Cluster != "app" || !b.ADS.Delta || !b.ADS.CDS || b.ADS.LDS || b.ADS.Timeout.Seconds() != 3 {
		t.Errorf("ADS = %+v", b.ADS)
	}
	if got := b.Static.Listeners[0].HTTP[0].RDSName; got != "r" {
		t.Errorf("RDSName = %q", got)
	}
}

func TestLoadErrorTypes(t *testing.T) {
	_, err := Load(writeFile(t, "b.yaml", edit(t, lineCluster, lineCluster+"\n    lb_policy: LOAD_BALANCING_POLICY_CONFIG")), "")
	var u *resource.UnsupportedError
	if !errors.As(err, &u) || len(u.Fields) != 1 || u.Fields[0].Path != "static_resources.clusters[0].lb_policy" {
		t.Errorf("want one UnsupportedError field, got %#v", err)
	}
	_, err = Load(writeFile(t, "b.yaml", "a: ["), "")
	var d *DecodeError
	if !errors.As(err, &d) {
		t.Errorf("want *DecodeError, got %T %v", err, err)
	}
	if _, err := Load("", ""); err == nil {
		t.Error("no config: want an error")
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
}
