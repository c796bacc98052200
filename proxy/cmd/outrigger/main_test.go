package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"github.com/outrigger-mesh/outrigger/internal/freeport"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const goodYAML = `
admin:
  address:
    socket_address: {address: 127.0.0.1, port_value: %d}
static_resources:
  listeners:
  - name: ingress
    address:
      socket_address: {address: 127.0.0.1, port_value: %d}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
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
                route: {cluster: app}
  clusters:
  - name: app
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: app
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {address: 127.0.0.1, port_value: %d}
`

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateMode(t *testing.T) {
	good := fmt.Sprintf(goodYAML, 9901, 10000, 8080)
	maglev := strings.Replace(good, "    type: STATIC\n", "    type: STATIC\n    lb_policy: LOAD_BALANCING_POLICY_CONFIG\n", 1)
	unknownFilter := strings.Replace(good, "envoy.extensions.filters.http.router.v3.Router", "envoy.extensions.filters.http.fault.v3.HTTPFault", 1)
	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		wantOut string
	}{
		{"good file", []string{"-c", writeFile(t, "good.yaml", good), "--mode", "validate"}, 0, "OK"},
		{"good inline", []string{"--config-yaml", good, "--mode", "validate"}, 0, "OK"},
		{"good json", []string{"--config-path", writeFile(t, "good.json", `{"static_resources":{}}`), "--mode", "validate"}, 0, "OK"},
		{"unsupported enum", []string{"-c", writeFile(t, "m.yaml", maglev), "--mode", "validate"}, 1, "static_resources.clusters[0].lb_policy: LOAD_BALANCING_POLICY_CONFIG is not supported yet"},
		{"unsupported filter", []string{"-c", writeFile(t, "f.yaml", unknownFilter), "--mode", "validate"}, 1, "http_filters[0]"},
		{"missing file", []string{"-c", "/nonexistent.yaml", "--mode", "validate"}, 1, "nonexistent.yaml"},
		{"bad yaml", []string{"-c", writeFile(t, "b.yaml", "static_resources: [unclosed"), "--mode", "validate"}, 1, "b.yaml"},
		{"unknown field", []string{"--config-yaml", "static_resources: {listenerz: []}", "--mode", "validate"}, 1, "listenerz"},
		{"no config", []string{"--mode", "validate"}, 1, "no configuration"},
		{"dynamic resources", []string{"--config-yaml", "dynamic_resources: {ads_config: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: xds}}]}, cds_config: {ads: {}, resource_api_version: V3}}\nstatic_resources: {clusters: [{name: xds, type: STATIC, load_assignment: {cluster_name: xds, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 18000}}}}]}]}}]}", "--mode", "validate"}, 0, "OK"},
		{"ads cluster missing", []string{"--config-yaml", "dynamic_resources: {ads_config: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: nope}}]}, cds_config: {ads: {}, resource_api_version: V3}}", "--mode", "validate"}, 1, `cluster "nope" is not defined`},
		{"bad mode", []string{"-c", "x", "--mode", "check"}, 1, "--mode"},
		// validate refuses a non-loopback admin address as serve does,
		// unless the flag allows it.
		{"admin on every interface", []string{"-c", writeFile(t, "a.yaml", strings.Replace(good, "address: 127.0.0.1, port_value: 9901", "address: 0.0.0.0, port_value: 9901", 1)), "--mode", "validate"}, 1,
			`admin.address: address "0.0.0.0:9901" binds every interface`},
		{"admin on every interface, allowed", []string{"-c", writeFile(t, "a2.yaml", strings.Replace(good, "address: 127.0.0.1, port_value: 9901", "address: 0.0.0.0, port_value: 9901", 1)), "--admin-allow-non-loopback", "--mode", "validate"}, 0, "OK"},
		{"version", []string{"--version"}, 0, "outrigger"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			all := out.String() + errb.String()
			if code != tc.code {
				t.Fatalf("exit %d, want %d; output:\n%s", code, tc.code, all)
			}
			if !strings.Contains(all, tc.wantOut) {
				t.Errorf("output %q does not mention %q", all, tc.wantOut)
			}
		})
	}
}

func TestPprofRefusesNonLoopback(t *testing.T) {
	cfg := writeFile(t, "b.yaml", fmt.Sprintf(goodYAML, freePort(t), freePort(t), 8080))
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"-c", cfg, "--pprof-address", "0.0.0.0:0"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "pprof") {
		t.Errorf("exit %d, stderr %q: want a refusal naming pprof", code, errb.String())
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Port() // below the ephemeral range
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBinaryServesAndDrainsOnSIGTERM builds the real binary, serves a
// request through it, then sends SIGTERM during a slow request: the request
// completes and the process exits 0.
func TestBinaryServesAndDrainsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "outrigger")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	arrived := make(chan struct{}, 1)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			time.Sleep(500 * time.Millisecond)
		}
		io.WriteString(w, "hi from upstream")
	})}
	go srv.Serve(up)
	t.Cleanup(func() { srv.Close() })

	adminPort, port, pprofPort := freePort(t), freePort(t), freePort(t)
	cfg := writeFile(t, "b.yaml", fmt.Sprintf(goodYAML, adminPort, port, up.Addr().(*net.TCPAddr).Port))
	cmd := exec.Command(bin, "-c", cfg, "--drain-time-s", "5", "--log-format", "json")
	cmd.Env = append(os.Environ(), fmt.Sprintf("OUTRIGGER_PPROF=127.0.0.1:%d", pprofPort))
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 1)
	go func() {
		var sb strings.Builder
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			sb.WriteString(sc.Text() + "\n")
		}
		logs <- sb.String()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	ready := fmt.Sprintf("http://127.0.0.1:%d/ready", adminPort)
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/", pprofPort)); err != nil || resp.StatusCode != 200 {
		t.Errorf("pprof via OUTRIGGER_PPROF: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "hi from upstream" {
		t.Fatalf("got %q", body)
	}

	slow := make(chan error, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "hi from upstream" {
				err = fmt.Errorf("slow body %q", b)
			}
		}
		slow <- err
	}()
	select { // SIGTERM only once the slow request is in flight upstream
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("slow request never reached the upstream")
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-slow; err != nil {
		t.Errorf("in-flight request during drain: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v\n%s", err, <-logs)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM")
	}
}

// TestBusyPortFailsAtStart: a port already taken stops the start with a
// message naming the address, for a listener and for the admin API alike.
func TestBusyPortFailsAtStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := taken.Addr().(*net.TCPAddr).Port
	for name, cfg := range map[string]string{
		"listener": fmt.Sprintf(goodYAML, freePort(t), busy, 8080),
		"admin":    fmt.Sprintf(goodYAML, busy, freePort(t), 8080),
	} {
		t.Run(name, func(t *testing.T) {
			var out, errb bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			code := run(ctx, []string{"-c", writeFile(t, "b.yaml", cfg)}, &out, &errb)
			if code != 1 || !strings.Contains(errb.String(), fmt.Sprintf("127.0.0.1:%d", busy)) {
				t.Errorf("exit %d, stderr %q: want 1 and the busy address", code, errb.String())
			}
		})
	}
}
