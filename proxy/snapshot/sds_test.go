package snapshot

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"

	"github.com/outrigger-mesh/outrigger/proxy/secret"
)

// pemFiles writes a CA and a leaf with a SPIFFE ID, and a second CA's
// certificate, to dir: ca.pem, leaf.pem, leaf.key, other-ca.pem.
func pemFiles(t *testing.T, dir string) {
	t.Helper()
	mk := func(name string) (*x509.Certificate, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		write(t, filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		return c, key
	}
	ca, caKey := mk("ca")
	mk("other-ca")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	id, _ := url.Parse("spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web")
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "web"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), URIs: []*url.URL{id},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	write(t, filepath.Join(dir, "leaf.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, filepath.Join(dir, "leaf.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func fromYAML(t *testing.T, y string, m proto.Message) {
	t.Helper()
	js, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		t.Fatalf("%v\n%s", err, y)
	}
}

// tlsListener is a listener whose one chain terminates TLS with the
// DownstreamTlsContext given in YAML (indented for its place: 10 spaces).
func tlsListener(t *testing.T, dtc string) *listenerv3.Listener {
	l := &listenerv3.Listener{}
	fromYAML(t, `name: in
address: {socket_address: {address: 127.0.0.1, port_value: 0}}
filter_chains:
- filters:
  - name: envoy.filters.network.http_connection_manager
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
      stat_prefix: in
      http_filters:
      - name: envoy.filters.http.router
        typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
      route_config: {name: r, virtual_hosts: [{name: all, domains: ["*"], routes: [{match: {prefix: "/"}, direct_response: {status: 200}}]}]}
  transport_socket:
    name: envoy.transport_sockets.tls
    typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
`+dtc, l)
	return l
}

// tlsCluster is a STATIC cluster with the UpstreamTlsContext given in YAML
// (6 spaces).
func tlsCluster(t *testing.T, utc string) *clusterv3.Cluster {
	c := &clusterv3.Cluster{}
	fromYAML(t, `name: up
type: STATIC
load_assignment: {cluster_name: up, endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 1}}}}]}]}
transport_socket:
  name: envoy.transport_sockets.tls
  typed_config:
      "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
`+utc, c)
	return c
}

func secretYAML(t *testing.T, y string) *tlsv3.Secret {
	s := &tlsv3.Secret{}
	fromYAML(t, y, s)
	return s
}

func TestBuildWithSecrets(t *testing.T) {
	dir := t.TempDir()
	pemFiles(t, dir)
	f := func(name string) string { return filepath.Join(dir, name) }
	certSecret := secretYAML(t, fmt.Sprintf("name: cert\ntls_certificate: {certificate_chain: {filename: %s}, private_key: {filename: %s}}", f("leaf.pem"), f("leaf.key")))
	rootsSecret := secretYAML(t, fmt.Sprintf("name: roots\nvalidation_context: {trusted_ca: {filename: %s}}", f("ca.pem")))
	sdsFile := f("sds.yaml")
	write(t, sdsFile, []byte(fmt.Sprintf(`resources:
- "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
  name: file-cert
  tls_certificate: {certificate_chain: {filename: %s}, private_key: {filename: %s}}
- "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret
  name: file-roots
  validation_context: {trusted_ca: {filename: %s}}
`, f("leaf.pem"), f("leaf.key"), f("ca.pem"))))

	const mtlsStatic = `      require_client_certificate: true
      common_tls_context:
        tls_params: {tls_minimum_protocol_version: TLSv1_3}
        tls_certificate_sds_secret_configs: [{name: cert}]
        combined_validation_context:
          default_validation_context:
            match_typed_subject_alt_names:
            - {san_type: URI, matcher: {prefix: "spiffe://11111111-2222-3333-4444-555555555555.consul/"}}
          validation_context_sds_secret_config: {name: roots}
`
	for _, tt := range []struct {
		name      string
		listener  string // DownstreamTlsContext
		cluster   string // UpstreamTlsContext, "" for no cluster
		static    []*tlsv3.Secret
		ads       []*tlsv3.Secret
		wantErr   string
		wantNames []string
	}{
		{name: "static secrets", listener: mtlsStatic, static: []*tlsv3.Secret{certSecret, rootsSecret}},
		{name: "static secret missing", listener: mtlsStatic, static: []*tlsv3.Secret{certSecret},
			wantErr: `listeners[0].filter_chains[0].transport_socket.typed_config.common_tls_context.combined_validation_context.validation_context_sds_secret_config.name: static secret "roots" is not defined`},
		{name: "static secret of the wrong kind", listener: mtlsStatic, static: []*tlsv3.Secret{certSecret, secretYAML(t, "name: roots\n"+fmt.Sprintf("tls_certificate: {certificate_chain: {filename: %s}, private_key: {filename: %s}}", f("leaf.pem"), f("leaf.key")))},
			wantErr: `secret "roots" holds no validation_context`},
		{name: "validation secret missing", listener: `      require_client_certificate: true
      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: cert}]
        validation_context_sds_secret_config: {name: roots}
`, static: []*tlsv3.Secret{certSecret}, wantErr: `validation_context_sds_secret_config.name: static secret "roots" is not defined`},
		{name: "both secrets missing", listener: `      require_client_certificate: true
      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: cert}]
        validation_context_sds_secret_config: {name: roots}
`, cluster: `      common_tls_context:
        validation_context_sds_secret_config: {name: roots}
`, wantErr: `tls_certificate_sds_secret_configs[0].name: static secret "cert" is not defined`},
		{name: "duplicate static secret", listener: mtlsStatic, static: []*tlsv3.Secret{certSecret, rootsSecret, certSecret},
			wantErr: `secrets[2].name: secret "cert" is also the name of secrets[0]`},
		{name: "bad PEM", listener: mtlsStatic, static: []*tlsv3.Secret{secretYAML(t, "name: cert\ntls_certificate: {certificate_chain: {inline_string: nope}, private_key: {inline_string: nope}}"), rootsSecret},
			wantErr: "secrets[0].tls_certificate: bad certificate or key"},
		{name: "over ADS, warming", listener: `      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: cert, sds_config: {ads: {}, resource_api_version: V3}}]
        validation_context_sds_secret_config: {name: roots, sds_config: {ads: {}}}
`, cluster: `      sni: api.default
      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: cert, sds_config: {ads: {}}}]
        validation_context_sds_secret_config: {name: upstream-roots, sds_config: {ads: {}}}
`, wantNames: []string{"cert", "roots", "upstream-roots"}},
		{name: "over ADS, arrived", listener: `      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: cert, sds_config: {ads: {}}}]
`, ads: []*tlsv3.Secret{certSecret, {Name: "gone"}}, wantNames: []string{"cert"}},
		{name: "file", listener: `      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: file-cert, sds_config: {path_config_source: {path: ` + sdsFile + `}}}]
        validation_context_sds_secret_config: {name: file-roots, sds_config: {path_config_source: {path: ` + sdsFile + `}}}
`},
		{name: "file without the secret", listener: `      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: nope, sds_config: {path_config_source: {path: ` + sdsFile + `}}}]
`, wantErr: `tls_certificate_sds_secret_configs[0].sds_config.path_config_source.path: ` + sdsFile + ` holds no secret "nope"`},
		{name: "file missing", listener: `      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: x, sds_config: {path_config_source: {path: /nonexistent/sds.yaml}}}]
`, wantErr: "sds_config.path_config_source.path: open /nonexistent/sds.yaml"},
		{name: "inline and SDS certificates", listener: fmt.Sprintf(`      common_tls_context:
        tls_certificates: [{certificate_chain: {filename: %s}, private_key: {filename: %s}}]
        tls_certificate_sds_secret_configs: [{name: cert}]
`, f("leaf.pem"), f("leaf.key")), static: []*tlsv3.Secret{certSecret}, wantErr: "tls_certificate_sds_secret_configs: cannot be combined with tls_certificates"},
		{name: "require without validation", listener: `      require_client_certificate: true
      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: cert}]
`, static: []*tlsv3.Secret{certSecret}, wantErr: "require_client_certificate: needs a validation context"},
		{name: "no certificate", listener: `      common_tls_context:
        validation_context_sds_secret_config: {name: roots}
`, static: []*tlsv3.Secret{rootsSecret}, wantErr: "a server needs at least one certificate"},
		{name: "bad SAN regex", listener: fmt.Sprintf(`      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: cert}]
        validation_context:
          trusted_ca: {filename: %s}
          match_typed_subject_alt_names: [{san_type: URI, matcher: {safe_regex: {regex: "("}}}]
`, f("ca.pem")), static: []*tlsv3.Secret{certSecret}, wantErr: "match_typed_subject_alt_names[0].matcher.safe_regex.regex: invalid regex"},
		{name: "OTHER_NAME", listener: `      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: cert}]
        validation_context_sds_secret_config: {name: roots}
`, cluster: `      common_tls_context:
        combined_validation_context:
          default_validation_context: {match_typed_subject_alt_names: [{san_type: OTHER_NAME, matcher: {exact: x}, oid: "1.2.3"}]}
          validation_context_sds_secret_config: {name: roots}
`, static: []*tlsv3.Secret{certSecret, rootsSecret}, wantErr: "san_type"},
		{name: "api_config_source", listener: `      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: cert, sds_config: {api_config_source: {api_type: GRPC, transport_api_version: V3, grpc_services: [{envoy_grpc: {cluster_name: sds}}]}}}]
`, wantErr: "api_config_source"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var clusters []*clusterv3.Cluster
			if tt.cluster != "" {
				clusters = append(clusters, tlsCluster(t, tt.cluster))
			}
			store := secret.NewStore(secret.Options{})
			snap, err := BuildResources(Options{Secrets: store, StaticSecrets: tt.static, ADSSecrets: tt.ads},
				[]*listenerv3.Listener{tlsListener(t, tt.listener)}, nil, clusters, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				// A watched file serves what it holds; the build's own
				// secrets go in force only when it succeeds.
				for _, k := range store.Keys() {
					if k.Source == secret.SourceStatic || k.Source == secret.SourceADS {
						t.Fatalf("a failed build put %v in force", k)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if snap.Secrets != store {
				t.Fatal("the snapshot does not carry its store")
			}
			if strings.Join(snap.ADSSecretNames, ",") != strings.Join(tt.wantNames, ",") {
				t.Fatalf("ADSSecretNames = %v, want %v", snap.ADSSecretNames, tt.wantNames)
			}
			cfg := snap.Listeners[0].Config.FilterChains[0].TLS
			if cfg.GetCertificate == nil {
				t.Fatal("an SDS server context must pick its certificate per handshake")
			}
			for _, s := range tt.static {
				if store.Get(secret.Key{Source: secret.SourceStatic, Name: s.GetName()}) == nil {
					t.Fatalf("static secret %q not in force", s.GetName())
				}
			}
			for _, s := range tt.ads {
				got := store.Get(secret.Key{Source: secret.SourceADS, Name: s.GetName()})
				if (got == nil) != (s.GetType() == nil) {
					t.Fatalf("ADS secret %q in force: %v", s.GetName(), got != nil)
				}
			}
			if len(clusters) > 0 {
				up := snap.Clusters[0].TLS
				if up.ServerName != "api.default" || up.GetClientCertificate == nil || up.VerifyConnection == nil {
					t.Fatalf("upstream TLS: sni %q, client cert cb %v, verify %v", up.ServerName, up.GetClientCertificate != nil, up.VerifyConnection != nil)
				}
			}
		})
	}
}

// TestStaticContextsUnchanged: a context without SDS or SAN matchers keeps
// Go's own verification (ClientCAs), as before SDS.
func TestStaticContextsUnchanged(t *testing.T) {
	dir := t.TempDir()
	pemFiles(t, dir)
	f := func(name string) string { return filepath.Join(dir, name) }
	l := tlsListener(t, fmt.Sprintf(`      require_client_certificate: true
      common_tls_context:
        tls_certificates: [{certificate_chain: {filename: %s}, private_key: {filename: %s}}]
        validation_context: {trusted_ca: {filename: %s}}
`, f("leaf.pem"), f("leaf.key"), f("ca.pem")))
	snap, err := Build([]*listenerv3.Listener{l}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := snap.Listeners[0].Config.FilterChains[0].TLS
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert || cfg.ClientCAs == nil || cfg.GetCertificate != nil || len(cfg.Certificates) != 1 {
		t.Fatalf("static mTLS context: %+v", cfg)
	}
}

func TestConvertSecret(t *testing.T) {
	dir := t.TempDir()
	pemFiles(t, dir)
	f := func(name string) string { return filepath.Join(dir, name) }
	for _, tt := range []struct {
		name, yaml, wantErr string
		want                func(*secret.Secret) bool
	}{
		{"certificate", fmt.Sprintf("name: c\ntls_certificate: {certificate_chain: {filename: %s}, private_key: {filename: %s}}", f("leaf.pem"), f("leaf.key")), "",
			func(s *secret.Secret) bool { return s.Certificate != nil && s.Certificate.Leaf.URIs[0].Host != "" }},
		{"validation", fmt.Sprintf("name: v\nvalidation_context: {trusted_ca: {filename: %s}, match_typed_subject_alt_names: [{san_type: DNS, matcher: {suffix: .consul}}, {san_type: EMAIL, matcher: {contains: \"@\"}}, {san_type: IP_ADDRESS, matcher: {exact: 10.0.0.1}}]}", f("ca.pem")), "",
			func(s *secret.Secret) bool {
				return s.Validation != nil && s.Validation.Roots != nil && len(s.Validation.SANs) == 3
			}},
		{"name only", "name: gone", "", func(s *secret.Secret) bool { return s == nil }},
		{"key of another certificate", fmt.Sprintf("name: c\ntls_certificate: {certificate_chain: {filename: %s}, private_key: {inline_string: \"-----BEGIN EC PRIVATE KEY-----\\nAAAA\\n-----END EC PRIVATE KEY-----\\n\"}}", f("leaf.pem")), "tls_certificate: bad certificate or key", nil},
		{"validation without trusted_ca", "name: v\nvalidation_context: {match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: x}}]}", "validation_context.trusted_ca: is required", nil},
		{"trusted_ca without PEM", "name: v\nvalidation_context: {trusted_ca: {inline_string: nope}}", "holds no PEM certificate", nil},
		{"empty prefix", fmt.Sprintf("name: v\nvalidation_context: {trusted_ca: {filename: %s}, match_typed_subject_alt_names: [{san_type: URI, matcher: {prefix: \"\"}}]}", f("ca.pem")), "value must not be empty", nil},
		{"generic secret", "name: g\ngeneric_secret: {secret: {inline_string: x}}", "only tls_certificate and validation_context", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConvertSecret(secretYAML(t, tt.yaml))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !tt.want(got) {
				t.Fatalf("ConvertSecret = %+v, %v", got, err)
			}
		})
	}
}

func TestLoadSecretsFile(t *testing.T) {
	dir := t.TempDir()
	pemFiles(t, dir)
	ca := filepath.Join(dir, "ca.pem")
	const ty = `"@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret`
	for _, tt := range []struct {
		name, content, wantErr string
	}{
		{"yaml", "resources:\n- " + ty + "\n  name: roots\n  validation_context: {trusted_ca: {filename: " + ca + "}}\n", ""},
		{"json", `{"resources":[{"@type":"type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret","name":"roots","validationContext":{"trustedCa":{"filename":"` + ca + `"}}}]}`, ""},
		{"empty", "", "empty secrets file"},
		{"no resources", "version_info: x", "no secret"},
		{"not YAML", "resources: [", "yaml"},
		{"unknown field", "resourcez: []", "not a DiscoveryResponse"},
		{"another type", "resources:\n- \"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\n  name: c\n", "resources[0]: type.googleapis.com/envoy.config.cluster.v3.Cluster is not allowed here"},
		{"unsupported field", "resources:\n- " + ty + "\n  name: t\n  session_ticket_keys: {keys: [{inline_bytes: " + strings.Repeat("QUFB", 27) + "}]}\n", "resources[0].session_ticket_keys"},
		{"invalid", "resources:\n- " + ty + "\n  validation_context: {trusted_ca: {filename: " + ca + "}}\n", "a secret needs a name"},
		{"duplicate", "resources:\n- " + ty + "\n  name: a\n  validation_context: {trusted_ca: {filename: " + ca + "}}\n- " + ty + "\n  name: a\n  validation_context: {trusted_ca: {filename: " + ca + "}}\n", "also the name of"},
		{"name only", "resources:\n- " + ty + "\n  name: a\n", "tls_certificate or validation_context is required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadSecretsFile([]byte(tt.content))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got["roots"] == nil || got["roots"].Validation == nil {
				t.Fatalf("LoadSecretsFile = %v, %v", got, err)
			}
		})
	}
}

// An upstream context over SDS converts to one shared config across
// builds, so the cluster keeps its pool through xDS updates; a changed
// context gets a new one.
func TestUpstreamSDSConfigShared(t *testing.T) {
	store := secret.NewStore(secret.Options{})
	ctx := func(san string) string {
		return `      common_tls_context:
        tls_certificate_sds_secret_configs: [{name: cert, sds_config: {ads: {}}}]
        combined_validation_context:
          default_validation_context: {match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: "` + san + `"}}]}
          validation_context_sds_secret_config: {name: roots, sds_config: {ads: {}}}
`
	}
	build := func(san string) *tls.Config {
		t.Helper()
		snap, err := BuildResources(Options{Secrets: store}, nil, nil, []*clusterv3.Cluster{tlsCluster(t, ctx(san))}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return snap.Clusters[0].TLS
	}
	a1, a2 := build("spiffe://td/svc/api"), build("spiffe://td/svc/api")
	if a1 != a2 {
		t.Fatal("the same context converted to two configs")
	}
	if b := build("spiffe://td/svc/other"); b == a1 {
		t.Fatal("a changed SAN matcher kept the old config")
	}
	// Another store (another proxy, or Check's scratch conversion) does
	// not share.
	other, err := BuildResources(Options{}, nil, nil, []*clusterv3.Cluster{tlsCluster(t, ctx("spiffe://td/svc/api"))}, nil)
	if err != nil || other.Clusters[0].TLS == a1 {
		t.Fatalf("shared across stores: %v", err)
	}
	// A context that reads a file is converted anew.
	dir := t.TempDir()
	pemFiles(t, dir)
	withFile := `      common_tls_context:
        validation_context: {trusted_ca: {filename: ` + filepath.Join(dir, "ca.pem") + `}, match_typed_subject_alt_names: [{san_type: URI, matcher: {exact: x}}]}
`
	f1, err1 := BuildResources(Options{Secrets: store}, nil, nil, []*clusterv3.Cluster{tlsCluster(t, withFile)}, nil)
	f2, err2 := BuildResources(Options{Secrets: store}, nil, nil, []*clusterv3.Cluster{tlsCluster(t, withFile)}, nil)
	if err1 != nil || err2 != nil || f1.Clusters[0].TLS == f2.Clusters[0].TLS {
		t.Fatalf("file-based context shared: %v %v", err1, err2)
	}
}
