package snapshot

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	grpcwebv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/grpc_web/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	rbacnetv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/proxy/rbac"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// rbacListener is a listener with an HTTP chain whose first HTTP filter is
// envoy.filters.http.rbac with the given config (YAML at 14 spaces), and
// whose route "r" and virtual host carry the given typed_per_filter_config
// entries (YAML at 20 and 16 spaces; "" for none).
func rbacListener(t *testing.T, httpRBAC, routePer, vhostPer string) *listenerv3.Listener {
	t.Helper()
	y := `name: in
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: in
      http_filters:
      - name: rbac-in
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
` + httpRBAC + `      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
      route_config:
        name: local
        virtual_hosts:
        - name: app
          domains: ["*"]
` + vhostPer + `          routes:
          - name: r
            match: {prefix: "/"}
            route: {cluster: a}
` + routePer
	return rbacYAML(t, y)
}

// tcpRBACListener is a listener whose one chain has
// envoy.filters.network.rbac (config YAML at 10 spaces, as for
// rbacListener) before a tcp_proxy to cluster a.
func tcpRBACListener(t *testing.T, netRBAC string) *listenerv3.Listener {
	t.Helper()
	netRBAC = strings.ReplaceAll("\n"+netRBAC, "\n    ", "\n")[1:]
	return rbacYAML(t, `name: tcp
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:
  - name: envoy.filters.network.rbac
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
`+netRBAC+`  - name: envoy.filters.network.tcp_proxy
    typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: t, cluster: a}
`)
}

func rbacYAML(t *testing.T, y string) *listenerv3.Listener {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	var l listenerv3.Listener
	if err := protojson.Unmarshal(js, &l); err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
	return &l
}

const everyKind = `          rules:
            action: ALLOW
            policies:
              web:
                permissions:
                - and_rules:
                    rules:
                    - or_rules: {rules: [{header: {name: ":method", string_match: {exact: GET}}}, {header: {name: ":method", exact_match: HEAD}}]}
                    - url_path: {path: {prefix: /api}}
                    - not_rule: {url_path: {path: {safe_regex: {regex: "/api/admin(/.*)?"}}}}
                    - destination_port: 8443
                    - destination_ip: {address_prefix: 10.1.0.0, prefix_len: 16}
                principals:
                - and_ids:
                    ids:
                    - authenticated: {principal_name: {exact: "spiffe://mesh/ns/default/dc/dc1/svc/web"}}
                    - not_id: {direct_remote_ip: {address_prefix: 10.0.9.0, prefix_len: 24}}
              lan:
                permissions: [{any: true}]
                principals:
                - or_ids:
                    ids:
                    - remote_ip: {address_prefix: 192.0.2.0, prefix_len: 24}
                    - source_ip: {address_prefix: "2001:db8::", prefix_len: 32}
                    - header: {name: x-lan, present_match: true}
                    - url_path: {path: {exact: /lan}}
                    - authenticated: {principal_name: {suffix: /svc/api}}
          shadow_rules:
            action: DENY
            policies:
              no-admin:
                permissions: [{url_path: {path: {prefix: /api/admin}}}]
                principals: [{any: true}]
          rules_stat_prefix: in
          shadow_rules_stat_prefix: dry
`

func rbacPeer(uri string) *tls.ConnectionState {
	u, _ := url.Parse(uri)
	return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{URIs: []*url.URL{u}}}}
}

func rbacRequest(method, path, remote string, st *tls.ConnectionState) *http.Request {
	r := httptest.NewRequest(method, path, nil)
	r.RemoteAddr = remote
	r.TLS = st
	local := &net.TCPAddr{IP: net.ParseIP("10.1.0.1"), Port: 8443}
	return r.WithContext(contextWithLocal(r.Context(), local))
}

// Every supported permission and principal converts, and the converted
// filter decides as the config says; per-route entries override or
// disable it.
func TestRBACHTTPConversion(t *testing.T) {
	l := rbacListener(t, everyKind, `            typed_per_filter_config:
              rbac-in:
                "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
                rbac:
                  rules:
                    action: DENY
                    policies:
                      no-delete: {permissions: [{header: {name: ":method", string_match: {exact: DELETE}}}], principals: [{any: true}]}
`, `          typed_per_filter_config:
            rbac-in:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
`)
	s, err := Build([]*listenerv3.Listener{l}, nil, staticClusterProto(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	h := s.Listeners[0].HTTP[0]
	if len(h.Filters) != 1 {
		t.Fatalf("filters %+v", h.Filters)
	}
	f, ok := h.Filters[0].HTTP.(*rbac.HTTPFilter)
	if !ok {
		t.Fatalf("filter %T", h.Filters[0].HTTP)
	}
	vh := &h.Routes.VirtualHosts[0]
	rt := &vh.Routes[0]
	if rc, ok := rt.PerFilter["rbac-in"].(*rbac.RouteConfig); !ok || rc.Disabled() {
		t.Fatalf("route's per-filter config %#v", rt.PerFilter["rbac-in"])
	}
	if rc, ok := vh.PerFilter["rbac-in"].(*rbac.RouteConfig); !ok || !rc.Disabled() {
		t.Fatalf("virtual host's per-filter config %#v", vh.PerFilter["rbac-in"])
	}

	web := rbacPeer("spiffe://mesh/ns/default/dc/dc1/svc/web")
	api := rbacPeer("spiffe://mesh/ns/default/dc/dc1/svc/api")
	bare := &hcm.FilterInput{Route: &rbacNoPerRoute}
	for _, tc := range []struct {
		name string
		r    *http.Request
		in   *hcm.FilterInput
		want int
	}{
		{"web GET /api/x", rbacRequest("GET", "/api/x", "10.0.0.7:1", web), bare, 0},
		{"web HEAD /api", rbacRequest("HEAD", "/api", "10.0.0.7:1", web), bare, 0},
		{"web POST /api/x", rbacRequest("POST", "/api/x", "10.0.0.7:1", web), bare, 403},
		{"web GET /api/admin", rbacRequest("GET", "/api/admin", "10.0.0.7:1", web), bare, 403},
		{"web from the excluded subnet", rbacRequest("GET", "/api/x", "10.0.9.7:1", web), bare, 403},
		{"api", rbacRequest("POST", "/x", "10.0.0.7:1", api), bare, 0}, // lan
		{"plaintext", rbacRequest("GET", "/api/x", "10.0.0.7:1", nil), bare, 403},
		{"plaintext from 192.0.2.0/24", rbacRequest("GET", "/x", "192.0.2.4:1", nil), bare, 0},
		{"plaintext from 2001:db8::/32", rbacRequest("GET", "/x", "[2001:db8::4]:1", nil), bare, 0},
		{"plaintext to /lan", rbacRequest("GET", "/lan?q", "10.0.0.7:1", nil), bare, 0},
		{"route override allows plaintext", rbacRequest("GET", "/x", "10.0.0.7:1", nil), &hcm.FilterInput{Route: rt, VHost: vh}, 0},
		{"route override denies DELETE", rbacRequest("DELETE", "/x", "10.0.0.7:1", web), &hcm.FilterInput{Route: rt, VHost: vh}, 403},
		{"virtual host turns it off", rbacRequest("DELETE", "/x", "10.0.0.7:1", nil), &hcm.FilterInput{Route: &rbacNoPerRoute, VHost: vh}, 0},
	} {
		w := httptest.NewRecorder()
		if v := f.Decode(w, tc.r, tc.in); v.Status != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, v.Status, tc.want)
		}
	}
	st := f.Stats()
	if st["rbac.in.denied"] != 5 || st["rbac.in.allowed"] != 7 || st["rbac.dry.shadow_denied"] != 1 {
		t.Errorf("stats %v", st)
	}
}

func TestRBACNetworkConversion(t *testing.T) {
	l := tcpRBACListener(t, `          stat_prefix: tcp_in
          rules:
            action: ALLOW
            policies:
              web:
                permissions: [{destination_port: 8443}]
                principals: [{authenticated: {principal_name: {suffix: /svc/web}}}]
          shadow_rules:
            action: DENY
            policies: {}
          shadow_rules_stat_prefix: dry
          enforcement_type: ONE_TIME_ON_FIRST_BYTE
`)
	s, err := Build([]*listenerv3.Listener{l}, nil, staticClusterProto(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	fc := s.Listeners[0].Config.FilterChains[0]
	if len(fc.ConnFilters) != 1 || fc.TCPProxy == nil {
		t.Fatalf("chain %+v", fc)
	}
	f, ok := fc.ConnFilters[0].(*rbac.NetworkFilter)
	if !ok {
		t.Fatalf("filter %T", fc.ConnFilters[0])
	}
	local := &net.TCPAddr{IP: net.ParseIP("10.1.0.1"), Port: 8443}
	if !f.Admit(&listener.ConnInfo{Local: local, TLS: rbacPeer("spiffe://mesh/ns/default/dc/dc1/svc/web")}) {
		t.Error("web refused")
	}
	if f.Admit(&listener.ConnInfo{Local: local, TLS: rbacPeer("spiffe://mesh/ns/default/dc/dc1/svc/api")}) {
		t.Error("api admitted")
	}
	if st := f.Stats(); st["tcp_in.rbac.allowed"] != 1 || st["tcp_in.rbac.denied"] != 1 || st["tcp_in.rbac.dry.shadow_allowed"] != 2 {
		t.Errorf("stats %v", st)
	}
}

// Fields outside the support table are refused with their paths before
// conversion (UnsupportedError); values the converter cannot use come
// back as an InvalidError at their paths.
func TestRBACRefused(t *testing.T) {
	const filter = "listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config"
	const route = "listeners[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes[0].typed_per_filter_config[\"rbac-in\"]"
	const network = "listeners[0].filter_chains[0].filters[0].typed_config"
	policy := func(perm, principal string) string {
		return "          rules:\n            policies:\n              p:\n                permissions: [" + perm + "]\n                principals: [" + principal + "]\n"
	}
	pol := filter + `.rules.policies["p"]`
	for _, tc := range []struct {
		name        string
		l           func(t *testing.T) *listenerv3.Listener
		path        string
		reason      string
		unsupported bool
	}{
		{"LOG action", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, "          rules: {action: LOG}\n", "", "")
		}, filter + ".rules.action", "LOG is not supported yet", true},
		{"matcher", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, "          matcher: {}\n", "", "")
		}, filter + ".matcher", "not supported", true},
		{"track_per_rule_stats", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, "          track_per_rule_stats: true\n", "", "")
		}, filter + ".track_per_rule_stats", "not supported", true},
		{"audit logging", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, "          rules: {audit_logging_options: {audit_condition: ON_DENY}}\n", "", "")
		}, filter + ".rules.audit_logging_options", "not supported", true},
		{"condition", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, "          rules:\n            policies:\n              p: {permissions: [{any: true}], principals: [{any: true}], condition: {const_expr: {bool_value: true}}}\n", "", "")
		}, pol + ".condition", "not supported", true},
		{"metadata permission", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, policy(`{metadata: {filter: f, path: [{key: k}], value: {present_match: true}}}`, `{any: true}`), "", "")
		}, pol + ".permissions[0].metadata", "not supported", true},
		{"requested_server_name", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, policy(`{requested_server_name: {exact: a}}`, `{any: true}`), "", "")
		}, pol + ".permissions[0].requested_server_name", "not supported", true},
		{"destination_port_range", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, policy(`{destination_port_range: {start: 1, end: 2}}`, `{any: true}`), "", "")
		}, pol + ".permissions[0].destination_port_range", "not supported", true},
		{"filter_state principal", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, policy(`{any: true}`, `{filter_state: {key: k, string_match: {exact: v}}}`), "", "")
		}, pol + ".principals[0].filter_state", "not supported", true},
		{"nested metadata principal", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, policy(`{any: true}`, `{and_ids: {ids: [{any: true}, {not_id: {metadata: {filter: f, path: [{key: k}], value: {present_match: true}}}}]}}`), "", "")
		}, pol + ".principals[0].and_ids.ids[1].not_id.metadata", "not supported", true},
		{"per-route stat prefix is fine, per-route matcher is not", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, "", `            typed_per_filter_config:
              rbac-in:
                "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
                rbac: {rules_stat_prefix: x, shadow_matcher: {}}
`, "")
		}, route + ".rbac.shadow_matcher", "not supported", true},
		{"network delay_deny", func(t *testing.T) *listenerv3.Listener {
			return tcpRBACListener(t, "          stat_prefix: s\n          delay_deny: 1s\n")
		}, network + ".delay_deny", "not supported", true},
		{"network CONTINUOUS", func(t *testing.T) *listenerv3.Listener {
			return tcpRBACListener(t, "          stat_prefix: s\n          enforcement_type: CONTINUOUS\n")
		}, network + ".enforcement_type", "CONTINUOUS is not supported yet", true},

		{"network without stat_prefix (the proto's own rule)", func(t *testing.T) *listenerv3.Listener {
			return tcpRBACListener(t, "          rules: {}\n")
		}, network + ".stat_prefix", "value length must be at least 1 runes", false},
		{"empty permissions (the proto's own rule)", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, "          rules: {policies: {p: {principals: [{any: true}]}}}\n", "", "")
		}, filter + `.rules.policies["p"].permissions`, "value must contain at least 1 item", false},
		{"network header", func(t *testing.T) *listenerv3.Listener {
			return tcpRBACListener(t, "          stat_prefix: s\n          rules: {policies: {p: {permissions: [{header: {name: x}}], principals: [{any: true}]}}}\n")
		}, network + `.rules.policies["p"].permissions[0].header`, "only available to the HTTP filter", false},
		{"network url_path in shadow rules", func(t *testing.T) *listenerv3.Listener {
			return tcpRBACListener(t, "          stat_prefix: s\n          shadow_rules: {policies: {p: {permissions: [{any: true}], principals: [{not_id: {url_path: {path: {exact: /}}}}]}}}\n")
		}, network + `.shadow_rules.policies["p"].principals[0].not_id.url_path`, "only available to the HTTP filter", false},
		{"bad address", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, policy(`{destination_ip: {address_prefix: "10.0.0.x", prefix_len: 8}}`, `{any: true}`), "", "")
		}, pol + ".permissions[0].destination_ip.address_prefix", `"10.0.0.x" is not an IP address`, false},
		{"prefix too long", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, policy(`{any: true}`, `{remote_ip: {address_prefix: 10.0.0.0, prefix_len: 33}}`), "", "")
		}, pol + ".principals[0].remote_ip.prefix_len", "33 is longer than an IPv4 address", false},
		{"bad regex", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, policy(`{any: true}`, `{authenticated: {principal_name: {safe_regex: {regex: "spiffe://(("}}}}`), "", "")
		}, pol + ".principals[0].authenticated.principal_name.safe_regex.regex", "invalid regex", false},
		{"pseudo-header the engine cannot see", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, policy(`{header: {name: ":protocol", present_match: true}}`, `{any: true}`), "", "")
		}, pol + ".permissions[0].header.name", `pseudo-header ":protocol" is not supported`, false},
		{"bad per-route rules", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, "", `            typed_per_filter_config:
              rbac-in:
                "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
                rbac: {rules: {policies: {p: {permissions: [{any: true}], principals: [{direct_remote_ip: {address_prefix: "::1", prefix_len: 129}}]}}}}
`, "")
		}, route + `.rbac.rules.policies["p"].principals[0].direct_remote_ip.prefix_len`, "value must be less than or equal to 128", false},
		{"bad per-route address", func(t *testing.T) *listenerv3.Listener {
			return rbacListener(t, "", `            typed_per_filter_config:
              rbac-in:
                "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
                rbac: {shadow_rules: {policies: {p: {permissions: [{any: true}], principals: [{direct_remote_ip: {address_prefix: "fe80::1%eth0"}}]}}}}
`, "")
		}, route + `.rbac.shadow_rules.policies["p"].principals[0].direct_remote_ip.address_prefix`, "is not an IP address", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Build([]*listenerv3.Listener{tc.l(t)}, nil, staticClusterProto(t, "a"))
			var fields []resource.FieldError
			var u *resource.UnsupportedError
			var in *resource.InvalidError
			switch {
			case errors.As(err, &u) && tc.unsupported:
				fields = u.Fields
			case errors.As(err, &in) && !tc.unsupported:
				fields = in.Fields
			default:
				t.Fatalf("Build error = %v (%T)", err, err)
			}
			for _, f := range fields {
				if f.Path == tc.path && strings.Contains(f.Reason, tc.reason) {
					return
				}
			}
			t.Errorf("errors %v\nwant %s: ...%s", fields, tc.path, tc.reason)
		})
	}
}

// The converters refuse a payload of another type, and record the
// engine's own errors at their paths.
func TestRBACConverterErrors(t *testing.T) {
	web := mustAny(t, &grpcwebv3.GrpcWeb{})
	for name, conv := range map[string]func(c *converter) any{
		"http":      func(c *converter) any { return c.rbacHTTPFilter("f", "rbac", web) },
		"per-route": func(c *converter) any { return c.rbacPerRoute("f", web) },
		"network":   func(c *converter) any { return c.rbacNetworkFilter("f", web) },
	} {
		c := &converter{}
		if v := conv(c); v != nil || c.err() == nil || !strings.Contains(c.err().Error(), "f: type.googleapis.com/envoy.extensions.filters.http.grpc_web.v3.GrpcWeb is not allowed here") {
			t.Errorf("%s: %v, %v", name, v, c.err())
		}
	}
	c := &converter{}
	c.rbacErr("p", &rbac.ConfigError{Field: "rules.x", Msg: "bad", Err: errors.New("cause")})
	c.rbacErr("p", errors.New("plain"))
	if got := c.err().Error(); !strings.Contains(got, "p.rules.x: bad: cause") || !strings.Contains(got, "p: plain") {
		t.Errorf("rbacErr: %s", got)
	}
}

// rbacNoPerRoute is a route with no typed_per_filter_config.
var rbacNoPerRoute router.Route

func contextWithLocal(ctx context.Context, a net.Addr) context.Context {
	return context.WithValue(ctx, http.LocalAddrContextKey, a)
}

// What the support table refuses before conversion is refused again by
// the converter, for callers that convert without the table's check.
func TestRBACConverterWithoutTable(t *testing.T) {
	for _, tc := range []struct {
		name, y, path, reason string
		network               bool
	}{
		{"LOG", `rules: {action: LOG}`, "f.rules.action", "LOG is not supported yet", false},
		{"unsupported permission", `rules: {policies: {p: {permissions: [{requested_server_name: {exact: a}}], principals: [{any: true}]}}}`,
			`f.rules.policies["p"].permissions[0]`, "this permission is not supported yet", false},
		{"unsupported principal", `rules: {policies: {p: {permissions: [{any: true}], principals: [{filter_state: {key: k}}]}}}`,
			`f.rules.policies["p"].principals[0]`, "this principal is not supported yet", false},
		{"empty permission", `rules: {policies: {p: {permissions: [{}], principals: [{}]}}}`,
			`f.rules.policies["p"].permissions[0]`, "a rule is required", false},
		{"empty principal", `rules: {policies: {p: {permissions: [{any: true}], principals: [{}]}}}`,
			`f.rules.policies["p"].principals[0]`, "an identifier is required", false},
		{"url_path without path", `rules: {policies: {p: {permissions: [{url_path: {}}], principals: [{any: true}]}}}`,
			`f.rules.policies["p"].permissions[0].url_path.path`, "a string matcher is required", false},
		{"CONTINUOUS", `{stat_prefix: s, enforcement_type: CONTINUOUS}`, "f.enforcement_type", "CONTINUOUS is not supported yet", true},
		{"network stat_prefix", `{rules: {}}`, "f.stat_prefix", "a stat_prefix is required", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js, err := yaml.YAMLToJSON([]byte(tc.y))
			if err != nil {
				t.Fatal(err)
			}
			c := &converter{}
			if tc.network {
				var m rbacnetv3.RBAC
				if err := protojson.Unmarshal(js, &m); err != nil {
					t.Fatal(err)
				}
				if f := c.rbacNetworkFilter("f", mustAny(t, &m)); f != nil {
					t.Errorf("converted: %v", f)
				}
			} else {
				var m rbachttpv3.RBAC
				if err := protojson.Unmarshal(js, &m); err != nil {
					t.Fatal(err)
				}
				if f := c.rbacHTTPFilter("f", "rbac", mustAny(t, &m)); f != nil {
					t.Errorf("converted: %v", f)
				}
				per := &rbachttpv3.RBACPerRoute{Rbac: &m}
				if v := c.rbacPerRoute("r", mustAny(t, per)); v != nil {
					t.Errorf("converted the route's config: %v", v)
				}
			}
			var in *resource.InvalidError
			if err := c.err(); !errors.As(err, &in) {
				t.Fatalf("error %v", err)
			}
			for _, f := range in.Fields {
				if f.Path == tc.path && strings.Contains(f.Reason, tc.reason) {
					return
				}
			}
			t.Errorf("errors %v\nwant %s: ...%s", in.Fields, tc.path, tc.reason)
		})
	}
	// An engine error the converter cannot see coming is reported at its
	// path under the route's entry.
	c := &converter{}
	var m rbachttpv3.RBAC
	js, _ := yaml.YAMLToJSON([]byte(`rules: {policies: {p: {permissions: [{header: {name: ":protocol"}}], principals: [{any: true}]}}}`))
	rbacMust(t, protojson.Unmarshal(js, &m))
	if v := c.rbacPerRoute("r", mustAny(t, &rbachttpv3.RBACPerRoute{Rbac: &m})); v != nil || c.err() == nil ||
		!strings.Contains(c.err().Error(), `r.rbac.rules.policies["p"].permissions[0].header.name: pseudo-header ":protocol"`) {
		t.Errorf("per-route engine error: %v, %v", v, c.err())
	}
}

func rbacMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestControlPlaneRBACOutput: the RBAC filters the control plane emits
// from intentions (controlplane/translate's golden files) are accepted
// and converted whole.
func TestControlPlaneRBACOutput(t *testing.T) {
	for _, name := range []string{"intentions", "intentions_tcp"} {
		t.Run(name, func(t *testing.T) {
			ls, rs, cs, eps := controlPlaneGolden(t, name)
			s, err := BuildResources(Options{AllowMissingClusters: true, AllowMissingRoutes: true}, ls, rs, cs, eps)
			if err != nil {
				t.Fatalf("BuildResources: %v", err)
			}
			n := 0
			for _, l := range s.Listeners {
				for _, fc := range l.Config.FilterChains {
					for _, f := range fc.ConnFilters {
						if _, ok := f.(*rbac.NetworkFilter); ok {
							n++
						}
					}
				}
				for _, h := range l.HTTP {
					for _, f := range h.Filters {
						if _, ok := f.HTTP.(*rbac.HTTPFilter); ok {
							n++
						}
					}
				}
			}
			if n == 0 {
				t.Errorf("no RBAC filter converted from %s", name)
			}
		})
	}
}
