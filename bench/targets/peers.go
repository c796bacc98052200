package targets

import (
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The peers' settings follow ../shared/notes/tools.md: one worker or thread
// each (outrigger runs with GOMAXPROCS=1), keep-alive to the upstream, no
// access log, every socket on 127.0.0.1.

// StartNginx runs nginx with one worker. Plaintext `listen ... http2` takes
// only prior-knowledge h2c, so HTTP/1.1, h2c and gRPC get a port each.
func StartNginx(ctx context.Context, bin, dir string, up Upstream) (*Target, error) {
	d, err := mkdir(dir, "nginx")
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(d, "tmp")
	if err := os.MkdirAll(tmp, 0o777); err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	// MkdirAll applies the umask; the unprivileged worker writes here.
	if err := os.Chmod(tmp, 0o777); err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`# written by outrigger-bench
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 8192;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    keepalive_requests 1000000;
    client_max_body_size 0;
    http2_max_requests 1000000;
    upstream backend_http { server %[3]s; keepalive 64; keepalive_requests 1000000; }
    upstream backend_grpc { server %[4]s; keepalive 64; keepalive_requests 1000000; }
    server {
        listen 127.0.0.1:%[5]d;
        listen 127.0.0.1:%[6]d http2;
        location / {
            proxy_pass http://backend_http;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
        }
    }
    server {
        listen 127.0.0.1:%[7]d http2;
        location / { grpc_pass grpc://backend_grpc; }
    }
}
`, d, tmp, up.HTTP, up.GRPC, ports[0], ports[1], ports[2])
	confPath := filepath.Join(d, "nginx.conf")
	if err := writeFile(confPath, conf); err != nil {
		return nil, err
	}
	argv := []string{bin, "-p", d, "-e", filepath.Join(d, "error.log"), "-c", confPath}
	ep := Endpoints{HTTP1: loopback(ports[0]), H2C: loopback(ports[1]), GRPC: loopback(ports[2])}
	p, err := startReady(ctx, "nginx", argv, nil, d, []string{ep.HTTP1, ep.H2C, ep.GRPC})
	if err != nil {
		return nil, err
	}
	return &Target{
		Name: "nginx", Endpoints: ep, Procs: []*Process{p}, Version: version(bin, "-v"),
		Config: "`worker_processes 1`; upstream `keepalive 64`, `keepalive_requests 1000000`; " +
			"`proxy_http_version 1.1`, `proxy_set_header Connection \"\"`; `proxy_buffering off`, " +
			"`proxy_request_buffering off` (stream like the others); `access_log off`; " +
			"h2c on its own `listen ... http2` port (h1 upstream); gRPC via `grpc_pass` with keepalive 64",
	}, nil
}

// StartHAProxy runs HAProxy with one thread in the foreground.
func StartHAProxy(ctx context.Context, bin, dir string, up Upstream) (*Target, error) {
	d, err := mkdir(dir, "haproxy")
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`# written by outrigger-bench
global
    nbthread 1
    # 10000 would need more than this machine's 20000 open files.
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend fe_http
    bind 127.0.0.1:%[1]d
    bind 127.0.0.1:%[2]d proto h2
    default_backend be_http
frontend fe_grpc
    bind 127.0.0.1:%[3]d proto h2
    default_backend be_grpc
backend be_http
    server backend %[4]s
backend be_grpc
    server backend %[5]s proto h2
`, ports[0], ports[1], ports[2], up.HTTP, up.GRPC)
	var tcpPort int
	if up.TCP != "" {
		ps, err := FreePorts(1)
		if err != nil {
			return nil, err
		}
		tcpPort = ps[0]
		conf += fmt.Sprintf(`listen tcp_bulk
    mode tcp
    option splice-auto
    bind 127.0.0.1:%d
    server backend %s
`, tcpPort, up.TCP)
	}
	confPath := filepath.Join(d, "haproxy.cfg")
	if err := writeFile(confPath, conf); err != nil {
		return nil, err
	}
	argv := []string{bin, "-f", confPath, "-db"}
	ep := Endpoints{HTTP1: loopback(ports[0]), H2C: loopback(ports[1]), GRPC: loopback(ports[2])}
	wait := []string{ep.HTTP1, ep.H2C, ep.GRPC}
	cfg := "`nbthread 1`, `maxconn 4096`, `http-reuse always`, no logging; h2c via `bind ... proto h2` " +
		"(h1 upstream); gRPC via `server ... proto h2`"
	if tcpPort > 0 {
		ep.TCP = loopback(tcpPort)
		wait = append(wait, ep.TCP)
		cfg += "; bulk TCP via `listen` with `mode tcp`, `option splice-auto`"
	}
	p, err := startReady(ctx, "haproxy", argv, nil, d, wait)
	if err != nil {
		return nil, err
	}
	return &Target{
		Name: "haproxy", Endpoints: ep, Procs: []*Process{p}, Version: version(bin, "-v"), Config: cfg,
	}, nil
}

// StartCaddy runs Caddy with GOMAXPROCS=1, admin and automatic HTTPS off.
func StartCaddy(ctx context.Context, bin, dir string, up Upstream) (*Target, error) {
	d, err := mkdir(dir, "caddy")
	if err != nil {
		return nil, err
	}
	ports, err := FreePorts(2)
	if err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`# written by outrigger-bench
{
	admin off
	auto_https off
	persist_config off
	servers {
		protocols h1 h2c
	}
}
http://127.0.0.1:%[1]d {
	bind 127.0.0.1
	reverse_proxy %[3]s {
		transport http {
			keepalive_idle_conns_per_host 64
		}
	}
}
http://127.0.0.1:%[2]d {
	bind 127.0.0.1
	reverse_proxy h2c://%[4]s
}
`, ports[0], ports[1], up.HTTP, up.GRPC)
	var h3Port int
	if up.CertFile != "" {
		ps, err := FreePorts(1)
		if err != nil {
			return nil, err
		}
		// Caddy serves HTTP/3 on the UDP port of the same number as the
		// HTTPS site's TCP port; one free TCP port is usually free in UDP too.
		h3Port = ps[0]
		conf += fmt.Sprintf(`https://127.0.0.1:%[1]d {
	bind 127.0.0.1
	tls %[2]q %[3]q
	reverse_proxy %[4]s {
		transport http {
			keepalive_idle_conns_per_host 64
		}
	}
}
`, h3Port, up.CertFile, up.KeyFile, up.HTTP)
		conf = strings.Replace(conf, "protocols h1 h2c", "protocols h1 h2 h2c h3", 1)
	}
	confPath := filepath.Join(d, "Caddyfile")
	if err := writeFile(confPath, conf); err != nil {
		return nil, err
	}
	argv := []string{bin, "run", "--config", confPath, "--adapter", "caddyfile"}
	// Caddy keeps state under XDG dirs; keep it in the temp dir.
	env := []string{"GOMAXPROCS=1", "XDG_DATA_HOME=" + d, "XDG_CONFIG_HOME=" + d}
	ep := Endpoints{HTTP1: loopback(ports[0]), H2C: loopback(ports[0]), GRPC: loopback(ports[1])}
	wait := []string{ep.HTTP1, ep.GRPC}
	cfg := "`GOMAXPROCS=1`; `admin off`, `auto_https off`, `servers { protocols h1 h2c }`, `bind 127.0.0.1`; " +
		"`reverse_proxy` with `keepalive_idle_conns_per_host 64`; gRPC via `reverse_proxy h2c://...`"
	if h3Port > 0 {
		ep.H3 = loopback(h3Port)
		wait = append(wait, ep.H3) // the HTTPS site's TCP side: h3 listens on the same port in UDP
		cfg = strings.Replace(cfg, "protocols h1 h2c", "protocols h1 h2 h2c h3", 1) +
			"; HTTP/3 on an `https://` site with `tls CERT KEY` (the bench certificate), `reverse_proxy` to the HTTP/1.1 backend with the same keep-alive"
	}
	p, err := startReady(ctx, "caddy", argv, env, d, wait)
	if err != nil {
		return nil, err
	}
	return &Target{
		Name: "caddy", Endpoints: ep, Procs: []*Process{p}, Version: goVersion(bin, "github.com/caddyserver/caddy/v2"),
		Config: cfg,
	}, nil
}

// goVersion reads a Go binary's module version from its build info (a
// `go install`ed caddy prints "unknown" to `caddy version`).
func goVersion(bin, module string) string {
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		return ""
	}
	if bi.Main.Path == module && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return module + " " + bi.Main.Version + " (" + bi.GoVersion + ")"
	}
	for _, d := range bi.Deps {
		if d.Path == module {
			return module + " " + d.Version + " (" + bi.GoVersion + ")"
		}
	}
	return bi.Main.Path + " (" + bi.GoVersion + ")"
}

// version runs `bin args` and returns its first line (nginx and HAProxy
// print to stderr).
func version(bin string, args ...string) string {
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
