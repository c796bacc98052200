package targets

import (
	"context"
	"fmt"
	"strings"
	"text/template"
)

// NameOutrigger2HopAB is the interleaved mTLS comparison: one pair of
// sidecars carrying a plaintext path and an mTLS path at the same time.
const NameOutrigger2HopAB = "outrigger-2hop-ab"

// abBootstrap is one sidecar of the A/B pair: gRPC listeners, each routed
// to one h2 cluster, with the mesh's mutual TLS where a listener or a
// cluster has it (outriggerBootstrap's TLS blocks).
var abBootstrap = template.Must(template.Must(outriggerBootstrap.Clone()).New("ab").Parse(`# written by outrigger-bench (A/B: plaintext and mTLS paths in the same processes)
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: {{.AdminPort}} }
static_resources:
  listeners:
{{- range .Listeners}}
  - name: {{.Name}}
    address:
      socket_address: { address: 127.0.0.1, port_value: {{.Port}} }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {{.Name}}
          codec_type: AUTO
          route_config:
            name: {{.Name}}
            virtual_hosts:
            - name: {{.Name}}
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: {{.Cluster}}, timeout: 0s }
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
{{- template "downstreamTLS" .Inbound}}
{{- end}}
  clusters:
{{- range .Clusters}}{{template "h2Cluster" .}}{{end}}
`))

type abListener struct {
	Name    string
	Port    int
	Cluster string
	Inbound *MeshTLS
}

type abParams struct {
	AdminPort int
	Listeners []abListener
	Clusters  []h2Cluster
}

// abPorts are one sidecar's admin and listener ports.
type abPorts struct{ admin, plain, mtls int }

// abSidecar renders sidecar hop (1: client sidecar, 2: server sidecar) of
// the A/B pair. plainUp and mtlsUp are where its two paths go: for hop 1
// the server sidecar's two listeners, for hop 2 the backend's gRPC
// address (both).
func abSidecar(hop int, ports abPorts, plainUp, mtlsUp string, certs *MeshCerts) (string, error) {
	tls := meshHopTLS(certs, hop)
	p := abParams{AdminPort: ports.admin, Listeners: []abListener{
		{Name: "grpc_plaintext", Port: ports.plain, Cluster: "plaintext_path"},
		{Name: "grpc_mtls", Port: ports.mtls, Cluster: "mtls_path", Inbound: tls.Inbound},
	}}
	for _, c := range []struct {
		name, addr string
		out        *MeshTLS
	}{{"plaintext_path", plainUp, nil}, {"mtls_path", mtlsUp, tls.Outbound}} {
		h, port, err := splitHostPort(c.addr)
		if err != nil {
			return "", err
		}
		p.Clusters = append(p.Clusters, h2Cluster{Name: c.name, Host: h, Port: port, Outbound: c.out})
	}
	var b strings.Builder
	if err := abBootstrap.Execute(&b, p); err != nil {
		return "", fmt.Errorf("targets: render A/B bootstrap: %w", err)
	}
	return b.String(), nil
}

// StartOutriggerAB runs two outrigger processes in series (GOMAXPROCS=1
// each) that carry two gRPC paths side by side: Endpoints.GRPC enters the
// plaintext path, Endpoints.GRPCMTLS the path whose sidecar-to-sidecar hop
// is mutual TLS as in outrigger-2hop-mtls. Load sent to both at once meets
// the same processes, garbage collections and machine noise, so the
// difference between the paths is TLS alone.
func StartOutriggerAB(ctx context.Context, dir string, up Upstream, bin string) (*Target, error) {
	d, err := mkdir(dir, NameOutrigger2HopAB)
	if err != nil {
		return nil, err
	}
	certs, err := WriteMeshCerts(d)
	if err != nil {
		return nil, err
	}
	t := &Target{Name: NameOutrigger2HopAB}
	plainUp, mtlsUp := up.GRPC, up.GRPC
	for hop := 2; hop >= 1; hop-- {
		ps, err := FreePorts(3)
		if err != nil {
			t.Close()
			return nil, err
		}
		ports := abPorts{admin: ps[0], plain: ps[1], mtls: ps[2]}
		conf, err := abSidecar(hop, ports, plainUp, mtlsUp, certs)
		if err != nil {
			t.Close()
			return nil, err
		}
		path := fmt.Sprintf("%s/hop%d.yaml", d, hop)
		if err := writeFile(path, conf); err != nil {
			t.Close()
			return nil, err
		}
		argv := []string{bin, "-c", path, "--log-level", "warn", "--drain-time-s", "1"}
		p, err := startReady(ctx, fmt.Sprintf("%s-hop%d", NameOutrigger2HopAB, hop), argv,
			[]string{"GOMAXPROCS=1"}, d, []string{loopback(ports.plain), loopback(ports.mtls)})
		if err != nil {
			t.Close()
			return nil, err
		}
		t.Procs = append([]*Process{p}, t.Procs...)
		t.Admin = append([]string{loopback(ports.admin)}, t.Admin...)
		plainUp, mtlsUp = loopback(ports.plain), loopback(ports.mtls)
	}
	t.Endpoints.GRPC, t.Endpoints.GRPCMTLS = plainUp, mtlsUp
	t.Version = version(bin, "--version")
	t.Config = "two outrigger processes in series (GOMAXPROCS=1 each) carrying two gRPC paths at once: " +
		"plaintext, and mutual TLS between the sidecars as in outrigger-2hop-mtls (TLS 1.3, SPIFFE leaves, " +
		"client certificate required, SNI and SPIFFE ID checked); h2c to the backend on both; " +
		"the two paths get the same open-loop rate together, their sends interleaved"
	return t, nil
}
