package server_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sdsFile renders Envoy's SDS file format: a DiscoveryResponse whose
// resources are a certificate secret "cert" and a validation secret
// "roots".
func sdsFile(certPEM, keyPEM []byte, roots ...*spiffeCA) string {
	var bundle []byte
	for _, ca := range roots {
		bundle = append(bundle, ca.pem...)
	}
	return fmt.Sprintf(`version_info: "1"
resources:
- "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
  name: cert
  tls_certificate:
    certificate_chain: {inline_string: %q}
    private_key: {inline_string: %q}
- "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
  name: roots
  validation_context:
    trusted_ca: {inline_string: %q}
    match_typed_subject_alt_names: [{san_type: URI, matcher: {safe_regex: {regex: "spiffe://[^/]+/ns/default/dc/dc1/svc/web"}}}]
`, certPEM, keyPEM, bundle)
}

// replaceFile writes content to path the way Kubernetes and most tools
// update a file: a new file renamed over the old.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	must(t, os.WriteFile(tmp, []byte(content), 0o600))
	must(t, os.Rename(tmp, path))
}

// TestMTLSFromSDSFile: standalone, a listener takes its certificate and
// trust bundle from an SDS file (path_config_source) and follows its
// rotation for new handshakes; /config_dump shows no private key.
func TestMTLSFromSDSFile(t *testing.T) {
	dir := t.TempDir()
	caOld, caNew, rogue := newSpiffeCA(t, "ca-old"), newSpiffeCA(t, "ca-new"), newSpiffeCA(t, "rogue")
	path := filepath.Join(dir, "sds.yaml")
	c, k, _ := caOld.leaf(t, spiffeAPI)
	replaceFile(t, path, sdsFile(c, k, caOld))
	inlineCert, inlineKey, _ := caOld.leaf(t, spiffeAPI)

	ref := func(name string) string {
		return fmt.Sprintf("{name: %s, sds_config: {path_config_source: {path: %q}}}", name, path)
	}
	p := startProxy(t, fmt.Sprintf(`admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 0}}
static_resources:
  secrets:
  - name: unused
    tls_certificate: {certificate_chain: {inline_string: %q}, private_key: {inline_string: %q}}
  listeners:
  - name: in
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: in
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          route_config: {name: r, virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200, body: {inline_string: api}}}]}]}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_certificate_sds_secret_configs: [%s]
            validation_context_sds_secret_config: %s
  - name: inline
    address: {socket_address: {address: 127.0.0.1, port_value: 0}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: inline
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
          route_config: {name: r2, virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}]}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates: [{certificate_chain: {inline_string: %q}, private_key: {inline_string: %q}}]
`, inlineCert, inlineKey, ref("cert"), ref("roots"), inlineCert, inlineKey))
	addr := p.addr["in"]

	_, _, webOld := caOld.leaf(t, spiffeWeb)
	_, _, webNew := caNew.leaf(t, spiffeWeb)
	_, _, apiOld := caOld.leaf(t, spiffeAPI)
	_, _, rogueWeb := rogue.leaf(t, spiffeWeb)
	if got, err := mtlsGet(addr, &webOld, caOld.pool, 0); err != nil || got != "api" {
		t.Fatalf("web: %q, %v", got, err)
	}
	if _, err := mtlsGet(addr, &rogueWeb, nil, 0); err == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
	if _, err := mtlsGet(addr, &apiOld, nil, 0); err == nil {
		t.Fatal("a SPIFFE ID the regex does not match was accepted")
	}

	// Rotate: the new CA's leaf, with both roots; then the new root only.
	c, k, _ = caNew.leaf(t, spiffeAPI)
	replaceFile(t, path, sdsFile(c, k, caOld, caNew))
	waitFor(t, 10*time.Second, "the new certificate from the file", func() bool {
		issuer, _ := servedBy(t, addr)
		return issuer == "ca-new"
	})
	if got, err := mtlsGet(addr, &webOld, caNew.pool, 0); err != nil || got != "api" {
		t.Fatalf("old client during the overlap: %q, %v", got, err)
	}
	replaceFile(t, path, sdsFile(c, k, caNew))
	waitFor(t, 10*time.Second, "the old root retired", func() bool {
		_, err := mtlsGet(addr, &webOld, nil, 0)
		return err != nil
	})
	if got, err := mtlsGet(addr, &webNew, caNew.pool, 0); err != nil || got != "api" {
		t.Fatalf("new client: %q, %v", got, err)
	}

	// A broken file changes nothing.
	replaceFile(t, path, "resources: [")
	for range 3 {
		if got, err := mtlsGet(addr, &webNew, caNew.pool, 0); err != nil || got != "api" {
			t.Fatalf("after a broken file: %q, %v", got, err)
		}
	}

	// No private key in /config_dump: neither the static secret's nor the
	// inline certificate's.
	resp, err := http.Get("http://" + p.admin + "/config_dump")
	must(t, err)
	dump, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.Contains(string(dump), "PRIVATE KEY") || strings.Count(string(dump), `"[redacted]"`) != 2 {
		t.Fatalf("config_dump %d:\n%s", resp.StatusCode, dump)
	}
	if !strings.Contains(string(dump), "BEGIN CERTIFICATE") {
		t.Fatal("config_dump lost the certificates")
	}
}
