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
{{- template "downstreamTLS" .TLS.Inbound}}
{{- if .H3Port}}
  - name: bench_h3
    address:
      socket_address: { address: 127.0.0.1, port_value: {{.H3Port}}, protocol: UDP }
    udp_listener_config:
      quic_options: {}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.quic
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.quic.v3.QuicDownstreamTransport
          downstream_tls_context:
            common_tls_context:
              tls_certificates:
              - certificate_chain: { filename: "{{.CertFile}}" }
                private_key: { filename: "{{.KeyFile}}" }
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench_h3
          codec_type: HTTP3
          route_config:
            name: bench_h3
            virtual_hosts:
            - name: bench_h3
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: http_upstream }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
{{- end}}
{{- if .TCPPort}}
  - name: bench_tcp
    address:
      socket_address: { address: 127.0.0.1, port_value: {{.TCPPort}} }
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: bench_tcp
          cluster: tcp_upstream
{{- end}}
  clusters:
{{- if .TCPPort}}
  - name: tcp_upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: tcp_upstream
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: {{.TCPHost}}, port_value: {{.TCPUpPort}} } } }
{{- end}}
  - name: http_upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: http_upstream
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: {{.HTTPHost}}, port_value: {{.HTTPPort}} } } }
{{- template "upstreamTLS" .TLS.Outbound}}
{{- template "h2Cluster" .GRPCCluster}}
{{- define "h2Cluster"}}
  - name: {{.Name}}
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http2_protocol_options: {}
    load_assignment:
      cluster_name: {{.Name}}
      endpoints:
      - lb_endpoints:
        - endpoint: { address: { socket_address: { address: {{.Host}}, port_value: {{.Port}} } } }
{{- template "upstreamTLS" .Outbound}}
{{- end}}
{{- define "upstreamTLS"}}{{with .}}
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: "{{.SNI}}"
        common_tls_context:
          tls_params: { tls_minimum_protocol_version: TLSv1_3 }
          tls_certificates:
          - certificate_chain: { filename: "{{.Leaf.CertFile}}" }
            private_key: { filename: "{{.Leaf.KeyFile}}" }
          validation_context:
            trusted_ca: { filename: "{{.CAFile}}" }
            match_typed_subject_alt_names:
            - san_type: URI
              matcher: { exact: "{{.PeerSpiffeID}}" }
{{- end}}{{end}}
{{- define "downstreamTLS"}}{{with .}}
      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          require_client_certificate: true
          common_tls_context:
            tls_params: { tls_minimum_protocol_version: TLSv1_3 }
            tls_certificates:
            - certificate_chain: { filename: "{{.Leaf.CertFile}}" }
              private_key: { filename: "{{.Leaf.KeyFile}}" }
            validation_context:
              trusted_ca: { filename: "{{.CAFile}}" }
{{- end}}{{end}}
`))

// HopTLS is the mutual TLS of one sidecar, in the shapes outrigger-cp
// serves (controlplane/translate/tls.go) but with the certificates as
// files instead of SDS secrets: the handshake is the same. A nil side is
// plaintext.
type HopTLS struct {
	// Inbound makes the listener require a client certificate chained to
	// CAFile (TLS 1.3 at least), presenting Leaf. Which SPIFFE ID may call
	// is RBAC's business in the mesh, so it is not matched here either.
	Inbound *MeshTLS
	// Outbound makes both clusters present Leaf, send SNI and accept only a
	// peer chained to CAFile with PeerSpiffeID as URI SAN (TLS 1.3 at
	// least).
	Outbound *MeshTLS
}

// MeshTLS is one side of a hop's mutual TLS.
type MeshTLS struct {
	CAFile string
	Leaf   MeshLeaf
	// PeerSpiffeID and SNI are used outbound only.
	PeerSpiffeID, SNI string
}

func (m *MeshTLS) check(side string, outbound bool) error {
	if m == nil {
		return nil
	}
	switch {
	case m.CAFile == "" || m.Leaf.CertFile == "" || m.Leaf.KeyFile == "":
		return fmt.Errorf("targets: %s TLS needs a CA file and a leaf certificate and key", side)
	case outbound && (m.PeerSpiffeID == "" || m.SNI == ""):
		return fmt.Errorf("targets: %s TLS needs the peer's SPIFFE ID and an SNI", side)
	}
	return nil
}

type bootstrapParams struct {
	AdminPort, ListenPort int
	HTTPHost, GRPCHost    string
	HTTPPort, GRPCPort    string
	// H3Port > 0 adds an HTTP/3 listener serving CertFile/KeyFile; TCPPort
	// > 0 adds a tcp_proxy listener to TCPHost:TCPUpPort.
	H3Port, TCPPort    int
	CertFile, KeyFile  string
	TCPHost, TCPUpPort string
	TLS                HopTLS
}

// h2Cluster is an HTTP/2 (h2c, or h2 over the mesh's TLS) STATIC cluster
// of one endpoint.
type h2Cluster struct {
	Name, Host, Port string
	Outbound         *MeshTLS
}

// GRPCCluster is the gRPC cluster of the bench bootstrap.
func (p bootstrapParams) GRPCCluster() h2Cluster {
	return h2Cluster{Name: "grpc_upstream", Host: p.GRPCHost, Port: p.GRPCPort, Outbound: p.TLS.Outbound}
}

// ExtraPorts are the optional listeners of a one-hop outrigger: HTTP/3 (UDP,
// needs the upstream's certificate) and tcp_proxy (needs the upstream's
// bulk source). Zero leaves a listener out.
type ExtraPorts struct {
	H3, TCP int
}

// OutriggerBootstrap renders the bench bootstrap for one hop.
func OutriggerBootstrap(adminPort, listenPort int, up Upstream) (string, error) {
	return OutriggerBootstrapExtra(adminPort, listenPort, ExtraPorts{}, up)
}

// OutriggerBootstrapExtra renders the bootstrap for one hop with the
// HTTP/3 and tcp_proxy listeners extra asks for.
func OutriggerBootstrapExtra(adminPort, listenPort int, extra ExtraPorts, up Upstream) (string, error) {
	return outriggerBootstrapFor(bootstrapParams{AdminPort: adminPort, ListenPort: listenPort}, extra, up)
}

// OutriggerBootstrapTLS renders the bootstrap for one sidecar of a hop
// secured with mutual TLS (tls's nil sides stay plaintext).
func OutriggerBootstrapTLS(adminPort, listenPort int, up Upstream, tls HopTLS) (string, error) {
	if err := tls.Inbound.check("inbound", false); err != nil {
		return "", err
	}
	if err := tls.Outbound.check("outbound", true); err != nil {
		return "", err
	}
	return outriggerBootstrapFor(bootstrapParams{AdminPort: adminPort, ListenPort: listenPort, TLS: tls}, ExtraPorts{}, up)
}

func outriggerBootstrapFor(p bootstrapParams, extra ExtraPorts, up Upstream) (string, error) {
	if extra.H3 > 0 {
		if up.CertFile == "" || up.KeyFile == "" {
			return "", fmt.Errorf("targets: an HTTP/3 listener on port %d needs the bench certificate", extra.H3)
		}
		p.H3Port, p.CertFile, p.KeyFile = extra.H3, up.CertFile, up.KeyFile
	}
	if extra.TCP > 0 {
		h, port, err := splitHostPort(up.TCP)
		if err != nil {
			return "", fmt.Errorf("targets: tcp_proxy upstream: %w", err)
		}
		p.TCPPort, p.TCPHost, p.TCPUpPort = extra.TCP, h, port
	}
	hh, hp, err := splitHostPort(up.HTTP)
	if err != nil {
		return "", err
	}
	gh, gp, err := splitHostPort(up.GRPC)
	if err != nil {
		return "", err
	}
	p.HTTPHost, p.HTTPPort, p.GRPCHost, p.GRPCPort = hh, hp, gh, gp
	var b strings.Builder
	err = outriggerBootstrap.Execute(&b, p)
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
	// MTLS secures the hop between two outriggers with mutual TLS (Hops
	// must be 2): the client sidecar presents its SPIFFE leaf and checks the
	// server's, the server sidecar requires a client certificate. The CA
	// and leaves are written into the target's directory.
	MTLS bool
	// PprofAddr, when set, is passed as OUTRIGGER_PPROF to hop PprofHop so
	// the proxy serves net/http/pprof there (the hook the bench asks of the
	// binary).
	PprofAddr string
	// PprofHop is the hop PprofAddr goes to: 1 (the default; the front, the
	// client sidecar) or 2 (the server sidecar).
	PprofHop int
}

// Names of the outrigger targets.
const (
	NameOutrigger         = "outrigger"
	NameOutrigger2Hop     = "outrigger-2hop"
	NameOutrigger2HopMTLS = "outrigger-2hop-mtls"
)

// StartOutrigger runs one or two outrigger processes with GOMAXPROCS=1 each.
func StartOutrigger(ctx context.Context, dir string, up Upstream, o OutriggerOptions) (*Target, error) {
	if o.Hops != 1 && o.Hops != 2 {
		return nil, fmt.Errorf("targets: outrigger hops must be 1 or 2, got %d", o.Hops)
	}
	if o.MTLS && o.Hops != 2 {
		return nil, fmt.Errorf("targets: mTLS is between two outriggers: hops must be 2, got %d", o.Hops)
	}
	pprofHop := o.PprofHop
	if pprofHop == 0 {
		pprofHop = 1
	}
	if pprofHop < 1 || pprofHop > o.Hops {
		return nil, fmt.Errorf("targets: pprof on hop %d of %d", o.PprofHop, o.Hops)
	}
	name := NameOutrigger
	switch {
	case o.MTLS:
		name = NameOutrigger2HopMTLS
	case o.Hops == 2:
		name = NameOutrigger2Hop
	}
	d, err := mkdir(dir, name)
	if err != nil {
		return nil, err
	}
	var certs *MeshCerts
	if o.MTLS {
		if certs, err = WriteMeshCerts(d); err != nil {
			return nil, err
		}
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
		var extra ExtraPorts
		if o.Hops == 1 {
			if extra, err = extraPorts(up); err != nil {
				t.Close()
				return nil, err
			}
		}
		var conf string
		if certs != nil {
			conf, err = OutriggerBootstrapTLS(ports[0], ports[1], next, meshHopTLS(certs, hop))
		} else {
			conf, err = OutriggerBootstrapExtra(ports[0], ports[1], extra, next)
		}
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
		if hop == pprofHop && o.PprofAddr != "" {
			env = append(env, "OUTRIGGER_PPROF="+o.PprofAddr)
		}
		// A short drain keeps stopping the bench quick; nothing is in flight then.
		argv := []string{o.Binary, "-c", path, "--log-level", "warn", "--drain-time-s", "1"}
		wait := []string{loopback(ports[1])}
		if extra.TCP > 0 {
			wait = append(wait, loopback(extra.TCP))
		}
		p, err := startReady(ctx, fmt.Sprintf("%s-hop%d", name, hop), argv, env, d, wait)
		if err != nil {
			t.Close()
			return nil, err
		}
		// Procs and Admin stay ordered front first.
		t.Procs = append([]*Process{p}, t.Procs...)
		t.Admin = append([]string{loopback(ports[0])}, t.Admin...)
		if extra.H3 > 0 {
			t.Endpoints.H3 = loopback(extra.H3)
		}
		if extra.TCP > 0 {
			t.Endpoints.TCP = loopback(extra.TCP)
		}
		addr := loopback(ports[1])
		next = Upstream{HTTP: addr, GRPC: addr}
	}
	t.Endpoints.HTTP1, t.Endpoints.H2C, t.Endpoints.GRPC = next.HTTP, next.HTTP, next.GRPC
	t.Version = version(o.Binary, "--version")
	t.Config = "GOMAXPROCS=1 per process; Envoy v3 bootstrap: listener with http_connection_manager (codec AUTO: HTTP/1.1 and h2c on one port) + router; STATIC clusters, HTTP/1.1 upstream for HTTP, `explicit_http_config.http2_protocol_options` (h2c) upstream for gRPC; no access log"
	if t.Endpoints.H3 != "" {
		t.Config += "; HTTP/3 listener (`udp_listener_config.quic_options`, `envoy.transport_sockets.quic`, HCM `codec_type: HTTP3`) to the HTTP/1.1 cluster"
	}
	if t.Endpoints.TCP != "" {
		t.Config += "; `envoy.filters.network.tcp_proxy` listener to the bulk source"
	}
	switch {
	case o.MTLS:
		t.Config = "two outrigger processes in series (client sidecar -> server sidecar), the hop between them mutual TLS as outrigger-cp configures it: " +
			"TLS 1.3 minimum, ECDSA P-256 CA and SPIFFE leaves, the server requires a client certificate, the client sends Consul's SNI and accepts only the server's SPIFFE ID " +
			"(certificates as files, not SDS: same handshake); h2 over TLS for gRPC, HTTP/1.1 over TLS otherwise; each: " + t.Config
	case o.Hops == 2:
		t.Config = "two outrigger processes in series (client sidecar -> server sidecar, plaintext), each: " + t.Config
	}
	return t, nil
}

// meshHopTLS is hop's side of the mTLS between the two sidecars: hop 1
// (the client sidecar) is plaintext to the load generator and mTLS to hop
// 2; hop 2 (the server sidecar) terminates the mTLS and is plaintext to
// the backend, as a sidecar is to its local application.
func meshHopTLS(c *MeshCerts, hop int) HopTLS {
	if hop == 2 {
		return HopTLS{Inbound: &MeshTLS{CAFile: c.CAFile, Leaf: c.Server}}
	}
	return HopTLS{Outbound: &MeshTLS{
		CAFile: c.CAFile, Leaf: c.Client,
		PeerSpiffeID: c.Server.SpiffeID, SNI: MeshSNI(c.Server.Service),
	}}
}

// extraPorts picks the HTTP/3 and tcp_proxy ports a one-hop outrigger
// serves, for whichever of them the upstream supports.
func extraPorts(up Upstream) (ExtraPorts, error) {
	var e ExtraPorts
	var err error
	if up.CertFile != "" && up.H3 != "" {
		if e.H3, err = FreeUDPPort(); err != nil {
			return e, err
		}
	}
	if up.TCP != "" {
		ps, err := FreePorts(1)
		if err != nil {
			return e, err
		}
		e.TCP = ps[0]
	}
	return e, nil
}

func splitHostPort(addr string) (host, port string, err error) {
	i := strings.LastIndexByte(addr, ':')
	if i <= 0 || i == len(addr)-1 {
		return "", "", fmt.Errorf("targets: bad address %q", addr)
	}
	return addr[:i], addr[i+1:], nil
}
