package server_test

// The end-to-end test of SNI-selected filter chains on a QUIC listener.
// It needs proxy/server/server.go to give every chain its handler
// (server-quic-chains.patch next to this file).

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/h3"
)

// quicChain is one filter chain of a QUIC listener: its server_names
// (none: no filter_chain_match), certificate, and a direct response
// naming the chain.
func quicChain(cert *testCert, body string, names ...string) string {
	match := ""
	if len(names) > 0 {
		match = fmt.Sprintf("    - filter_chain_match: {server_names: [%s]}\n      transport_socket:\n", strings.Join(names, ", "))
	} else {
		match = "    - transport_socket:\n"
	}
	return match + fmt.Sprintf(`        name: envoy.transport_sockets.quic
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.quic.v3.QuicDownstreamTransport
          downstream_tls_context:
            common_tls_context:
              tls_certificates:
              - certificate_chain: {filename: %q}
                private_key: {filename: %q}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          codec_type: HTTP3
          stat_prefix: quic_%s
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                direct_response: {status: 200, body: {inline_string: %q}}
`, cert.certFile, cert.keyFile, body, body)
}

func TestHTTP3ChainsBySNI(t *testing.T) {
	dir := t.TempDir()
	a := makeCert(t, dir, "a", "a.example")
	w := makeCert(t, dir, "w", "x.wild.example")
	d := makeCert(t, dir, "d", "fallback.example")
	y := quicBootstrap(`  - name: quic
    address:
      socket_address: {address: 127.0.0.1, port_value: 0, protocol: UDP}
    udp_listener_config:
      quic_options: {}
    filter_chains:
`+quicChain(a, "chain-a", "a.example")+quicChain(w, "chain-wild", `"*.wild.example"`)+quicChain(d, "chain-default"),
		staticCluster("unused", "", "127.0.0.1:1"))
	p := startProxy(t, y)
	addr := p.addr["quic"]
	for _, tc := range []struct {
		sni  string
		cert *testCert
		want string
	}{
		{"a.example", a, "chain-a"},
		{"x.wild.example", w, "chain-wild"},
		{"fallback.example", d, "chain-default"},
	} {
		t.Run(tc.sni, func(t *testing.T) {
			c, err := h3.NewClient(h3.ClientOptions{TLS: &tls.Config{RootCAs: tc.cert.pool, ServerName: tc.sni}, ConnectTimeout: 2 * time.Second})
			must(t, err)
			defer c.Close()
			resp, err := (&http.Client{Transport: c, Timeout: 10 * time.Second}).Get("https://" + addr + "/")
			must(t, err)
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if string(b) != tc.want {
				t.Fatalf("SNI %s: %q, want %q", tc.sni, b, tc.want)
			}
		})
	}
}
