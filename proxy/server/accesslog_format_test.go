package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/bootstrap"
)

// formatLogs renders two access logs: a json_format to jsonPath and a
// text format to textPath.
func formatLogs(jsonPath, textPath string) string {
	return fmt.Sprintf(`          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: %q
              log_format:
                json_format:
                  status: "%%RESPONSE_CODE%%"
                  flags: "%%RESPONSE_FLAGS%%"
                  duration: "%%DURATION%%"
                  upstream: "%%UPSTREAM_HOST%%"
                  cluster: "%%UPSTREAM_CLUSTER%%"
                  ua: "%%REQ(USER-AGENT)%%"
                  backend: "%%RESP(X-BACKEND)%%"
                  trailer: "%%TRAILER(X-TRAIL)%%"
                  attempts: "%%UPSTREAM_REQUEST_ATTEMPT_COUNT%%"
                  request: "%%REQ(:METHOD)%% %%REQ(:PATH)%%"
                  route: "%%ROUTE_NAME%%"
                  client: "%%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%%"
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: %q
              log_format:
                text_format_source:
                  inline_string: "[%%START_TIME(%%Y-%%m-%%dT%%H:%%M:%%S.%%3fZ)%%] \"%%REQ(:METHOD)%% %%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%% %%PROTOCOL%%\" %%RESPONSE_CODE%% %%RESPONSE_FLAGS%% %%BYTES_RECEIVED%% %%BYTES_SENT%% %%DURATION%% \"%%REQ(X-REQUEST-ID)%%\" \"%%UPSTREAM_HOST%%\" 100%%%%\n"
`, jsonPath, textPath)
}

func TestAccessLogFormats(t *testing.T) {
	up := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", "b1")
		w.Header().Set("Trailer", "X-Trail")
		_, _ = io.WriteString(w, "hello")
		w.Header().Set("X-Trail", "t1")
	}))
	dead := freeAddr(t)
	dir := t.TempDir()
	jsonPath, textPath := filepath.Join(dir, "json.log"), filepath.Join(dir, "text.log")
	vhosts := `              - name: all
                domains: ["*"]
                routes:
                - name: to-dead
                  match: {prefix: "/dead"}
                  route: {cluster: dead}
                - name: to-app
                  match: {prefix: "/"}
                  route: {cluster: app}
`
	p := startProxy(t, bs{
		HCMExtra:     formatLogs(jsonPath, textPath),
		VirtualHosts: vhosts,
		Clusters:     staticCluster("app", "", up) + staticCluster("dead", "", dead),
	}.String())

	req := mustReq(t, "GET", "http://"+p.addr["ingress"]+"/ok?x=1")
	req.Header.Set("User-Agent", "fmt-test")
	req.Header.Set("X-Request-Id", "rid-7")
	resp, err := h1Client().Do(req)
	must(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	resp, err = h1Client().Get("http://" + p.addr["ingress"] + "/dead")
	must(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("dead upstream: status %d", resp.StatusCode)
	}
	p.stop(t)

	b, err := os.ReadFile(jsonPath)
	must(t, err)
	jl := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(jl) != 2 {
		t.Fatalf("json log: %d lines, want 2:\n%s", len(jl), b)
	}
	var ok, failed map[string]any
	must(t, json.Unmarshal([]byte(jl[0]), &ok))
	must(t, json.Unmarshal([]byte(jl[1]), &failed))
	for k, want := range map[string]any{
		"status": float64(200), "flags": nil, "upstream": up, "cluster": "app", "ua": "fmt-test",
		"backend": "b1", "trailer": "t1", "attempts": float64(1), "request": "GET /ok?x=1", "route": "to-app", "client": "127.0.0.1",
	} {
		if ok[k] != want {
			t.Errorf("ok line: %s = %#v, want %#v", k, ok[k], want)
		}
	}
	if _, isNum := ok["duration"].(float64); !isNum {
		t.Errorf("duration = %#v, want a number", ok["duration"])
	}
	for k, want := range map[string]any{
		"status": float64(503), "flags": "UF", "upstream": dead, "cluster": "dead", "backend": nil, "route": "to-dead", "request": "GET /dead",
	} {
		if failed[k] != want {
			t.Errorf("503 line: %s = %#v, want %#v", k, failed[k], want)
		}
	}
	// The JSON keys are sorted, as Envoy writes them.
	if !strings.HasPrefix(jl[0], `{"attempts":1,"backend":"b1","client":"127.0.0.1","cluster":"app","duration":`) {
		t.Errorf("json line key order: %s", jl[0])
	}

	b, err = os.ReadFile(textPath)
	must(t, err)
	re := regexp.MustCompile(`^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "GET /ok\?x=1 HTTP/1\.1" 200 - 0 5 \d+ "rid-7" "` + regexp.QuoteMeta(up) + `" 100%\n` +
		`\[[^]]+\] "GET /dead HTTP/1\.1" 503 UF 0 \d+ \d+ "[0-9a-f-]{36}" "` + regexp.QuoteMeta(dead) + `" 100%\n$`)
	if !re.Match(b) {
		t.Errorf("text log:\n%s", b)
	}
}

// TestTCPProxyAccessLogFormat: a tcp_proxy's access log takes a
// log_format too; HTTP-only commands print "-".
func TestTCPProxyAccessLogFormat(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "tcp.log")
	extra := fmt.Sprintf(`          access_log:
          - name: envoy.access_loggers.file
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog
              path: %q
              log_format:
                text_format: "%%UPSTREAM_CLUSTER%% %%BYTES_RECEIVED%% %%BYTES_SENT%% %%RESPONSE_FLAGS%% %%REQ(:PATH)%%\n"
`, logPath)
	p := startProxy(t, tcpBootstrap("", staticCluster("echo", "", echoServer(t, "")), tcpChain("echo", "", "", extra)))
	c := dialTCP(t, p.addr["tcp"])
	_, _ = io.WriteString(c, "hello")
	if got := readString(t, c, 5); got != "hello" {
		t.Fatalf("echo %q", got)
	}
	_ = c.Close()
	waitFor(t, 5*time.Second, "the connection to end", func() bool {
		return p.srv.TCPProxyStats()["echo"]["downstream_cx_active"] == 0
	})
	p.stop(t)
	b, err := os.ReadFile(logPath)
	must(t, err)
	if string(b) != "echo 5 5 - -\n" {
		t.Errorf("tcp access log %q", b)
	}
}

// TestAccessLogFormatRejected: a bad format fails the bootstrap with the
// field's path and the command's name.
func TestAccessLogFormatRejected(t *testing.T) {
	hcmExtra := `          access_log:
          - name: envoy.access_loggers.stdout
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog
              log_format:
                text_format_source: {inline_string: "%DOWNSTREAM_LOCAL_ADDRESS%"}
`
	_, err := bootstrap.Load("", bs{HCMExtra: hcmExtra, VirtualHosts: vhostAll("app", ""), Clusters: staticCluster("app", "", "127.0.0.1:9")}.String())
	if err == nil || !strings.Contains(err.Error(), "access_log[0].typed_config.log_format.text_format_source") ||
		!strings.Contains(err.Error(), "%DOWNSTREAM_LOCAL_ADDRESS% is not supported") {
		t.Errorf("bootstrap.Load: %v", err)
	}
}
