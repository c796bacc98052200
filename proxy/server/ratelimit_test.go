package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// rlFilter is an http_filters entry (10 spaces): a local rate limit of
// max tokens per hour, enabled and enforced, with x-ratelimit headers.
const rlFilter = `          - name: lrl
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: edge
              token_bucket: {max_tokens: 2, tokens_per_fill: 2, fill_interval: 3600s}
              filter_enabled: {default_value: {numerator: 100, denominator: HUNDRED}}
              filter_enforced: {default_value: {numerator: 100, denominator: HUNDRED}}
              enable_x_ratelimit_headers: DRAFT_VERSION_03
              response_headers_to_add:
              - header: {key: x-limited-by, value: outrigger}
`

// The HTTP local rate limit answers 429 with the x-ratelimit headers once
// the bucket is empty, and a route with its own typed_per_filter_config
// has a bucket of its own.
func TestLocalRateLimitHTTP(t *testing.T) {
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	vh := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/own"}
                  route: {cluster: app}
                  typed_per_filter_config:
                    lrl:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                      stat_prefix: own
                      status: {code: ServiceUnavailable}
                      token_bucket: {max_tokens: 1, fill_interval: 3600s}
                      filter_enabled: {default_value: {numerator: 100, denominator: HUNDRED}}
                      filter_enforced: {default_value: {numerator: 100, denominator: HUNDRED}}
                - match: {prefix: "/"}
                  route: {cluster: app}
`
	p := startProxy(t, bs{Filters: rlFilter, VirtualHosts: vh, Clusters: staticCluster("app", "", up)}.String())
	c := h1Client()
	get := func(path string) (*http.Response, string) {
		resp, err := c.Get("http://" + p.addr["ingress"] + path)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for i, remaining := range []string{"1", "0"} {
		resp, body := get("/a")
		if resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		h := resp.Header
		if h.Get("X-Ratelimit-Limit") != "2" || h.Get("X-Ratelimit-Remaining") != remaining || h.Get("X-Ratelimit-Reset") == "" {
			t.Fatalf("request %d headers: %v", i, h)
		}
	}
	resp, body := get("/a")
	if resp.StatusCode != 429 || body != "local_rate_limited" || resp.Header.Get("X-Limited-By") != "outrigger" ||
		resp.Header.Get("X-Ratelimit-Remaining") != "0" {
		t.Fatalf("over the limit: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	// /own has its own bucket of one, untouched by /a's requests.
	if resp, body := get("/own"); resp.StatusCode != 200 {
		t.Fatalf("own bucket, first request: %d %q", resp.StatusCode, body)
	}
	if resp, body := get("/own"); resp.StatusCode != 503 || body != "local_rate_limited" {
		t.Fatalf("own bucket, second request: %d %q", resp.StatusCode, body)
	}
	for stat, want := range map[string]uint64{
		"edge.http_local_rate_limit.enabled":      3,
		"edge.http_local_rate_limit.ok":           2,
		"edge.http_local_rate_limit.rate_limited": 1,
		"edge.http_local_rate_limit.enforced":     1,
		"own.http_local_rate_limit.ok":            1,
		"own.http_local_rate_limit.rate_limited":  1,
	} {
		if got := filterCounter(t, p, "ingress", stat); got != want {
			t.Errorf("%s = %d, want %d", stat, got, want)
		}
	}
}

// A rate-limited gRPC call fails with UNAVAILABLE.
func TestLocalRateLimitGRPC(t *testing.T) {
	vh := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/", grpc: {}}
                  route: {cluster: grpc, timeout: 0s}
`
	p := startProxy(t, bs{Filters: rlFilter, VirtualHosts: vh, Clusters: staticCluster("grpc", h2cOptions, grpcBackend(t))}.String())
	conn, err := grpc.NewClient(p.addr["ingress"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	must(t, err)
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 2 {
		if _, err := client.EmptyCall(ctx, &testpb.Empty{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	_, err = client.EmptyCall(ctx, &testpb.Empty{})
	if status.Code(err) != codes.Unavailable || status.Convert(err).Message() != "local_rate_limited" {
		t.Fatalf("over the limit: %v", err)
	}
}

// The network local rate limit closes connections over its budget before
// any byte reaches the connection manager.
func TestLocalRateLimitNetwork(t *testing.T) {
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	cfg := bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up)}.String()
	netFilter := `      - name: envoy.filters.network.local_ratelimit
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit
          stat_prefix: conns
          token_bucket: {max_tokens: 2, fill_interval: 3600s}
          runtime_enabled: {default_value: true, runtime_key: unused}
`
	cfg = strings.Replace(cfg, "    - filters:\n", "    - filters:\n"+netFilter, 1)
	p := startProxy(t, cfg)
	addr := p.addr["ingress"]
	// Each client has its own connection: no reuse across them.
	for i := range 2 {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("connection %d: %d", i, resp.StatusCode)
		}
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	must(t, err)
	defer conn.Close()
	must(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	b, err := io.ReadAll(conn)
	if len(b) != 0 || (err != nil && !isReset(err)) {
		t.Fatalf("third connection got %q, %v; want it closed", b, err)
	}
	waitFor(t, 5*time.Second, "the rate_limited counter", func() bool {
		return filterCounter(t, p, "ingress", "local_rate_limit.conns.rate_limited") == 1
	})
}

// isReset reports a connection reset by the peer (a closed connection with
// unread data may end that way instead of with EOF).
func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}
