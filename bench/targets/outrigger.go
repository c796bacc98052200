package targets

import (
	"context"
	"fmt"
	"strings"
	"text/template"
)

// outriggerBootstrap is an Envoy v3 bootstrap for one hop: one listener
// (codec AUTO, so HTTP/1.1 and h2c share the port), gRPC routed to an h2c
// cluster, everything else to an HTTP/1.1 cluster. No access log, as for
// the peers.
var outriggerBootstrap = template.Must(template.New("bootstrap").Parse(`# written by outrigger-bench
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: {{.AdminPort}} }
static_resources:
  listeners:
  - name: bench
    address:
      socket_address: { address: 127.0.0.1, port_value: {{.ListenPort}} }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          codec_type: AUTO
          route_config:
            name: bench
            virtual_hosts:
            - name: bench
              domains: ["*"]
              routes:
              - match: { prefix: "/grpc.testing.TestService/", grpc: {} }
                route: { cluster: grpc_upstream, timeout: 0s }
              - match: { prefix: "/" }
                route: { cluster: http_upstream }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: http_upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: http_upstream
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: {{.HTTPHost}}, port_value: {{.HTTPPort}} } } }
  - name: grpc_upstream
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
    load_assignment:
      cluster_name: grpc_upstream
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: {{.GRPCHost}}, port_value: {{.GRPCPort}} } } }
`))

type bootstrapParams struct {
	AdminPort, ListenPort int
	HTTPHost, GRPCHost    string
	HTTPPort, GRPCPort    string
}

// OutriggerBootstrap renders the bench bootstrap for one hop.
func OutriggerBootstrap(adminPort, listenPort int, up Upstream) (string, error) {
	hh, hp, err := splitHostPort(up.HTTP)
	if err != nil {
		return "", err
	}
	gh, gp, err := splitHostPort(up.GRPC)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	err = outriggerBootstrap.Execute(&b, bootstrapParams{
		AdminPort: adminPort, ListenPort: listenPort,
		HTTPHost: hh, HTTPPort: hp, GRPCHost: gh, GRPCPort: gp,
	})
	if err != nil {
		return "", fmt.Errorf("targets: render bootstrap: %w", err)
	}
	return b.String(), nil
}

// OutriggerOptions say how to run outrigger.
type OutriggerOptions struct {
	Binary string
	// Hops is 1 (client -> outrigger -> backend) or 2 (client -> outrigger
	// -> outrigger -> backend, the sidecar-to-sidecar path).
	Hops int
	// PprofAddr, when set on the first hop, is passed as OUTRIGGER_PPROF so
	// the proxy serves net/http/pprof there (the hook the bench asks of the
	// binary).
	PprofAddr string
}

// StartOutrigger runs one or two outrigger processes with GOMAXPROCS=1 each.
func StartOutrigger(ctx context.Context, dir string, up Upstream, o OutriggerOptions) (*Target, error) {
	if o.Hops != 1 && o.Hops != 2 {
		return nil, fmt.Errorf("targets: outrigger hops must be 1 or 2, got %d", o.Hops)
	}
	name := "outrigger"
	if o.Hops == 2 {
		name = "outrigger-2hop"
	}
	d, err := mkdir(dir, name)
	if err != nil {
		return nil, err
	}
	t := &Target{Name: name}
	next := up
	// Start from the hop nearest the backend so each hop's upstream is up.
	for hop := o.Hops; hop >= 1; hop-- {
		ports, err := FreePorts(2)
		if err != nil {
			t.Close()
			return nil, err
		}
		conf, err := OutriggerBootstrap(ports[0], ports[1], next)
		if err != nil {
			t.Close()
			return nil, err
		}
		path := fmt.Sprintf("%s/hop%d.yaml", d, hop)
		if err := writeFile(path, conf); err != nil {
			t.Close()
			return nil, err
		}
		env := []string{"GOMAXPROCS=1"}
		if hop == 1 && o.PprofAddr != "" {
			env = append(env, "OUTRIGGER_PPROF="+o.PprofAddr)
		}
		// A short drain keeps stopping the bench quick; nothing is in flight then.
		argv := []string{o.Binary, "-c", path, "--log-level", "warn", "--drain-time-s", "1"}
		p, err := startReady(ctx, fmt.Sprintf("%s-hop%d", name, hop), argv, env, d, []string{loopback(ports[1])})
		if err != nil {
			t.Close()
			return nil, err
		}
		// Procs stay ordered front first.
		t.Procs = append([]*Process{p}, t.Procs...)
		addr := loopback(ports[1])
		next = Upstream{HTTP: addr, GRPC: addr}
	}
	t.Endpoints = Endpoints{HTTP1: next.HTTP, H2C: next.HTTP, GRPC: next.GRPC}
	t.Version = version(o.Binary, "--version")
	t.Config = "GOMAXPROCS=1 per process; Envoy v3 bootstrap: listener with http_connection_manager (codec AUTO: HTTP/1.1 and h2c on one port) + router; STATIC clusters, HTTP/1.1 upstream for HTTP, `explicit_http_config.http2_protocol_options` (h2c) upstream for gRPC; no access log"
	if o.Hops == 2 {
		t.Config = "two outrigger processes in series (client sidecar -> server sidecar, plaintext until the mesh has mTLS), each: " + t.Config
	}
	return t, nil
}

func splitHostPort(addr string) (host, port string, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i <= 0 || i == len(addr)-1 {
		return "", "", fmt.Errorf("targets: bad address %q", addr)
	}
	return addr[:i], addr[i+1:], nil
}
