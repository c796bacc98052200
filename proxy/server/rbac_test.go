package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// rbacTLS is the inbound side of a sidecar: the proxy's certificate from
// the mesh CA, client certificates required and verified, h2 offered for
// gRPC callers. Indented for a filter chain (6 spaces).
func rbacTLS(certFile, keyFile, caFile string) string {
	return fmt.Sprintf(`      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: {filename: %q}
              private_key: {filename: %q}
            validation_context:
              trusted_ca: {filename: %q}
`, certFile, keyFile, caFile)
}

// rbacHTTPFilter (an http_filters entry, 10 spaces) allows web anything, and api only GET /public* with
// x-tenant: blue; its shadow rules would deny /debug to everyone.
func rbacHTTPFilter(webID, apiID string) string {
	return fmt.Sprintf(`          - name: envoy.filters.http.rbac
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
              rules:
                action: ALLOW
                policies:
                  web:
                    permissions: [{any: true}]
                    principals: [{authenticated: {principal_name: {exact: %q}}}]
                  api-read:
                    permissions:
                    - and_rules:
                        rules:
                        - header: {name: ":method", string_match: {exact: GET}}
                        - url_path: {path: {prefix: /public}}
                        - header: {name: x-tenant, string_match: {exact: blue}}
                    principals: [{authenticated: {principal_name: {exact: %q}}}]
              shadow_rules:
                action: DENY
                policies:
                  no-debug:
                    permissions: [{url_path: {path: {prefix: /debug}}}]
                    principals: [{any: true}]
`, webID, apiID)
}

// rbacBootstrap: listener "in" (HTTP over mTLS; network RBAC refusing
// the evil service, then the connection manager with the HTTP RBAC
// filter) and listener "tcp" (mTLS; network RBAC allowing web only, then
// a TCP proxy to an echo server).
func rbacBootstrap(certFile, keyFile, caFile, webID, apiID, app, grpcUp, echo string) string {
	tlsCtx := rbacTLS(certFile, keyFile, caFile)
	return fmt.Sprintf(`static_resources:
  listeners:
  - name: in
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: in_net
          rules:
            action: DENY
            policies:
              no-evil: {permissions: [{any: true}], principals: [{authenticated: {principal_name: {suffix: /svc/evil}}}]}
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          http_filters:
%s          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          route_config:
            name: local
            virtual_hosts:
            - name: app
              domains: ["*"]
              routes:
              - match: {prefix: "/grpc.testing.TestService/", grpc: {}}
                route: {cluster: grpc, timeout: 0s}
              - match: {prefix: "/open"}
                route: {cluster: app}
                typed_per_filter_config:
                  envoy.filters.http.rbac:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
              - match: {prefix: "/"}
                route: {cluster: app}
%s  - name: tcp
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC
          stat_prefix: tcp_in
          rules:
            action: ALLOW
            policies:
              web: {permissions: [{any: true}], principals: [{authenticated: {principal_name: {exact: %q}}}]}
          shadow_rules:
            action: ALLOW
            policies: {}
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: echo
          cluster: echo
%s  clusters:
%s%s%s`, rbacHTTPFilter(webID, apiID),
		tlsCtx, webID, tlsCtx,
		staticCluster("app", "", app), staticCluster("grpc", h2cOptions, grpcUp), staticCluster("echo", "", echo))
}

// mtlsClient is an HTTP/1.1 client presenting cert (none when nil),
// without keep-alive so each request is a new connection.
func mtlsClient(ca *meshCA, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: ca.pool, ServerName: "inbound.internal"}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

// call makes one request and returns "status body", or "error: ...".
func call(c *http.Client, method, url string, hdr map[string]string) string {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return "error: " + err.Error()
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

// The inbound listener of a sidecar with intentions as RBAC: callers are
// told apart by the SPIFFE ID of their verified certificate; HTTP, gRPC
// and TCP denials take their protocol's shape; shadow rules count and
// never deny; network RBAC closes a connection before anything is
// proxied, on an HTTP chain and on a TCP proxy chain.
func TestRBACInbound(t *testing.T) {
	ca := newMeshCA(t)
	srvCert, srvKey, _, _ := ca.leaf("inbound")
	_, _, webCert, webID := ca.leaf("web")
	_, _, apiCert, apiID := ca.leaf("api")
	_, _, evilCert, _ := ca.leaf("evil")

	app := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "app "+r.URL.Path)
	}))
	p := startProxy(t, rbacBootstrap(srvCert, srvKey, ca.caFile, webID, apiID, app, grpcBackend(t), echoServer(t, "")))
	in := "https://" + p.addr["in"]
	web, api, evil := mtlsClient(ca, &webCert), mtlsClient(ca, &apiCert), mtlsClient(ca, &evilCert)
	blue := map[string]string{"X-Tenant": "blue"}

	t.Run("HTTP", func(t *testing.T) {
		for _, tc := range []struct {
			name         string
			c            *http.Client
			method, path string
			hdr          map[string]string
			want         string
		}{
			{"web allowed", web, "POST", "/private", nil, "200 app /private"},
			{"api denied", api, "GET", "/private", blue, "403 RBAC: access denied"},
			{"api path, method and header allowed", api, "GET", "/public/x?q=1", blue, "200 app /public/x"},
			{"api wrong method", api, "POST", "/public/x", blue, "403 RBAC: access denied"},
			{"api without the header", api, "GET", "/public/x", nil, "403 RBAC: access denied"},
			{"api wrong header value", api, "GET", "/public/x", map[string]string{"X-Tenant": "red"}, "403 RBAC: access denied"},
			{"RBACPerRoute without rbac turns it off", api, "DELETE", "/open", nil, "200 app /open"},
			{"shadow rules deny /debug but are not enforced", web, "GET", "/debug", nil, "200 app /debug"},
		} {
			if got := call(tc.c, tc.method, in+tc.path, tc.hdr); got != tc.want {
				t.Errorf("%s: %s %s: got %q, want %q", tc.name, tc.method, tc.path, got, tc.want)
			}
		}
	})

	t.Run("gRPC", func(t *testing.T) {
		dial := func(cert tls.Certificate) testpb.TestServiceClient {
			creds := credentials.NewTLS(&tls.Config{RootCAs: ca.pool, ServerName: "inbound.internal", Certificates: []tls.Certificate{cert}})
			cc, err := grpc.NewClient(p.addr["in"], grpc.WithTransportCredentials(creds))
			must(t, err)
			t.Cleanup(func() { cc.Close() })
			return testpb.NewTestServiceClient(cc)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := dial(webCert).UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 10}); err != nil {
			t.Errorf("web: %v", err)
		}
		_, err := dial(apiCert).UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 10})
		if s := status.Convert(err); s.Code() != codes.PermissionDenied || s.Message() != "RBAC: access denied" {
			t.Errorf("api: got %v, want PERMISSION_DENIED", err)
		}
	})

	t.Run("refused at the handshake", func(t *testing.T) {
		// Plaintext HTTP to the mTLS port.
		plain := &http.Client{Timeout: 5 * time.Second}
		if got := call(plain, "GET", "http://"+p.addr["in"]+"/", nil); !strings.HasPrefix(got, "error") {
			t.Errorf("plaintext caller: %q", got)
		}
		// TLS without a client certificate.
		if got := call(mtlsClient(ca, nil), "GET", in+"/", nil); !strings.HasPrefix(got, "error") {
			t.Errorf("caller without a certificate: %q", got)
		}
	})

	t.Run("network RBAC on the HTTP chain", func(t *testing.T) {
		if got := call(evil, "GET", in+"/open", nil); !strings.HasPrefix(got, "error") {
			t.Errorf("evil caller: %q, want the connection closed", got)
		}
		if got := call(web, "GET", in+"/open", nil); got != "200 app /open" {
			t.Errorf("web after evil: %q", got)
		}
	})

	t.Run("network RBAC on a TCP proxy chain", func(t *testing.T) {
		dial := func(cert tls.Certificate) *tls.Conn {
			c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.addr["tcp"],
				&tls.Config{RootCAs: ca.pool, ServerName: "inbound.internal", Certificates: []tls.Certificate{cert}})
			must(t, err)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			t.Cleanup(func() { _ = c.Close() })
			return c
		}
		c := dial(webCert)
		_, err := io.WriteString(c, "ping")
		must(t, err)
		if got := readString(t, c, 4); got != "ping" {
			t.Errorf("web echo: %q", got)
		}
		// api completes the TLS handshake (client side), then the proxy
		// closes the connection before proxying a byte.
		c = dial(apiCert)
		_, _ = io.WriteString(c, "ping")
		n, err := c.Read(make([]byte, 4))
		if n != 0 || err == nil {
			t.Errorf("api: read %d bytes, err %v; want the connection closed", n, err)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("api: the connection stayed open until the deadline")
		}
	})

	t.Run("counters", func(t *testing.T) {
		checkRBACCounters(t, p, map[string]uint64{
			// HTTP: web /private, /debug and its gRPC call, api /public
			// allowed (/open has RBAC off: uncounted); api denied four
			// times, and once over gRPC; shadow rules saw the 9 requests
			// outside /open and denied /debug. Network: evil's connection
			// refused on the HTTP chain, api's on the TCP chain, whose
			// empty ALLOW shadow rules deny both connections.
			"in/rbac.allowed":               4,
			"in/rbac.denied":                5,
			"in/rbac.shadow_allowed":        8,
			"in/rbac.shadow_denied":         1,
			"in/in_net.rbac.denied":         1,
			"tcp/tcp_in.rbac.allowed":       1,
			"tcp/tcp_in.rbac.denied":        1,
			"tcp/tcp_in.rbac.shadow_denied": 2,
		})
	})
}

// checkRBACCounters reads filter counters from the proxy's metrics
// (outrigger_listener_filter_total{listener, stat}), keyed
// "listener/stat" with stat Envoy's name without the connection
// manager's "http.<stat_prefix>." (e.g. "in/rbac.denied").
func checkRBACCounters(t *testing.T, p *proxy, want map[string]uint64) {
	t.Helper()
	mfs, err := p.srv.Gatherer().Gather()
	must(t, err)
	got := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "outrigger_listener_filter_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var l, s string
			for _, lp := range m.GetLabel() {
				switch lp.GetName() {
				case "listener":
					l = lp.GetValue()
				case "stat":
					s = lp.GetValue()
				}
			}
			got[l+"/"+s] = uint64(m.GetCounter().GetValue() + m.GetUntyped().GetValue() + m.GetGauge().GetValue())
		}
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s = %d (exported: %v), want %d", k, g, ok, w)
		}
	}
	if t.Failed() {
		t.Logf("filter counters: %v", got)
	}
}

// An RBAC change over xDS takes effect for new requests: a route's
// RBACPerRoute over RDS, and the filter's own rules over LDS.
func TestRBACOverXDS(t *testing.T) {
	ca := newMeshCA(t)
	srvCert, srvKey, _, _ := ca.leaf("inbound")
	_, _, webCert, webID := ca.leaf("web")
	_, _, apiCert, apiID := ca.leaf("api")
	app := namedBackend(t, "app")
	port := freePort(t)

	listenerFor := func(allowed string) *listenerv3.Listener {
		y := fmt.Sprintf(`name: in
address: {socket_address: {address: 127.0.0.1, port_value: %d}}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: in
      rds: {route_config_name: r, config_source: {ads: {}, resource_api_version: V3}}
      http_filters:
      - name: envoy.filters.http.rbac
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
          rules:
            policies:
              only: {permissions: [{any: true}], principals: [{authenticated: {principal_name: {exact: %q}}}]}
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
`, port, allowed) + strings.ReplaceAll("\n"+rbacTLS(srvCert, srvKey, ca.caFile), "\n    ", "\n")[1:]
		var l listenerv3.Listener
		rbacFromYAML(t, y, &l)
		return &l
	}
	routeFor := func(perRoute string) *routev3.RouteConfiguration {
		y := `name: r
virtual_hosts:
- name: all
  domains: ["*"]
  routes:
  - match: {prefix: "/"}
    route: {cluster: c}
` + perRoute
		var r routev3.RouteConfiguration
		rbacFromYAML(t, y, &r)
		return &r
	}
	allowWeb := `    typed_per_filter_config:
      envoy.filters.http.rbac:
        "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute
        rbac:
          rules:
            policies:
              web: {permissions: [{any: true}], principals: [{authenticated: {principal_name: {exact: "` + webID + `"}}}]}
`
	cp := newControlPlane(t)
	cp.set("1", listenerFor(webID), routeFor(""), xdsCluster("c"), xdsEndpoints("c", app))
	srv := startADSProxy(t, cp, false, false)
	waitFor(t, 10*time.Second, "proxy ready", srv.Ready)

	url := fmt.Sprintf("https://127.0.0.1:%d/", port)
	web, api := mtlsClient(ca, &webCert), mtlsClient(ca, &apiCert)
	// pooled keeps its connection across updates, as a caller's sidecar
	// does.
	pooled := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: ca.pool, ServerName: "inbound.internal", Certificates: []tls.Certificate{webCert}}}, Timeout: 10 * time.Second}
	defer pooled.CloseIdleConnections()
	waitCall := func(c *http.Client, want string) {
		t.Helper()
		var got string
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if got = call(c, "GET", url, nil); got == want {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("last answer %q, want %q", got, want)
	}
	waitCall(web, "200 app")
	if got := call(pooled, "GET", url, nil); got != "200 app" {
		t.Fatalf("web over a pooled connection under the first rules: %q", got)
	}
	if got := call(api, "GET", url, nil); got != "403 RBAC: access denied" {
		t.Fatalf("api under the first rules: %q", got)
	}

	// LDS: the filter now allows api only. The pooled connection must not
	// keep the old rules: the old listener drains it.
	cp.set("2", listenerFor(apiID), routeFor(""), xdsCluster("c"), xdsEndpoints("c", app))
	waitCall(web, "403 RBAC: access denied")
	waitCall(pooled, "403 RBAC: access denied")
	if got := call(api, "GET", url, nil); got != "200 app" {
		t.Errorf("api under the new filter rules: %q", got)
	}

	// RDS: the route carries its own rules, which allow web only; they
	// apply on the connection already open.
	cp.set("3", listenerFor(apiID), routeFor(allowWeb), xdsCluster("c"), xdsEndpoints("c", app))
	waitCall(pooled, "200 app")
	if got := call(api, "GET", url, nil); got != "403 RBAC: access denied" {
		t.Errorf("api under the route's rules: %q", got)
	}
	if n := cp.nacked(); len(n) > 0 {
		t.Errorf("NACKs: %v", n)
	}
}

func rbacFromYAML(t *testing.T, y string, m proto.Message) {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	must(t, err)
	if err := protojson.Unmarshal(js, m); err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
}
