package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// accessLogLines reads the JSON lines of an access-log file once the proxy
// has stopped (stop flushes it).
func accessLogLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("access log line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func fileAccessLog(path string) string {
	return fmt.Sprintf(`          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: %q
`, path)
}

func TestAccessLogLine(t *testing.T) {
	up := backend(t, echo("a"))
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, bs{HCMExtra: fileAccessLog(logPath), VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up)}.String())
	req := mustReq(t, "GET", "http://"+p.addr["ingress"]+"/logged?q=1")
	req.Header.Set("User-Agent", "outrigger-test")
	req.Header.Set("X-Request-Id", "rid-1")
	resp, err := h1Client().Do(req)
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, err = h1Client().Get("http://" + p.addr["ingress"] + "/")
	must(t, err)
	resp.Body.Close()
	p.stop(t)
	lines := accessLogLines(t, logPath)
	if len(lines) != 2 {
		t.Fatalf("%d access log lines, want 2", len(lines))
	}
	l := lines[0]
	for k, want := range map[string]any{
		"method": "GET", "path": "/logged?q=1", "protocol": "HTTP/1.1", "response_code": float64(200),
		"upstream_cluster": "app", "upstream_host": up, "x_request_id": "rid-1", "user_agent": "outrigger-test",
		"listener": "ingress", "response_flags": "-",
	} {
		if l[k] != want {
			t.Errorf("%s = %v, want %v", k, l[k], want)
		}
	}
	if bs, _ := l["bytes_sent"].(float64); bs <= 0 {
		t.Errorf("bytes_sent = %v", l["bytes_sent"])
	}
}

func TestAccessLogClientAddressFromTrustedXFF(t *testing.T) {
	up := backend(t, echo("a"))
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, bs{
		HCMExtra:     fileAccessLog(logPath) + "          xff_num_trusted_hops: 1\n",
		VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up),
	}.String())
	req := mustReq(t, "GET", "http://"+p.addr["ingress"]+"/")
	req.Header.Set("X-Forwarded-For", "198.51.100.7, 10.1.1.1")
	resp, err := h1Client().Do(req)
	must(t, err)
	resp.Body.Close()
	p.stop(t)
	lines := accessLogLines(t, logPath)
	if len(lines) != 1 || lines[0]["downstream_remote_address"] != "198.51.100.7" {
		t.Errorf("downstream_remote_address with one trusted hop: %v", lines)
	}
}

func TestClientGoneCancelsUpstreamAndLogs499(t *testing.T) {
	canceled := make(chan struct{})
	arrived := make(chan struct{})
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(10 * time.Second):
		}
	}))
	logPath := filepath.Join(t.TempDir(), "access.log")
	p := startProxy(t, bs{HCMExtra: fileAccessLog(logPath), VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up)}.String())
	conn, err := net.Dial("tcp", p.addr["ingress"])
	must(t, err)
	_, err = conn.Write([]byte("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"))
	must(t, err)
	<-arrived
	conn.Close()
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request not canceled after the client left")
	}
	// The log line is written once the handler returns; stopping flushes.
	waitFor(t, 5*time.Second, "handler finished", func() bool {
		return p.srv.Metrics() != nil && strings.Contains(gather(t, p), `code_class="4xx"`)
	})
	// The upstream side counts the cancellation when its attempt unwinds,
	// which may be a moment after the downstream side recorded the 499.
	const wantCanceled = `outrigger_upstream_rq_error_total{cluster="app",kind="canceled"} 1`
	deadline := time.Now().Add(5 * time.Second)
	text := scrapeText(t, p)
	for !strings.Contains(text, wantCanceled) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		text = scrapeText(t, p)
	}
	if !strings.Contains(text, wantCanceled) {
		t.Errorf("a client leaving is not counted as canceled:\n%s", grepLines(text, "upstream_rq_error"))
	}
	p.stop(t)
	lines := accessLogLines(t, logPath)
	if len(lines) != 1 || lines[0]["response_code"] != float64(499) || lines[0]["response_flags"] != "DC" {
		t.Errorf("access log %v, want one line with 499 DC", lines)
	}
}

func gather(t *testing.T, p *proxy) string {
	t.Helper()
	mfs, err := p.srv.Metrics().Gatherer().Gather()
	must(t, err)
	var sb strings.Builder
	for _, mf := range mfs {
		if mf.GetName() != "outrigger_downstream_rq_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				fmt.Fprintf(&sb, "%s=%q ", l.GetName(), l.GetValue())
			}
			fmt.Fprintf(&sb, "%v\n", m.GetCounter().GetValue())
		}
	}
	return sb.String()
}

func TestStreamIdleTimeout(t *testing.T) {
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stall-body" {
			io.WriteString(w, "partial")
			http.NewResponseController(w).Flush()
		}
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	p := startProxy(t, bs{
		HCMExtra:     "          stream_idle_timeout: 0.3s\n",
		VirtualHosts: vhostAll("app", "                    timeout: 0s\n"), Clusters: staticCluster("app", "", up),
	}.String())
	c := h1Client()
	start := time.Now()
	resp, err := c.Get("http://" + p.addr["ingress"] + "/stall-headers")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("idle before headers: status %d, want 408", resp.StatusCode)
	}
	resp, err = c.Get("http://" + p.addr["ingress"] + "/stall-body")
	must(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Errorf("idle mid-body: read %q without error, want the stream reset", body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("idle timeouts took %v", d)
	}
}

func TestUpstreamTLS(t *testing.T) {
	dir := t.TempDir()
	cert := makeCert(t, dir, "backend.test", "backend.test")
	other := makeCert(t, dir, "other.test", "other.test")
	ts := httptest.NewUnstartedServer(echo("tls-backend"))
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert.tls}}
	ts.StartTLS()
	t.Cleanup(ts.Close)
	up := strings.TrimPrefix(ts.URL, "https://")
	tlsCluster := func(ca string) string {
		return fmt.Sprintf(`    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: backend.test
        common_tls_context:
          validation_context:
            trusted_ca: {filename: %q}
`, ca)
	}
	vh := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/good"}
                  route: {cluster: good}
                - match: {prefix: "/bad"}
                  route: {cluster: bad}
`
	p := startProxy(t, bs{VirtualHosts: vh, Clusters: staticCluster("good", tlsCluster(cert.caFile), up) + staticCluster("bad", tlsCluster(other.caFile), up)}.String())
	resp, e := getJSON(t, h1Client(), mustReq(t, "GET", "http://"+p.addr["ingress"]+"/good"))
	if resp.StatusCode != 200 || e.Backend != "tls-backend" {
		t.Errorf("trusted upstream: %d %+v", resp.StatusCode, e)
	}
	resp, _ = getJSON(t, h1Client(), mustReq(t, "GET", "http://"+p.addr["ingress"]+"/bad"))
	if resp.StatusCode != 503 {
		t.Errorf("untrusted upstream certificate: status %d, want 503", resp.StatusCode)
	}
}

func TestSNIFilterChains(t *testing.T) {
	dir := t.TempDir()
	a := makeCert(t, dir, "a.test", "a.test")
	b := makeCert(t, dir, "b.test", "*.b.test")
	upA := backend(t, echo("A"))
	upB := backend(t, echo("B"))
	chain := func(cert *testCert, sni, cluster string) string {
		return fmt.Sprintf(`    - filter_chain_match:
        server_names: [%q]
      transport_socket:
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
          stat_prefix: %s
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
                route: {cluster: %s}
`, sni, cert.certFile, cert.keyFile, cluster, cluster)
	}
	yaml := `static_resources:
  listeners:
  - name: ingress
    address:
      socket_address: {address: 127.0.0.1, port_value: 0}
    filter_chains:
` + chain(a, "a.test", "ca") + chain(b, "*.b.test", "cb") + "  clusters:\n" + staticCluster("ca", "", upA) + staticCluster("cb", "", upB)
	p := startProxy(t, yaml)
	for _, tc := range []struct {
		sni, want string
		pool      *testCert
	}{
		{"a.test", "A", a},
		{"x.b.test", "B", b},
	} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: tc.pool.pool, ServerName: tc.sni}}}
		resp, e := getJSON(t, c, mustReq(t, "GET", "https://"+p.addr["ingress"]+"/"))
		if resp.StatusCode != 200 || e.Backend != tc.want {
			t.Errorf("SNI %s: %d from %q, want %s", tc.sni, resp.StatusCode, e.Backend, tc.want)
		}
	}
	// No chain for this name: the handshake fails.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: "nobody.test"}}}
	if _, err := c.Get("https://" + p.addr["ingress"] + "/"); err == nil {
		t.Errorf("a name no chain serves was accepted")
	}
}

func TestStrictDNSCluster(t *testing.T) {
	up := backend(t, echo("dns"))
	_, port := hostPort(t, up)
	cl := fmt.Sprintf(`  - name: app
    type: STRICT_DNS
    dns_lookup_family: V4_ONLY
    connect_timeout: 1s
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {address: localhost, port_value: %s}
`, port)
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: cl}.String())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.addr["ingress"]+"/", nil)
	resp, e := getJSON(t, h1Client(), req)
	if resp.StatusCode != 200 || e.Backend != "dns" {
		t.Errorf("STRICT_DNS localhost: %d %+v", resp.StatusCode, e)
	}
}

func TestRequestTimeout(t *testing.T) {
	up := backend(t, echo("a"))
	p := startProxy(t, bs{
		HCMExtra:     "          request_timeout: 0.3s\n",
		VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up),
	}.String())
	// A whole request in time is unaffected.
	resp, err := h1Client().Post("http://"+p.addr["ingress"]+"/", "text/plain", strings.NewReader("quick"))
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("prompt request: %d", resp.StatusCode)
	}
	// A body that never completes gets 408.
	conn, err := net.Dial("tcp", p.addr["ingress"])
	must(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Write([]byte("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"))
	must(t, err)
	start := time.Now()
	r, err := http.ReadResponse(bufio.NewReader(conn), nil)
	must(t, err)
	if r.StatusCode != http.StatusRequestTimeout {
		t.Errorf("stalled body: status %d, want 408", r.StatusCode)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("408 after %v", d)
	}
}
