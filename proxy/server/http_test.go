package server_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/common/expfmt"
)

// echo answers with what it saw, as JSON.
func echo(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		hdr := map[string]string{}
		for k, v := range r.Header {
			hdr[strings.ToLower(k)] = strings.Join(v, ",")
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "must-not-pass")
		w.Header().Set("Keep-Alive", "timeout=5")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"backend": name, "method": r.Method, "path": r.URL.RequestURI(), "host": r.Host,
			"proto": r.Proto, "headers": hdr, "body": string(body),
		})
	})
}

type echoed struct {
	Backend, Method, Path, Host, Proto, Body string
	Headers                                  map[string]string
}

func getJSON(t *testing.T, c *http.Client, req *http.Request) (*http.Response, echoed) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var e echoed
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &e); err != nil {
			t.Fatalf("body %q: %v", body, err)
		}
	}
	return resp, e
}

func TestHTTP1ForwardingAndHeaders(t *testing.T) {
	up := backend(t, echo("a"))
	p := startProxy(t, bs{
		HCMExtra:     "          use_remote_address: true\n",
		VirtualHosts: vhostAll("app", ""),
		Clusters:     staticCluster("app", "", up),
	}.String())
	c := h1Client()
	req, _ := http.NewRequest("POST", "http://"+p.addr["ingress"]+"/a/b?x=1&y=2", strings.NewReader("hello"))
	req.Header.Set("X-Custom", "v")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("Connection", "X-Drop, keep-alive")
	req.Header.Set("X-Drop", "secret")
	req.Header.Set("X-Request-Id", "client-supplied")
	resp, e := getJSON(t, c, req)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if e.Path != "/a/b?x=1&y=2" || e.Method != "POST" || e.Body != "hello" {
		t.Errorf("upstream saw %+v", e)
	}
	if e.Headers["x-custom"] != "v" {
		t.Errorf("x-custom lost: %v", e.Headers)
	}
	if _, ok := e.Headers["x-drop"]; ok {
		t.Errorf("header named in Connection was forwarded")
	}
	if got := e.Headers["x-forwarded-for"]; got != "203.0.113.9, 127.0.0.1" {
		t.Errorf("x-forwarded-for = %q", got)
	}
	if got := e.Headers["x-forwarded-proto"]; got != "http" {
		t.Errorf("x-forwarded-proto = %q", got)
	}
	if id := e.Headers["x-request-id"]; len(id) != 36 || id == "client-supplied" {
		t.Errorf("x-request-id at the edge should be regenerated, got %q", id)
	}
	if resp.Header.Get("X-Hop") != "" || resp.Header.Get("Keep-Alive") != "" {
		t.Errorf("hop-by-hop response headers passed: %v", resp.Header)
	}
	if resp.Header.Get("Server") != "outrigger" {
		t.Errorf("server header %q", resp.Header.Get("Server"))
	}
}

func TestRequestIDKeptWithoutRemoteAddress(t *testing.T) {
	up := backend(t, echo("a"))
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up)}.String())
	req, _ := http.NewRequest("GET", "http://"+p.addr["ingress"]+"/", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	req.Header.Set("X-Forwarded-For", "198.51.100.1")
	_, e := getJSON(t, h1Client(), req)
	if e.Headers["x-request-id"] != "abc-123" {
		t.Errorf("x-request-id = %q", e.Headers["x-request-id"])
	}
	if e.Headers["x-forwarded-for"] != "198.51.100.1" {
		t.Errorf("xff changed without use_remote_address: %q", e.Headers["x-forwarded-for"])
	}
	req, _ = http.NewRequest("GET", "http://"+p.addr["ingress"]+"/", nil)
	_, e = getJSON(t, h1Client(), req)
	if len(e.Headers["x-request-id"]) != 36 {
		t.Errorf("no request id generated: %q", e.Headers["x-request-id"])
	}
}

func TestH2CDownstreamAndUpstream(t *testing.T) {
	up := backend(t, echo("h2"))
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", h2cOptions, up)}.String())
	req, _ := http.NewRequest("GET", "http://"+p.addr["ingress"]+"/x", nil)
	resp, e := getJSON(t, h2cClient(), req)
	if resp.ProtoMajor != 2 {
		t.Errorf("downstream proto %s, want HTTP/2", resp.Proto)
	}
	if e.Proto != "HTTP/2.0" {
		t.Errorf("upstream saw %s, want HTTP/2.0", e.Proto)
	}
}

func TestTLSWithALPN(t *testing.T) {
	dir := t.TempDir()
	cert := makeCert(t, dir, "proxy.test", "proxy.test")
	up := backend(t, echo("tls"))
	transport := fmt.Sprintf(`      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates:
            - certificate_chain: {filename: %q}
              private_key: {filename: %q}
`, cert.certFile, cert.keyFile)
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up), Transport: transport}.String())
	for _, proto := range []string{"h2", "http/1.1"} {
		t.Run(proto, func(t *testing.T) {
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.pool, ServerName: "proxy.test", NextProtos: []string{proto}}}
			if proto == "h2" {
				tr.ForceAttemptHTTP2 = true
			}
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			req, _ := http.NewRequest("GET", "https://"+p.addr["ingress"]+"/t", nil)
			resp, e := getJSON(t, c, req)
			want := 1
			if proto == "h2" {
				want = 2
			}
			if resp.ProtoMajor != want {
				t.Errorf("negotiated %s, want major %d", resp.Proto, want)
			}
			if e.Headers["x-forwarded-proto"] != "https" {
				t.Errorf("x-forwarded-proto = %q", e.Headers["x-forwarded-proto"])
			}
		})
	}
}

func TestWeightedSplit(t *testing.T) {
	a := backend(t, echo("a"))
	b := backend(t, echo("b"))
	vh := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/"}
                  route:
                    weighted_clusters:
                      clusters:
                      - {name: a, weight: 80}
                      - {name: b, weight: 20}
`
	p := startProxy(t, bs{VirtualHosts: vh, Clusters: staticCluster("a", "", a) + staticCluster("b", "", b)}.String())
	c := h1Client()
	const n = 10000
	counts := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		work <- struct{}{}
	}
	close(work)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				resp, err := c.Get("http://" + p.addr["ingress"] + "/")
				if err != nil {
					t.Error(err)
					return
				}
				var e echoed
				_ = json.NewDecoder(resp.Body).Decode(&e)
				resp.Body.Close()
				mu.Lock()
				counts[e.Backend]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	share := float64(counts["a"]) / n
	if share < 0.75 || share > 0.85 {
		t.Errorf("cluster a got %.3f of requests, want 0.80±0.05 (%v)", share, counts)
	}
}

func TestRoundRobinAcrossEndpoints(t *testing.T) {
	a := backend(t, echo("a"))
	b := backend(t, echo("b"))
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", a+"@3", b+"@1")}.String())
	c := h1Client()
	counts := map[string]int{}
	for i := 0; i < 400; i++ {
		_, e := getJSON(t, c, mustReq(t, "GET", "http://"+p.addr["ingress"]+"/"))
		counts[e.Backend]++
	}
	if counts["a"] != 300 || counts["b"] != 100 {
		t.Errorf("weighted round robin 3:1 gave %v", counts)
	}
}

func mustReq(t *testing.T, method, url string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(method, url, nil)
	must(t, err)
	return r
}

func TestRoutingFeatures(t *testing.T) {
	up := backend(t, echo("a"))
	vh := `              - name: api
                domains: ["api.example.com", "api.example.com:*"]
                request_headers_to_add:
                - header: {key: x-vhost, value: api}
                routes:
                - match: {prefix: "/v1/"}
                  route: {cluster: app, prefix_rewrite: "/internal/"}
                - match:
                    safe_regex: {regex: "^/users/([0-9]+)$"}
                  route:
                    cluster: app
                    regex_rewrite:
                      pattern: {regex: "^/users/([0-9]+)$"}
                      substitution: "/u/\\1"
                - match:
                    prefix: "/h"
                    headers:
                    - name: x-canary
                      string_match: {exact: "yes"}
                  route: {cluster: app, host_rewrite_literal: canary.internal}
                  response_headers_to_add:
                  - header: {key: x-route, value: canary}
                - match: {path: "/status"}
                  direct_response:
                    status: 200
                    body: {inline_string: "ok"}
                - match: {prefix: "/old"}
                  redirect: {path_redirect: "/new", response_code: FOUND}
              - name: other
                domains: ["*"]
                routes:
                - match: {prefix: "/"}
                  route: {cluster: app}
`
	p := startProxy(t, bs{VirtualHosts: vh, Clusters: staticCluster("app", "", up)}.String())
	c := &http.Client{Transport: &http.Transport{}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://" + p.addr["ingress"]
	do := func(path, host string, hdr ...string) (*http.Response, echoed) {
		req := mustReq(t, "GET", base+path)
		req.Host = host
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return getJSON(t, c, req)
	}
	if _, e := do("/v1/items?q=1", "api.example.com"); e.Path != "/internal/items?q=1" || e.Headers["x-vhost"] != "api" {
		t.Errorf("prefix rewrite: %+v", e)
	}
	if _, e := do("/users/42", "api.example.com:8080"); e.Path != "/u/42" {
		t.Errorf("regex rewrite: path %q", e.Path)
	}
	if resp, e := do("/h", "api.example.com", "x-canary", "yes"); e.Host != "canary.internal" || resp.Header.Get("X-Route") != "canary" {
		t.Errorf("host rewrite: host %q, x-route %q", e.Host, resp.Header.Get("X-Route"))
	}
	if resp, _ := do("/h", "api.example.com"); resp.StatusCode != 404 {
		t.Errorf("header matcher miss should 404, got %d", resp.StatusCode)
	}
	resp, err := c.Do(func() *http.Request { r := mustReq(t, "GET", base+"/status"); r.Host = "api.example.com"; return r }())
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("direct response: %d %q", resp.StatusCode, body)
	}
	resp, _ = do("/old", "api.example.com")
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "http://api.example.com/new" {
		t.Errorf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, e := do("/anything", "other.example.com"); e.Backend != "a" || e.Headers["x-vhost"] != "" {
		t.Errorf("fallback vhost: %+v", e)
	}
}

func TestLocalErrors(t *testing.T) {
	dead := freeAddr(t) // nothing listens here
	slow := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	}))
	reset := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	}))
	vh := `              - name: all
                domains: ["*"]
                routes:
                - match: {prefix: "/dead"}
                  route: {cluster: dead}
                - match: {prefix: "/slow"}
                  route: {cluster: slow, timeout: 0.2s}
                - match: {prefix: "/reset"}
                  route: {cluster: reset}
`
	p := startProxy(t, bs{VirtualHosts: vh, Clusters: staticCluster("dead", "", dead) + staticCluster("slow", "", slow) + staticCluster("reset", "", reset)}.String())
	c := h1Client()
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/nowhere", 404},
		{"/dead", 503},
		{"/slow", 504},
		{"/reset", 502},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := c.Get("http://" + p.addr["ingress"] + tc.path)
			must(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	// Each failure is counted once, by kind, on its cluster.
	text := scrapeText(t, p)
	for _, want := range []string{
		`outrigger_upstream_rq_error_total{cluster="dead",kind="connect_failure"} 1`,
		`outrigger_upstream_rq_error_total{cluster="slow",kind="timeout"} 1`,
		`outrigger_upstream_rq_error_total{cluster="reset",kind="reset"} 1`,
		`outrigger_upstream_cx_connect_fail_total{cluster="dead"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, grepLines(text, "upstream_rq_error"))
		}
	}
}

// scrapeText renders the proxy's registry as the Prometheus text format.
func scrapeText(t *testing.T, p *proxy) string {
	t.Helper()
	mfs, err := p.srv.Metrics().Gatherer().Gather()
	must(t, err)
	var sb strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&sb, mf); err != nil {
			t.Fatal(err)
		}
	}
	return sb.String()
}

func TestHugeHeadersGet431(t *testing.T) {
	up := backend(t, echo("a"))
	p := startProxy(t, bs{
		HCMExtra:     "          max_request_headers_kb: 8\n",
		VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up),
	}.String())
	c := h1Client()
	req := mustReq(t, "GET", "http://"+p.addr["ingress"]+"/")
	req.Header.Set("X-Big", strings.Repeat("a", 16*1024))
	resp, err := c.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 431 {
		t.Errorf("16 KiB header with an 8 KiB limit: status %d, want 431", resp.StatusCode)
	}
	req = mustReq(t, "GET", "http://"+p.addr["ingress"]+"/")
	req.Header.Set("X-Small", strings.Repeat("a", 4*1024))
	resp, err = c.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("4 KiB header: status %d, want 200", resp.StatusCode)
	}
}

func TestSlowHeadersCutOff(t *testing.T) {
	up := backend(t, echo("a"))
	p := startProxy(t, bs{
		HCMExtra:     "          request_headers_timeout: 0.3s\n",
		VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up),
	}.String())
	conn, err := net.Dial("tcp", p.addr["ingress"])
	must(t, err)
	defer conn.Close()
	_, err = conn.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: "))
	must(t, err)
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn)
	if err != nil {
		t.Fatalf("connection not closed by the proxy: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("closed after %v, want about 0.3s", d)
	}
}

func TestSmugglingRefused(t *testing.T) {
	var hits atomic.Int32
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
	}))
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up)}.String())
	for _, raw := range []string{
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", p.addr["ingress"])
		must(t, err)
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Write([]byte(raw))
		must(t, err)
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		if resp.StatusCode != 400 && resp.StatusCode != 501 {
			t.Errorf("%q: status %d, want 400", raw, resp.StatusCode)
		}
		conn.Close()
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d smuggling attempts reached the upstream", n)
	}
}

func TestLargeBodyStreamedWithBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB transfer")
	}
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "%d", n)
	}))
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up)}.String())
	const size = 100 << 20
	body := io.LimitReader(zeroReader{}, size)
	req, _ := http.NewRequest("POST", "http://"+p.addr["ingress"]+"/upload", body)
	req.ContentLength = size
	var peak atomic.Uint64
	stop := make(chan struct{})
	go samplePeakHeap(&peak, stop)
	resp, err := h1Client().Do(req)
	close(stop)
	must(t, err)
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(got) != fmt.Sprint(size) {
		t.Fatalf("upstream received %s bytes, want %d", got, size)
	}
	// The whole test process (client, proxy, backend) shares the heap; a
	// buffered body would show as >100 MB.
	if pk := peak.Load(); pk > 48<<20 {
		t.Errorf("peak heap %d MiB while streaming 100 MiB", pk>>20)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestWebSocketEcho(t *testing.T) {
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := websocket.Upgrader{}
		c, err := u.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	}))
	p := startProxy(t, bs{
		HCMExtra:     "          upgrade_configs:\n          - upgrade_type: websocket\n",
		VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up),
	}.String())
	ws, resp, err := websocket.DefaultDialer.Dial("ws://"+p.addr["ingress"]+"/ws", nil)
	if err != nil {
		t.Fatalf("dial: %v (resp %v)", err, resp)
	}
	defer ws.Close()
	for i := 0; i < 50; i++ {
		msg := fmt.Sprintf("m%d", i)
		must(t, ws.WriteMessage(websocket.TextMessage, []byte(msg)))
		_, got, err := ws.ReadMessage()
		must(t, err)
		if string(got) != "echo:"+msg {
			t.Fatalf("got %q", got)
		}
	}
}

func TestWebSocketRefusedWithoutUpgradeConfig(t *testing.T) {
	up := backend(t, echo("a"))
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up)}.String())
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+p.addr["ingress"]+"/ws", nil)
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Errorf("want 403 for an upgrade not configured, got %v %v", resp, err)
	}
}

func TestExpectContinue(t *testing.T) {
	up := backend(t, echo("a"))
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up)}.String())
	conn, err := net.Dial("tcp", p.addr["ingress"])
	must(t, err)
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	_, err = conn.Write([]byte("POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"))
	must(t, err)
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	must(t, err)
	if !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("first line %q, want 100 Continue", line)
	}
	br.ReadString('\n') // blank line after 100
	_, err = conn.Write([]byte("hello"))
	must(t, err)
	resp, err := http.ReadResponse(br, nil)
	must(t, err)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"body":"hello"`)) {
		t.Errorf("after 100-continue: %d %s", resp.StatusCode, body)
	}
}

// TestFullDuplexEcho: the upstream streams its response while the request
// body is still arriving (a streaming echo). HTTP/1.1 on both sides.
func TestFullDuplexEcho(t *testing.T) {
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.EnableFullDuplex()
		w.WriteHeader(200)
		buf := make([]byte, 16<<10)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				_ = rc.Flush()
			}
			if err != nil {
				return
			}
		}
	}))
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up)}.String())
	c := h1Client()
	for i := 0; i < 20; i++ {
		const size = 1 << 20
		req, _ := http.NewRequest("POST", "http://"+p.addr["ingress"]+"/echo", io.LimitReader(zeroReader{}, size))
		req.ContentLength = size
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != size {
			t.Fatalf("request %d: echoed %d bytes, err %v", i, n, err)
		}
	}
}

// TestNoContentTypeInvented: a proxy relays headers; it must not sniff and
// add a Content-Type the upstream did not send.
func TestNoContentTypeInvented(t *testing.T) {
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = nil // the backend itself sends none
		io.WriteString(w, "<html><body>looks like html</body></html>")
	}))
	p := startProxy(t, bs{VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", up)}.String())
	for name, c := range map[string]*http.Client{"h1": h1Client(), "h2c": h2cClient()} {
		resp, err := c.Get("http://" + p.addr["ingress"] + "/")
		must(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if ct, ok := resp.Header["Content-Type"]; ok {
			t.Errorf("%s: proxy added Content-Type %q", name, ct)
		}
	}
}
