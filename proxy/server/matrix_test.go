package server_test

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// matrixEcho is the one handler behind every upstream of the protocol
// matrix. It reports the protocol it was reached over (r.Proto, plus
// "+tls" when the connection was TLS) in X-Upstream-Proto, echoes the
// request's X-Probe header as X-Echo-Probe, and answers with the request
// body (or "GET <path>" when there is none). A gRPC request
// (application/grpc) gets its length-prefixed message back, then the
// trailers grpc-status 0 and x-upstream-proto.
func matrixEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "reading the body: "+err.Error(), http.StatusBadRequest)
			return
		}
		proto := r.Proto
		if r.TLS != nil {
			proto += "+tls"
		}
		w.Header().Set("X-Upstream-Proto", proto)
		w.Header().Set("X-Echo-Probe", r.Header.Get("X-Probe"))
		if r.Header.Get("Content-Type") == "application/grpc" {
			w.Header().Set("Content-Type", "application/grpc")
			w.Header().Set("Trailer", "Grpc-Status, Grpc-Message, X-Trailer-Proto")
			w.Write(b)
			w.Header().Set("Grpc-Status", "0")
			w.Header().Set("X-Trailer-Proto", proto)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if len(b) == 0 {
			b = []byte("GET " + r.URL.Path)
		}
		w.Write(b)
	})
}

// matrixTCPBackend serves h on loopback over exactly the given protocols,
// with TLS when cert is not nil.
func matrixTCPBackend(t *testing.T, h http.Handler, cert *testCert, protos func(*http.Protocols)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := &http.Server{Handler: h, Protocols: new(http.Protocols), ReadHeaderTimeout: 10 * time.Second}
	protos(srv.Protocols)
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert.tls}}
		go srv.ServeTLS(l, "", "")
	} else {
		go srv.Serve(l)
	}
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// matrixTCPListener renders a TCP HTTP listener named name (codec AUTO)
// on 127.0.0.1:0 with an optional transport_socket (6-space lines) and
// the virtual hosts (16-space lines).
func matrixTCPListener(name, transport, vhosts string) string {
	return fmt.Sprintf(`  - name: %s
    address:
      socket_address: {address: 127.0.0.1, port_value: 0}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: %s
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            name: local
            virtual_hosts:
%s%s`, name, name, vhosts, transport)
}

// TestProtocolMatrix carries requests from every downstream protocol
// (HTTP/1.1 and h2c on one plain listener, h2 and HTTP/1.1 over TLS on
// another, HTTP/3 on a QUIC listener) to every upstream protocol (HTTP/1.1,
// h2c, h2 over TLS, HTTP/3), all through one proxy: a GET and a 100 KiB
// POST per pair, a gRPC-shaped call per downstream to each upstream that
// carries trailers, and a dead upstream per downstream.
func TestProtocolMatrix(t *testing.T) {
	dir := t.TempDir()
	edge := makeCert(t, dir, "edge", "localhost")
	upCert := makeCert(t, dir, "upstream", "localhost")
	h := matrixEcho()

	h1Addr := matrixTCPBackend(t, h, nil, func(p *http.Protocols) { p.SetHTTP1(true) })
	h2cAddr := matrixTCPBackend(t, h, nil, func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) })
	h2tlsAddr := matrixTCPBackend(t, h, upCert, func(p *http.Protocols) { p.SetHTTP2(true) })
	h3Addr := h3Backend(t, upCert, h)
	dead := freeAddr(t)

	upTLS := fmt.Sprintf(`    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          validation_context:
            trusted_ca: {filename: %q}
`, upCert.caFile)
	clusters := staticCluster("h1", "", h1Addr) +
		staticCluster("h2c", h2cOptions, h2cAddr) +
		staticCluster("h2tls", h2cOptions+upTLS, h2tlsAddr) +
		staticCluster("h3", h3Options(upCert.caFile), h3Addr) +
		staticCluster("dead", "", dead)
	var vh strings.Builder
	vh.WriteString(`              - name: all
                domains: ["*"]
                routes:
`)
	for _, c := range []string{"h1", "h2c", "h2tls", "h3", "dead"} {
		fmt.Fprintf(&vh, "                - match: {prefix: \"/%s/\"}\n                  route: {cluster: %s}\n", c, c)
	}
	downTLS := fmt.Sprintf(`      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            alpn_protocols: [h2, http/1.1]
            tls_certificates:
            - certificate_chain: {filename: %q}
              private_key: {filename: %q}
`, edge.certFile, edge.keyFile)
	p := startProxy(t, quicBootstrap(
		matrixTCPListener("plain", "", vh.String())+
			matrixTCPListener("tls", downTLS, vh.String())+
			quicListener(edge, "0", "", "", vh.String()),
		clusters))

	// One client per downstream protocol, each allowing only its protocol.
	newTransport := func(tlsCfg *tls.Config, set func(*http.Protocols)) *http.Transport {
		if tlsCfg != nil {
			tlsCfg = tlsCfg.Clone() // the HTTP/2 set-up adds its ALPN to the config it gets
		}
		tr := &http.Transport{TLSClientConfig: tlsCfg, Protocols: new(http.Protocols), DisableCompression: true, MaxIdleConnsPerHost: 16}
		set(tr.Protocols)
		t.Cleanup(tr.CloseIdleConnections)
		return tr
	}
	edgeTLS := &tls.Config{RootCAs: edge.pool, ServerName: "localhost"}
	plain := "http://" + p.addr["plain"]
	secure := "https://" + p.addr["tls"]
	downs := []struct {
		name, base, proto string
		c                 *http.Client
	}{
		{"h1", plain, "HTTP/1.1", &http.Client{Transport: newTransport(nil, func(p *http.Protocols) { p.SetHTTP1(true) }), Timeout: 10 * time.Second}},
		{"h2c", plain, "HTTP/2.0", &http.Client{Transport: newTransport(nil, func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }), Timeout: 10 * time.Second}},
		{"h2tls", secure, "HTTP/2.0", &http.Client{Transport: newTransport(edgeTLS, func(p *http.Protocols) { p.SetHTTP2(true) }), Timeout: 10 * time.Second}},
		{"h1tls", secure, "HTTP/1.1", &http.Client{Transport: newTransport(edgeTLS, func(p *http.Protocols) { p.SetHTTP1(true) }), Timeout: 10 * time.Second}},
		{"h3", "https://" + p.addr["quic"], "HTTP/3.0", h3Client(t, edge)},
	}
	ups := []struct{ name, proto string }{
		{"h1", "HTTP/1.1"},
		{"h2c", "HTTP/2.0"},
		{"h2tls", "HTTP/2.0+tls"},
		{"h3", "HTTP/3.0+tls"},
	}
	big := make([]byte, 100<<10)
	_, err := rand.Read(big)
	must(t, err)

	// do sends one request and reads the whole response, trailers included.
	do := func(t *testing.T, c *http.Client, method, url string, body []byte, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequest(method, url, rd)
		must(t, err)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("%s %s: reading the body: %v", method, url, err)
		}
		return resp, b
	}

	for _, d := range downs {
		for _, u := range ups {
			t.Run(d.name+"->"+u.name, func(t *testing.T) {
				t.Parallel()
				probe := d.name + "-" + u.name
				for _, m := range []struct {
					method string
					body   []byte
					want   []byte
				}{
					{"GET", nil, []byte("GET /" + u.name + "/get")},
					{"POST", big, big},
				} {
					path := "/" + u.name + "/" + strings.ToLower(m.method)
					resp, b := do(t, d.c, m.method, d.base+path, m.body, map[string]string{"X-Probe": probe})
					if resp.StatusCode != http.StatusOK {
						t.Errorf("%s %s: status %d (%q)", m.method, path, resp.StatusCode, trunc(b))
						continue
					}
					if resp.Proto != d.proto {
						t.Errorf("%s %s: downstream answered over %s, want %s", m.method, path, resp.Proto, d.proto)
					}
					if !bytes.Equal(b, m.want) {
						t.Errorf("%s %s: body of %d bytes differs from the %d expected", m.method, path, len(b), len(m.want))
					}
					if got := resp.Header.Get("X-Upstream-Proto"); got != u.proto {
						t.Errorf("%s %s: upstream reached over %q, want %q", m.method, path, got, u.proto)
					}
					if got := resp.Header.Get("X-Echo-Probe"); got != probe {
						t.Errorf("%s %s: X-Echo-Probe %q, want %q (headers not relayed)", m.method, path, got, probe)
					}
					if got := resp.Header.Get("Content-Type"); got != "application/octet-stream" {
						t.Errorf("%s %s: Content-Type %q not relayed", m.method, path, got)
					}
				}
			})
		}
		// gRPC-shaped calls need trailers end to end. The HTTP/1.1 upstream
		// is kept although no real gRPC server speaks HTTP/1.1: the proxy's
		// HTTP/1.1 transport reads chunked trailers, so the cell checks
		// trailer relaying across an HTTP/1.1 hop (Envoy would need
		// enable_trailers, which this proxy refuses but does not need).
		for _, u := range ups {
			t.Run(d.name+"->"+u.name+"/grpc", func(t *testing.T) {
				t.Parallel()
				msg := grpcFrame(0, []byte("grpc "+d.name+"->"+u.name))
				resp, b := do(t, d.c, "POST", d.base+"/"+u.name+"/grpc.testing.TestService/UnaryCall", msg,
					map[string]string{"Content-Type": "application/grpc", "TE": "trailers"})
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/grpc" {
					t.Fatalf("status %d content-type %q (%q)", resp.StatusCode, resp.Header.Get("Content-Type"), trunc(b))
				}
				if !bytes.Equal(b, msg) {
					t.Errorf("message %x, want %x", b, msg)
				}
				if resp.Proto != d.proto {
					t.Errorf("answered over %s, want %s", resp.Proto, d.proto)
				}
				if got := resp.Trailer.Get("Grpc-Status"); got != "0" {
					t.Errorf("trailer grpc-status %q, want 0 (header %v, trailer %v)", got, resp.Header, resp.Trailer)
				}
				if got := resp.Trailer.Get("X-Trailer-Proto"); got != u.proto {
					t.Errorf("trailer x-trailer-proto %q, want %q (trailer %v)", got, u.proto, resp.Trailer)
				}
			})
		}
		t.Run(d.name+"->dead", func(t *testing.T) {
			t.Parallel()
			resp, b := do(t, d.c, "GET", d.base+"/dead/x", nil, nil)
			if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "upstream connect error") {
				t.Errorf("dead upstream: %d %q, want 503 upstream connect error", resp.StatusCode, trunc(b))
			}
			if resp.Proto != d.proto {
				t.Errorf("dead upstream: answered over %s, want %s", resp.Proto, d.proto)
			}
		})
	}
}

// trunc shortens a body for an error message.
func trunc(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
