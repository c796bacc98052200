package server

import (
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/controlplane/translate"
)

// mtlsSidecar is sidecar with mesh TLS as the translator emits it: the
// listener requires a client certificate (leaf and roots over SDS), the
// cluster presents the leaf and validates with the roots (combined
// validation context), and both secrets are present.
func mtlsSidecar(service string, port, epPort uint32) *translate.Resources {
	r := sidecar(service, port, epPort)
	leaf := translate.LeafSecretName("web")
	r.Listeners[0].FilterChains[0].TransportSocket = tlsSocket(&tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds(leaf)},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: sds(translate.RootsSecretName),
		},
	}})
	r.Clusters[0].TransportSocket = tlsSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds(leaf)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
				ValidationContextSdsSecretConfig: sds(translate.RootsSecretName),
			},
		},
	}})
	r.Secrets = []*tlsv3.Secret{secret(translate.RootsSecretName), secret(leaf)}
	return r
}

func sds(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

func tlsSocket(ctx proto.Message) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}}
}

func secret(name string) *tlsv3.Secret {
	if name == translate.RootsSecretName {
		return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "roots pem"}},
		}}}
	}
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "cert pem"}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "key pem"}},
	}}}
}

func TestContentChecksSecretReferences(t *testing.T) {
	missing := mtlsSidecar("api", 15001, 9000)
	missing.Secrets = missing.Secrets[:1] // roots only
	orphan := mtlsSidecar("api", 15001, 9000)
	orphan.Secrets = append(orphan.Secrets, secret("leaf:other"))
	clusterOnly := mtlsSidecar("api", 15001, 9000)
	clusterOnly.Clusters[0].TransportSocket = tlsSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("leaf:db")},
	}})
	garbage := mtlsSidecar("api", 15001, 9000)
	garbage.Listeners[0].FilterChains[0].TransportSocket.GetTypedConfig().Value = []byte{0xff}
	unnamed := mtlsSidecar("api", 15001, 9000)
	unnamed.Secrets = append(unnamed.Secrets, secret(""))
	twice := mtlsSidecar("api", 15001, 9000)
	twice.Secrets = append(twice.Secrets, secret(translate.RootsSecretName))

	for _, tc := range []struct {
		name string
		res  *translate.Resources
		want []string
	}{
		{"missing secret", missing, []string{`listener "outbound_api" references secret "leaf:web", which is not in the configuration`}},
		{"unreferenced secret", orphan, []string{`secret "leaf:other" is not referenced by any listener or cluster`}},
		{"cluster names a missing secret", clusterOnly, []string{`cluster "api" references secret "leaf:db"`}},
		{"undecodable transport socket", garbage, []string{`listener "outbound_api": transport_socket`}},
		{"unnamed secret", unnamed, []string{"secret[2] has no name"}},
		{"secret twice", twice, []string{`secret "roots" appears twice`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newBuilder(nil).content(kindProxy, tc.res)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	// Secrets from elsewhere than ADS, and transport sockets that are not
	// TLS, name nothing the snapshot must hold.
	pathSecret := mtlsSidecar("api", 15001, 9000)
	pathSecret.Clusters[0].TransportSocket = tlsSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "file-cert", SdsConfig: &corev3.ConfigSource{
			ConfigSourceSpecifier: &corev3.ConfigSource_PathConfigSource{PathConfigSource: &corev3.PathConfigSource{Path: "/etc/cert.yaml"}},
		}}},
	}})
	rawBuffer := mtlsSidecar("api", 15001, 9000)
	rawBuffer.Clusters[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}}
	for name, res := range map[string]*translate.Resources{
		"mtls sidecar":       mtlsSidecar("api", 15001, 9000),
		"path config source": pathSecret,
		"raw buffer":         rawBuffer,
	} {
		if _, err := newBuilder(nil).content(kindProxy, res); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSnapshotCarriesSecrets(t *testing.T) {
	c, err := newBuilder(nil).content(kindProxy, mtlsSidecar("api", 15001, 9000))
	if err != nil {
		t.Fatal(err)
	}
	s := c.snapshot()
	if err := s.Consistent(); err != nil {
		t.Errorf("go-control-plane finds the snapshot inconsistent: %v", err)
	}
	got := s.GetResources(resource.SecretType)
	if len(got) != 2 || got["roots"] == nil || got["leaf:web"] == nil {
		t.Fatalf("secrets in the snapshot: %v", got)
	}
	if vm := s.GetVersionMap(resource.SecretType); len(vm) != 2 || vm["roots"] == "" {
		t.Errorf("secret version map %v", vm)
	}
	if s.GetVersion(resource.SecretType) == "" {
		t.Error("no secret version")
	}

	// A rotated leaf changes the secret version and nothing else.
	rotated := mtlsSidecar("api", 15001, 9000)
	rotated.Secrets[1].GetTlsCertificate().CertificateChain.Specifier = &corev3.DataSource_InlineString{InlineString: "new cert pem"}
	d, err := newBuilder(nil).content(kindProxy, rotated)
	if err != nil {
		t.Fatal(err)
	}
	for i := range numSlots {
		if changed := c.versions[i] != d.versions[i]; changed != (i == slotSecret) {
			t.Errorf("%s version changed=%v after a leaf rotation; only secret should", slots[i].kind, changed)
		}
	}
}

// TestServesSecretsOverADS: a sidecar asking for the secrets its listener
// and cluster name gets them, in state of the world and delta alike, and a
// rotated leaf is pushed to an open watch.
func TestServesSecretsOverADS(t *testing.T) {
	h := start(t)
	h.fake.set("web-sidecar-proxy", mtlsSidecar("api", 15001, 9000))
	h.srv.Update(mesh(1, "web-sidecar-proxy"))
	want := []string{"leaf:web", "roots"}

	c := h.sotw(envoyNode("web-sidecar-proxy"))
	c.request(resource.ClusterType)
	c.ack(c.recvType(resource.ClusterType))
	c.request(resource.SecretType, want...)
	r := c.recvType(resource.SecretType)
	// go-control-plane's cache builds a response from a map: no order.
	if got := names(t, r.GetResources()); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Fatalf("SotW secrets %v, want %v", got, want)
	}
	c.ack(r, want...)

	d := h.delta(envoyNode("web-sidecar-proxy"))
	d.subscribe(resource.SecretType, want...)
	dr := d.recvType(resource.SecretType)
	// A delta response's order is not defined.
	if got := deltaNames(t, dr.GetResources()); !slices.Equal(slices.Sorted(slices.Values(got)), want) {
		t.Fatalf("delta secrets %v, want %v", got, want)
	}
	d.ack(dr)

	rotated := mtlsSidecar("api", 15001, 9000)
	rotated.Secrets[1].GetTlsCertificate().CertificateChain.Specifier = &corev3.DataSource_InlineString{InlineString: "new cert pem"}
	h.fake.set("web-sidecar-proxy", rotated)
	h.srv.Update(mesh(2, "web-sidecar-proxy"))
	r = c.recvType(resource.SecretType)
	if r.GetVersionInfo() == "" || len(r.GetResources()) != 2 {
		t.Errorf("SotW push after a rotation: %v", r)
	}
	dr = d.recvType(resource.SecretType)
	if got := deltaNames(t, dr.GetResources()); !slices.Equal(got, []string{"leaf:web"}) {
		t.Errorf("delta push after a rotation sent %v, want only the rotated leaf", got)
	}
	var leaf tlsv3.Secret
	if err := anypb.UnmarshalTo(dr.GetResources()[0].GetResource(), &leaf, proto.UnmarshalOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := leaf.GetTlsCertificate().GetCertificateChain().GetInlineString(); got != "new cert pem" {
		t.Errorf("rotated leaf holds %q", got)
	}
}
