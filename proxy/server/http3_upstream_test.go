package server_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/outrigger-mesh/outrigger/proxy/h3"
)

// h3Backend serves h over HTTP/3 with cert (valid for 127.0.0.1).
func h3Backend(t *testing.T, cert *testCert, h http.Handler) string {
	t.Helper()
	l, err := h3.New(h3.Config{Name: "backend", Address: "127.0.0.1:0", TLS: &tls.Config{Certificates: []tls.Certificate{cert.tls}}, Handler: h}, nil)
	must(t, err)
	go l.Serve(context.Background())
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

// h3Options makes a cluster speak HTTP/3 to upstreams trusting caFile.
func h3Options(caFile string) string {
	return fmt.Sprintf(`    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http3_protocol_options: {}
    transport_socket:
      name: envoy.transport_sockets.quic
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.quic.v3.QuicUpstreamTransport
        upstream_tls_context:
          common_tls_context:
            validation_context:
              trusted_ca: {filename: %q}
`, caFile)
}

func TestHTTP3UpstreamFromEveryDownstream(t *testing.T) {
	dir := t.TempDir()
	edge := makeCert(t, dir, "edge", "localhost")
	upCert := makeCert(t, dir, "upstream", "localhost")
	be := h3Backend(t, upCert, protoEcho())
	clusters := staticCluster("h3", h3Options(upCert.caFile), be)
	// One TCP listener (h1 and h2c) and one QUIC listener, both to the
	// HTTP/3 cluster.
	tcp := bs{VirtualHosts: vhostAll("h3", ""), Clusters: clusters}.String()
	quic := quicListener(edge, "0", "", "", vhostAll("h3", ""))
	y := strings.Replace(tcp, "  clusters:\n", quic+"  clusters:\n", 1)
	p := startProxy(t, y)
	for name, tc := range map[string]struct {
		c   *http.Client
		url string
	}{
		"h1->h3":  {h1Client(), "http://" + p.addr["ingress"]},
		"h2c->h3": {h2cClient(), "http://" + p.addr["ingress"]},
		"h3->h3":  {h3Client(t, edge), "https://" + p.addr["quic"]},
	} {
		resp, err := tc.c.Post(tc.url+"/p", "text/plain", strings.NewReader(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "HTTP/3.0 /p "+name {
			t.Errorf("%s: %d %q, want the upstream reached over HTTP/3", name, resp.StatusCode, b)
		}
	}
}

func TestHTTP3UpstreamDeadIs503(t *testing.T) {
	upCert := makeCert(t, t.TempDir(), "upstream", "localhost")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	must(t, err)
	dead := pc.LocalAddr().String()
	pc.Close()
	p := startProxy(t, bs{VirtualHosts: vhostAll("h3", ""), Clusters: staticCluster("h3", h3Options(upCert.caFile), dead)}.String())
	resp, err := h1Client().Get("http://" + p.addr["ingress"] + "/")
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(b), "upstream connect error") {
		t.Fatalf("dead HTTP/3 upstream: %d %q", resp.StatusCode, b)
	}
}

// grpcOverH3Backend is a unary gRPC service written by hand on HTTP/3
// (grpc-go has no HTTP/3): it echoes the request message's length back in
// a SimpleResponse payload and sends grpc-status and a custom trailer.
func grpcOverH3Backend() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if len(b) < 5 || r.Header.Get("Content-Type") != "application/grpc" {
			http.Error(w, "not gRPC", 400)
			return
		}
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status, Grpc-Message, X-Trailer")
		if strings.HasSuffix(r.URL.Path, "/EmptyCall") {
			w.Header().Set("Grpc-Status", "7")
			w.Header().Set("Grpc-Message", "denied over h3")
			return
		}
		msg := h3GRPCFrame(nil, &testpb.SimpleResponse{Payload: &testpb.Payload{Body: make([]byte, binary.BigEndian.Uint32(b[1:5]))}})
		w.Write(msg)
		w.Header().Set("Grpc-Status", "0")
		w.Header().Set("X-Trailer", "h3")
	})
}

func TestGRPCToHTTP3Upstream(t *testing.T) {
	upCert := makeCert(t, t.TempDir(), "upstream", "localhost")
	be := h3Backend(t, upCert, grpcOverH3Backend())
	p := grpcProxyTo(t, staticCluster("grpc", h3Options(upCert.caFile), be))
	c := grpcClient(t, p.addr["ingress"])
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var tr metadata.MD
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{ResponseSize: 1, Payload: &testpb.Payload{Body: make([]byte, 40)}}, grpc.Trailer(&tr))
	if err != nil {
		t.Fatalf("unary to an HTTP/3 upstream: %v", err)
	}
	if len(resp.GetPayload().GetBody()) == 0 || strings.Join(tr.Get("x-trailer"), "") != "h3" {
		t.Fatalf("response %v trailers %v", resp, tr)
	}
	_, err = c.EmptyCall(ctx, &testpb.Empty{})
	if err == nil || !strings.Contains(err.Error(), "PermissionDenied") || !strings.Contains(err.Error(), "denied over h3") {
		t.Fatalf("error status through h3: %v", err)
	}
}

func grpcProxyTo(t *testing.T, clusters string) *proxy {
	vh := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/", grpc: {}}
                  route: {cluster: grpc, timeout: 0s}
`
	return startProxy(t, bs{VirtualHosts: vh, Clusters: clusters}.String())
}
