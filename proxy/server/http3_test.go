package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
	"github.com/outrigger-mesh/outrigger/proxy/h3"
	"github.com/outrigger-mesh/outrigger/proxy/server"
)

// quicListener renders an HTTP/3 listener named quic on 127.0.0.1 (UDP)
// serving the virtual hosts (16-space lines) with cert; quicExtra lines go
// under quic_options (8 spaces), tsExtra under the QuicDownstreamTransport
// (10 spaces).
func quicListener(cert *testCert, port, quicExtra, tsExtra, vhosts string) string {
	if quicExtra == "" {
		quicExtra = "        {}\n"
	}
	return fmt.Sprintf(`  - name: quic
    address:
      socket_address: {address: 127.0.0.1, port_value: %s, protocol: UDP}
    udp_listener_config:
      quic_options:
%s    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.quic
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.quic.v3.QuicDownstreamTransport
%s          downstream_tls_context:
            common_tls_context:
              tls_certificates:
              - certificate_chain: {filename: %q}
                private_key: {filename: %q}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          codec_type: HTTP3
          stat_prefix: quic
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            name: local
            virtual_hosts:
%s`, port, quicExtra, tsExtra, cert.certFile, cert.keyFile, vhosts)
}

func quicBootstrap(listeners, clusters string) string {
	return "static_resources:\n  listeners:\n" + listeners + "  clusters:\n" + clusters
}

// h3Client is an HTTP/3 client trusting cert, over proxy/h3's client.
func h3Client(t *testing.T, cert *testCert) *http.Client {
	t.Helper()
	c, err := h3.NewClient(h3.ClientOptions{TLS: &tls.Config{RootCAs: cert.pool}, ConnectTimeout: 2 * time.Second})
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return &http.Client{Transport: c, Timeout: 10 * time.Second}
}

// protoEcho answers with the protocol it was reached over and the body.
func protoEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		fmt.Fprintf(w, "%s %s %s", r.Proto, r.URL.Path, b)
	})
}

func TestHTTP3DownstreamToH1AndH2c(t *testing.T) {
	cert := makeCert(t, t.TempDir(), "edge", "localhost")
	be := backend(t, protoEcho())
	vh := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/h2"}
                  route: {cluster: h2c}
                - match: {prefix: "/"}
                  route: {cluster: h1}
`
	p := startProxy(t, quicBootstrap(quicListener(cert, "0", "", "", vh),
		staticCluster("h1", "", be)+staticCluster("h2c", h2cOptions, be)))
	c := h3Client(t, cert)
	base := "https://" + p.addr["quic"]
	for path, want := range map[string]string{"/h1": "HTTP/1.1 /h1 ping", "/h2": "HTTP/2.0 /h2 ping"} {
		resp, err := c.Post(base+path, "text/plain", strings.NewReader("ping"))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != want || resp.Proto != "HTTP/3.0" {
			t.Errorf("%s: %d %s %q, want 200 HTTP/3.0 %q", path, resp.StatusCode, resp.Proto, b, want)
		}
		if got := resp.Header.Get("X-Seen-Proto"); got != "https" {
			t.Errorf("%s: upstream saw x-forwarded-proto %q, want https", path, got)
		}
	}
	// A body bigger than one QUIC flow-control window goes through whole.
	big := bytes.Repeat([]byte("x"), 3<<20)
	resp, err := c.Post(base+"/h2", "application/octet-stream", bytes.NewReader(big))
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) != len("HTTP/2.0 /h2 ")+len(big) {
		t.Errorf("large body: got %d bytes back", len(b))
	}
	if st := p.srv.Metrics(); st == nil {
		t.Fatal("no metrics")
	}
}

func TestHTTP3DeadUpstreamIs503(t *testing.T) {
	cert := makeCert(t, t.TempDir(), "edge", "localhost")
	p := startProxy(t, quicBootstrap(quicListener(cert, "0", "", "", vhostAll("dead", "")), staticCluster("dead", "", freeAddr(t))))
	resp, err := h3Client(t, cert).Get("https://" + p.addr["quic"] + "/")
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "upstream connect error") {
		t.Fatalf("dead upstream over h3: %d %q, want 503 upstream connect error", resp.StatusCode, b)
	}
}

// h3GRPCFrame is one length-prefixed gRPC message.
func h3GRPCFrame(t *testing.T, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	out := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(out[1:], uint32(len(b)))
	return append(out, b...)
}

func grpcOverH3(t *testing.T, c *http.Client, url string, req proto.Message) (*http.Response, []byte) {
	t.Helper()
	r, _ := http.NewRequest("POST", url, bytes.NewReader(h3GRPCFrame(t, req)))
	r.Header.Set("Content-Type", "application/grpc")
	r.Header.Set("TE", "trailers")
	resp, err := c.Do(r)
	must(t, err)
	b, err := io.ReadAll(resp.Body) // trailers are in once the body ends
	must(t, err)
	resp.Body.Close()
	return resp, b
}

func TestGRPCOverHTTP3ToH2Upstream(t *testing.T) {
	cert := makeCert(t, t.TempDir(), "edge", "localhost")
	vh := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/", grpc: {}}
                  route: {cluster: grpc, timeout: 0s}
`
	p := startProxy(t, quicBootstrap(quicListener(cert, "0", "", "", vh),
		staticCluster("grpc", h2cOptions, grpcBackend(t))+staticCluster("dead", h2cOptions, freeAddr(t))))
	c := h3Client(t, cert)
	url := "https://" + p.addr["quic"] + "/grpc.testing.TestService/UnaryCall"
	resp, body := grpcOverH3(t, c, url, &testpb.SimpleRequest{ResponseSize: 10})
	if resp.StatusCode != 200 || resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("X-Trailer") != "unary" {
		t.Fatalf("unary over h3: %d header %v trailer %v", resp.StatusCode, resp.Header, resp.Trailer)
	}
	var out testpb.SimpleResponse
	if len(body) < 5 || proto.Unmarshal(body[5:], &out) != nil || len(out.GetPayload().GetBody()) != 10 {
		t.Fatalf("unary response body %x", body)
	}
	// An error status from the service comes back in the trailers.
	resp, _ = grpcOverH3(t, c, url, &testpb.SimpleRequest{ResponseStatus: &testpb.EchoStatus{Code: 5, Message: "nope"}})
	if g := resp.Trailer.Get("Grpc-Status") + resp.Header.Get("Grpc-Status"); g != "5" {
		t.Fatalf("NOT_FOUND over h3: grpc-status %q (header %v trailer %v)", g, resp.Header, resp.Trailer)
	}
}

func TestGRPCOverHTTP3DeadUpstreamIsUnavailable(t *testing.T) {
	cert := makeCert(t, t.TempDir(), "edge", "localhost")
	vh := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/", grpc: {}}
                  route: {cluster: dead}
`
	p := startProxy(t, quicBootstrap(quicListener(cert, "0", "", "", vh), staticCluster("dead", h2cOptions, freeAddr(t))))
	resp, _ := grpcOverH3(t, h3Client(t, cert), "https://"+p.addr["quic"]+"/grpc.testing.TestService/EmptyCall", &testpb.Empty{})
	// A gRPC local reply is trailers-only: grpc-status in the headers.
	if resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != "14" {
		t.Fatalf("dead gRPC upstream over h3: %d header %v trailer %v, want 200 grpc-status 14", resp.StatusCode, resp.Header, resp.Trailer)
	}
}

func TestHTTP3ListenerLifecycle(t *testing.T) {
	cert := makeCert(t, t.TempDir(), "edge", "localhost")
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			entered <- struct{}{}
			<-release
		}
		io.WriteString(w, "v1 "+r.URL.Path)
	}))
	be2 := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "v2 "+r.URL.Path) }))
	// A fixed port, so the update below is an in-place one.
	port := udpPort(t)
	p := startProxy(t, quicBootstrap(quicListener(cert, port, "", "", vhostAll("one", "")), staticCluster("one", "", be)+staticCluster("two", "", be2)))
	addr := p.addr["quic"]
	get := func(c *http.Client, path string) string {
		resp, err := c.Get("https://" + addr + path)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	c1 := h3Client(t, cert)
	if got := get(c1, "/a"); got != "v1 /a" {
		t.Fatalf("before update: %q", got)
	}
	slow := make(chan string, 1)
	go func() { slow <- get(c1, "/slow") }()
	<-entered

	// Update: the route now goes to cluster two. The socket stays; a new
	// connection sees the new route while the open one finishes its request.
	b2, err := bootstrap.Load("", quicBootstrap(quicListener(cert, port, "", "", vhostAll("two", "")), staticCluster("one", "", be)+staticCluster("two", "", be2)))
	must(t, err)
	must(t, p.srv.Apply(b2.Static))
	if got := p.srv.Listeners()["quic"]; got != addr {
		t.Fatalf("in-place update moved the listener: %s -> %s", addr, got)
	}
	if got := get(h3Client(t, cert), "/b"); got != "v2 /b" {
		t.Fatalf("new connection after update: %q", got)
	}

	// A change of QUIC settings cannot be made on the same socket: refused,
	// and the listener in force keeps serving.
	b3, err := bootstrap.Load("", quicBootstrap(quicListener(cert, port, "        idle_timeout: 7s\n", "", vhostAll("two", "")), staticCluster("one", "", be)+staticCluster("two", "", be2)))
	must(t, err)
	if err := p.srv.Apply(b3.Static); err == nil || !strings.Contains(err.Error(), "cannot change in place") {
		t.Fatalf("QUIC settings change: %v", err)
	}

	// Drain (stop): the in-flight request still completes, then Run returns.
	stopped := make(chan struct{})
	go func() { p.stop(t); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("proxy stopped with a request in flight")
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if got := <-slow; got != "v1 /slow" {
		t.Fatalf("in-flight request across update and drain: %q", got)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("proxy did not stop after the drain")
	}
	// Closed: the port takes no more HTTP/3.
	c3, _ := h3.NewClient(h3.ClientOptions{TLS: &tls.Config{RootCAs: cert.pool}, ConnectTimeout: 300 * time.Millisecond})
	defer c3.Close()
	if _, err := (&http.Client{Transport: c3}).Get("https://" + addr + "/"); err == nil {
		t.Fatal("HTTP/3 request after stop succeeded")
	}
}

func TestHTTP3AndTCPListenersSideBySide(t *testing.T) {
	// The usual edge: TLS over TCP advertising HTTP/3 with an alt-svc
	// header (Envoy's way: response_headers_to_add), and the QUIC listener.
	cert := makeCert(t, t.TempDir(), "edge", "localhost")
	be := backend(t, protoEcho())
	port := udpPort(t)
	vh := vhostAll("be", "") + fmt.Sprintf(`                response_headers_to_add:
                - header: {key: alt-svc, value: 'h3=":%s"; ma=86400'}
`, port)
	tcp := fmt.Sprintf(`  - name: tcp
    address:
      socket_address: {address: 127.0.0.1, port_value: 0}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {filename: %q}
              private_key: {filename: %q}
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: tcp
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
          route_config:
            name: local
            virtual_hosts:
%s`, cert.certFile, cert.keyFile, vh)
	p := startProxy(t, quicBootstrap(tcp+quicListener(cert, port, "", "", vhostAll("be", "")), staticCluster("be", "", be)))
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.pool}}, Timeout: 10 * time.Second}
	resp, err := hc.Get("https://" + p.addr["tcp"] + "/x")
	must(t, err)
	resp.Body.Close()
	alt := resp.Header.Get("Alt-Svc")
	if !strings.Contains(alt, `h3=":`+port+`"`) {
		t.Fatalf("alt-svc %q", alt)
	}
	// Follow it.
	resp, err = h3Client(t, cert).Get("https://127.0.0.1:" + port + "/x")
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Proto != "HTTP/3.0" || string(b) != "HTTP/1.1 /x " {
		t.Fatalf("following alt-svc: %s %q", resp.Proto, b)
	}
}

func TestHTTP3ConfigErrors(t *testing.T) {
	cert := makeCert(t, t.TempDir(), "edge", "localhost")
	cl := staticCluster("be", "", "127.0.0.1:1")
	good := quicListener(cert, "0", "", "", vhostAll("be", ""))
	cut := func(y, from, to string) string { return y[:strings.Index(y, from)] + y[strings.Index(y, to):] }
	tcp := bs{VirtualHosts: vhostAll("be", ""), Clusters: cl}.String()
	quicTS := fmt.Sprintf(`      transport_socket:
        name: envoy.transport_sockets.quic
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.quic.v3.QuicDownstreamTransport
          downstream_tls_context:
            common_tls_context:
              tls_certificates:
              - certificate_chain: {filename: %q}
                private_key: {filename: %q}
`, cert.certFile, cert.keyFile)
	// chainOf is a listener's (last) filter chain; named gives a listener's
	// first chain a server name.
	chainOf := func(l string) string { return l[strings.Index(l, "    - transport_socket:\n"):] }
	named := func(l, name string) string {
		return strings.Replace(l, "    - transport_socket:\n", "    - filter_chain_match: {server_names: ["+name+"]}\n      transport_socket:\n", 1)
	}
	for name, tc := range map[string]struct{ yaml, want string }{
		"codec not HTTP3": {strings.Replace(good, "codec_type: HTTP3", "codec_type: HTTP2", 1), "needs codec_type HTTP3"},
		"TCP address":     {strings.Replace(good, ", protocol: UDP", "", 1), "needs protocol UDP"},
		"no transport":    {"    - " + cut(good, "    - transport_socket:\n", "      filters:\n")[6:], ""},
		"tls socket": {good[:strings.Index(good, "    - transport_socket:\n")] + fmt.Sprintf(`    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {filename: %q}
              private_key: {filename: %q}
`, cert.certFile, cert.keyFile) + good[strings.Index(good, "      filters:\n"):], "DownstreamTlsContext is not allowed here"},
		"HTTP3 on TCP":        {bs{HCMExtra: "          codec_type: HTTP3\n", VirtualHosts: vhostAll("be", ""), Clusters: cl}.String(), "HTTP3 needs a QUIC listener"},
		"empty second chain":  {strings.Replace(good, "    filter_chains:\n", "    filter_chains:\n    - filters: []\n", 1), "exactly one network filter"},
		"zero streams":        {quicListener(cert, "0", "        quic_protocol_options: {max_concurrent_streams: 0}\n", "", vhostAll("be", "")), "greater than or equal to 1"},
		"unknown quic option": {quicListener(cert, "0", "        reject_new_connections: true\n", "", vhostAll("be", "")), "reject_new_connections"},
		"no quic_options":     {strings.Replace(good, "      quic_options:\n        {}\n", "      {}\n", 1), "quic_options: is required"},
		"no tls context":      {cut(good, "          downstream_tls_context:\n", "      filters:\n"), "transport_socket.typed_config.downstream_tls_context: value is required"},
		"TLS 1.2 only": {strings.Replace(good, "            common_tls_context:\n",
			"            common_tls_context:\n              tls_params: {tls_maximum_protocol_version: TLSv1_2}\n", 1), "QUIC needs TLS 1.3"},
		"chain match": {strings.Replace(good, "    - transport_socket:\n",
			"    - filter_chain_match: {transport_protocol: quic}\n      transport_socket:\n", 1), "match on server_names only"},
		"two chains without names": {good + chainOf(good), "filter_chains[1]: a second chain without filter_chain_match.server_names"},
		"a name twice": {named(good, "a.example") + named(chainOf(good), "A.example"),
			`filter_chains[1].filter_chain_match.server_names[0]: "a.example" is also a server name of filter_chains[0]`},
		"early data differs": {named(good, "a.example") + strings.Replace(chainOf(good), "          downstream_tls_context:\n",
			"          enable_early_data: true\n          downstream_tls_context:\n", 1), "same enable_early_data"},
		"header limit differs": {named(good, "a.example") + strings.Replace(chainOf(good), "          codec_type: HTTP3\n",
			"          codec_type: HTTP3\n          max_request_headers_kb: 10\n", 1), "same max_request_headers_kb"},
		"bad wildcard": {strings.Replace(good, "    - transport_socket:\n",
			"    - filter_chain_match: {server_names: [\"a.*.example\"]}\n      transport_socket:\n", 1), "a wildcard must be a leading"},
		"default chain": {strings.Replace(good, "    filter_chains:\n", "    default_filter_chain: {filters: []}\n    filter_chains:\n", 1), "default_filter_chain: is not supported"},
		"two filters": {strings.Replace(good, "      filters:\n", "      filters:\n      - name: x\n        typed_config: {\"@type\": "+
			"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager, codec_type: HTTP3, stat_prefix: x, rds: {route_config_name: x}}\n", 1),
			"exactly one network filter"},
		"UDP on TCP listener":         {strings.Replace(tcp, "port_value: 0}", "port_value: 0, protocol: UDP}", 1), "UDP needs udp_listener_config.quic_options"},
		"quic upstream without http3": {quicBootstrap(good, cl+strings.Replace(h3Options(cert.caFile), "http3_protocol_options", "http2_protocol_options", 1)), "needs typed_extension_protocol_options with explicit_http_config.http3_protocol_options"},
		"http3 upstream without quic": {quicBootstrap(good, cl+h3Options(cert.caFile)[:strings.Index(h3Options(cert.caFile), "    transport_socket:")]), "an HTTP/3 cluster needs envoy.transport_sockets.quic"},
		"http3 upstream with tls": {quicBootstrap(good, cl+h3Options(cert.caFile)[:strings.Index(h3Options(cert.caFile), "    transport_socket:")]+fmt.Sprintf(`    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          validation_context:
            trusted_ca: {filename: %q}
`, cert.caFile)), "UpstreamTlsContext is not allowed here"},
		"http3 upstream TLS 1.2":      {quicBootstrap(good, cl+strings.Replace(h3Options(cert.caFile), "          common_tls_context:\n", "          common_tls_context:\n            tls_params: {tls_maximum_protocol_version: TLSv1_2}\n", 1)), "QUIC needs TLS 1.3"},
		"http3 upstream max requests": {quicBootstrap(good, cl+strings.Replace(h3Options(cert.caFile), "        explicit_http_config:\n", "        common_http_protocol_options: {max_requests_per_connection: 5}\n        explicit_http_config:\n", 1)), "not supported yet on HTTP/3 upstreams"},
		"http3 upstream idle 0s":      {quicBootstrap(good, cl+strings.Replace(h3Options(cert.caFile), "        explicit_http_config:\n", "        common_http_protocol_options: {idle_timeout: 0s}\n        explicit_http_config:\n", 1)), "common_http_protocol_options.idle_timeout: 0s (disabled) is not supported yet on HTTP/3 upstreams"},
		"quic socket on TCP listener": {bs{VirtualHosts: vhostAll("be", ""), Clusters: cl, Transport: quicTS}.String(), "envoy.transport_sockets.quic needs a QUIC listener"},
	} {
		y := tc.yaml
		if !strings.HasPrefix(y, "static_resources") {
			y = quicBootstrap(y, cl)
		}
		_, err := bootstrap.Load("", y)
		if err == nil || (tc.want != "" && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
}

func TestHTTP3EarlyDataSetting(t *testing.T) {
	// enable_early_data is accepted and converted; the default is off.
	cert := makeCert(t, t.TempDir(), "edge", "localhost")
	cl := staticCluster("be", "", "127.0.0.1:1")
	for ts, want := range map[string]bool{"": false, "          enable_early_data: true\n": true, "          enable_early_data: false\n": false} {
		b, err := bootstrap.Load("", quicBootstrap(quicListener(cert, "0", "", ts, vhostAll("be", "")), cl))
		must(t, err)
		if q := b.Static.Listeners[0].QUIC; q == nil || q.EarlyData != want {
			t.Errorf("transport %q: QUIC %+v, want EarlyData %v", ts, q, want)
		}
	}
}

func TestNgtcp2ClientThroughProxy(t *testing.T) {
	bin, err := exec.LookPath("gtlsclient")
	if err != nil {
		t.Skip("gtlsclient (Debian ngtcp2-client) not installed: apt-get install ngtcp2-client")
	}
	cert := makeCert(t, t.TempDir(), "edge", "localhost")
	be := backend(t, protoEcho())
	p := startProxy(t, quicBootstrap(quicListener(cert, "0", "", "", vhostAll("be", "")), staticCluster("be", "", be)))
	host, port := hostPort(t, p.addr["quic"])
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--exit-on-all-streams-close", "--download", dir, "--timeout=10s", "-q",
		host, port, "https://"+host+":"+port+"/ngtcp2")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gtlsclient: %v\n%s", err, out)
	}
	got, err := os.ReadFile(dir + "/ngtcp2")
	if err != nil || string(got) != "HTTP/1.1 /ngtcp2 " {
		t.Fatalf("gtlsclient downloaded %q\n%s", got, out)
	}
}

// udpPort finds a UDP port that was free a moment ago, for configs that
// name a fixed port.
func udpPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	defer pc.Close()
	_, port := hostPort(t, pc.LocalAddr().String())
	return port
}

func TestHTTP3BusyPortFailsAtStart(t *testing.T) {
	cert := makeCert(t, t.TempDir(), "edge", "localhost")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	defer pc.Close()
	_, port := hostPort(t, pc.LocalAddr().String())
	b, err := bootstrap.Load("", quicBootstrap(quicListener(cert, port, "", "", vhostAll("be", "")), staticCluster("be", "", "127.0.0.1:1")))
	must(t, err)
	_, err = server.New(server.Options{Bootstrap: b, DrainTimeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), `listener "quic"`) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("busy UDP port: %v, want the bind error naming the listener", err)
	}
}
