package translate

import (
	"errors"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

func TestCANotReady(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(m *model.Mesh)
		want   string
	}{
		{"no trust domain", func(m *model.Mesh) { m.TrustDomain = "" }, "no trust domain"},
		{"no roots", func(m *model.Mesh) { m.Roots = nil }, "no CA roots"},
		{"empty roots", func(m *model.Mesh) { m.Roots = &api.CARootList{TrustDomain: testTrustDomain} }, "no CA roots"},
		{"blank root", func(m *model.Mesh) { m.Roots.Roots = []*api.CARoot{nil, {ID: "x", RootCertPEM: " \n"}} }, "no CA roots"},
		{"no datacenter", func(m *model.Mesh) { m.Datacenter = "" }, "no datacenter"},
		{"no leaf", func(m *model.Mesh) { delete(m.Leaves, "web") }, `no leaf certificate for service "web"`},
		{"leaf without key", func(m *model.Mesh) { m.Leaves["web"].PrivateKeyPEM = "" }, `no leaf certificate for service "web"`},
		{"leaf without certificate", func(m *model.Mesh) { m.Leaves["web"].CertPEM = "" }, `no leaf certificate for service "web"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := baseMesh()
			tc.mutate(m)
			_, err := Proxy(m, proxyID)
			if !errors.Is(err, ErrCANotReady) {
				t.Fatalf("error %v, want ErrCANotReady", err)
			}
			if !strings.Contains(err.Error(), `proxy "web-sidecar-proxy"`) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not name the proxy and %q", err, tc.want)
			}
			// Without mesh TLS the CA is not needed.
			if _, err := NewWithOptions(m, Options{Plaintext: true}).Proxy(proxyID); err != nil && tc.name != "no datacenter" {
				t.Errorf("plaintext: %v", err)
			}
		})
	}
}

func TestPlaintextOption(t *testing.T) {
	m := baseMesh()
	m.TrustDomain, m.Roots, m.Leaves = "", nil, nil
	m.Intentions = map[string]*api.ServiceIntentionsConfigEntry{"web": {Kind: api.ServiceIntentions, Name: "web",
		Sources: []*api.SourceIntention{{Name: "a", Action: api.IntentionActionDeny}}}}
	r, err := NewWithOptions(m, Options{Plaintext: true}).Proxy(proxyID)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Secrets) != 0 {
		t.Errorf("secrets %v", r.Secrets)
	}
	for _, l := range r.Listeners {
		if ts := l.GetFilterChains()[0].GetTransportSocket(); ts != nil {
			t.Errorf("listener %q has a transport socket", l.GetName())
		}
	}
	for _, c := range r.Clusters {
		if c.GetTransportSocket() != nil {
			t.Errorf("cluster %q has a transport socket", c.GetName())
		}
	}
	h := &hcmv3.HttpConnectionManager{}
	if err := listenerNamed(t, r, publicListenerName).GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(h); err != nil {
		t.Fatal(err)
	}
	if len(h.GetHttpFilters()) != 1 || h.GetHttpFilters()[0].GetName() != routerFilterName {
		t.Errorf("plaintext public_listener http filters %v, want only the router", h.GetHttpFilters())
	}

	// The listener's own encoding error still names it.
	sidecarProxy(m).Upstreams[0].DestinationName = "a\xff"
	_, err = NewWithOptions(m, Options{Plaintext: true}).Proxy(proxyID)
	if err == nil || !strings.Contains(err.Error(), `translate: listener "a\xff:127.0.0.1:9191": encoding HttpConnectionManager`) {
		t.Errorf("error %v", err)
	}
}

// TestMeshTLS checks the TLS of both sides and the secrets against the
// mesh they come from.
func TestMeshTLS(t *testing.T) {
	m := baseMesh()
	svc(m, "api").Resolver = resolver("api", func(r *api.ServiceResolverConfigEntry) {
		r.DefaultSubset = "v2"
		r.Subsets = map[string]api.ServiceResolverSubset{"v2": {}}
		r.Failover = map[string]api.ServiceResolverFailover{"*": {Service: "api-dr"}}
	})
	svc(m, "api-dr")
	r, err := Proxy(m, proxyID)
	if err != nil {
		t.Fatal(err)
	}

	down := &tlsv3.DownstreamTlsContext{}
	if err := listenerNamed(t, r, publicListenerName).GetFilterChains()[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(down); err != nil {
		t.Fatal(err)
	}
	common := down.GetCommonTlsContext()
	switch {
	case !down.GetRequireClientCertificate().GetValue():
		t.Error("public_listener does not require a client certificate")
	case common.GetTlsParams().GetTlsMinimumProtocolVersion() != tlsv3.TlsParameters_TLSv1_3:
		t.Errorf("public_listener minimum TLS %v", common.GetTlsParams())
	case len(common.GetTlsCertificateSdsSecretConfigs()) != 1 || common.GetTlsCertificateSdsSecretConfigs()[0].GetName() != "leaf:web":
		t.Errorf("public_listener certificate %v", common.GetTlsCertificateSdsSecretConfigs())
	case common.GetValidationContextSdsSecretConfig().GetName() != "roots" || common.GetValidationContextSdsSecretConfig().GetSdsConfig().GetAds() == nil:
		t.Errorf("public_listener validation %v", common.GetValidationContextSdsSecretConfig())
	}
	for _, l := range r.Listeners {
		if l.GetName() != publicListenerName && l.GetFilterChains()[0].GetTransportSocket() != nil {
			t.Errorf("outbound listener %q has TLS: the local app speaks plaintext to its sidecar", l.GetName())
		}
	}

	var c *clusterv3.Cluster
	for _, x := range r.Clusters {
		if x.GetName() == "v2.api" {
			c = x
		}
		if x.GetName() == localAppName && x.GetTransportSocket() != nil {
			t.Error("local_app has TLS")
		}
	}
	if c == nil {
		t.Fatalf("no v2.api cluster in %v", r.Clusters)
	}
	up := &tlsv3.UpstreamTlsContext{}
	if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(up); err != nil {
		t.Fatal(err)
	}
	if want := "v2.api.default.dc1.internal." + testTrustDomain; up.GetSni() != want {
		t.Errorf("SNI %q, want %q", up.GetSni(), want)
	}
	combined := up.GetCommonTlsContext().GetCombinedValidationContext()
	var sans []string
	for _, s := range combined.GetDefaultValidationContext().GetMatchTypedSubjectAltNames() {
		if s.GetSanType() != tlsv3.SubjectAltNameMatcher_URI {
			t.Errorf("SAN type %v", s.GetSanType())
		}
		sans = append(sans, s.GetMatcher().GetExact())
	}
	wantSANs := []string{SpiffeID(testTrustDomain, "dc1", "api"), SpiffeID(testTrustDomain, "dc1", "api-dr")}
	if strings.Join(sans, " ") != strings.Join(wantSANs, " ") {
		t.Errorf("SANs %v, want the target's and its failover's %v", sans, wantSANs)
	}
	if combined.GetValidationContextSdsSecretConfig().GetName() != "roots" {
		t.Errorf("upstream validation %v", combined)
	}
	if got := up.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs(); len(got) != 1 || got[0].GetName() != "leaf:web" {
		t.Errorf("upstream certificate %v, want the local leaf", got)
	}
	if up.GetCommonTlsContext().GetTlsParams().GetTlsMinimumProtocolVersion() != tlsv3.TlsParameters_TLSv1_3 {
		t.Errorf("upstream minimum TLS %v", up.GetCommonTlsContext().GetTlsParams())
	}

	if len(r.Secrets) != 2 || r.Secrets[0].GetName() != "leaf:web" || r.Secrets[1].GetName() != "roots" {
		t.Fatalf("secrets %v", r.Secrets)
	}
	leaf := r.Secrets[0].GetTlsCertificate()
	if leaf.GetCertificateChain().GetInlineString() != m.Leaves["web"].CertPEM || leaf.GetPrivateKey().GetInlineString() != m.Leaves["web"].PrivateKeyPEM {
		t.Errorf("leaf secret %v", leaf)
	}
}

func TestRootsBundle(t *testing.T) {
	s := rootsSecret(&api.CARootList{Roots: []*api.CARoot{
		{RootCertPEM: "OLD"}, nil, {RootCertPEM: "  "}, {RootCertPEM: "NEW\n", Active: true},
	}})
	if got := s.GetValidationContext().GetTrustedCa().GetInlineString(); got != "OLD\nNEW\n" {
		t.Errorf("bundle %q, want every root, one per line", got)
	}
}

func TestSecretsAreShared(t *testing.T) {
	m := benchMesh(2, 2, 1)
	tr := New(m)
	a, err := tr.Proxy("svc-0-0-sidecar-proxy")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := tr.Proxy("svc-0-1-sidecar-proxy")
	c, _ := tr.Proxy("svc-1-0-sidecar-proxy")
	if a.Secrets[0] != b.Secrets[0] || a.Secrets[1] != b.Secrets[1] {
		t.Error("two proxies of svc-0 do not share their secrets")
	}
	if a.Secrets[1] != c.Secrets[1] || a.Secrets[1].GetName() != "roots" {
		t.Error("the roots are not shared across services")
	}
	if c.Secrets[0].GetName() != "leaf:svc-1" {
		t.Errorf("svc-1's leaf is %q", c.Secrets[0].GetName())
	}
}

func TestProxylessStaysPlaintext(t *testing.T) {
	m := loadMesh(t, "proxyless")
	m.Roots = &api.CARootList{Roots: []*api.CARoot{{RootCertPEM: "ROOT"}}}
	m.Leaves = map[string]*api.LeafCert{"greeter": testLeaf("greeter")}
	r, err := Proxyless(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Secrets) != 0 {
		t.Errorf("proxyless secrets %v", r.Secrets)
	}
	for _, c := range r.Clusters {
		if c.GetTransportSocket() != nil {
			t.Errorf("proxyless cluster %q has TLS: proxyless clients dial instances, which speak plaintext", c.GetName())
		}
	}
}

// TestXFCC: an HTTP service's public_listener hands the caller's identity
// to the app in x-forwarded-client-cert as Consul does; grpc services,
// tcp services and plaintext sidecars get none.
func TestXFCC(t *testing.T) {
	hcmOf := func(t *testing.T, m *model.Mesh, o Options) *hcmv3.HttpConnectionManager {
		t.Helper()
		r, err := NewWithOptions(m, o).Proxy(proxyID)
		if err != nil {
			t.Fatal(err)
		}
		h := &hcmv3.HttpConnectionManager{}
		if err := listenerNamed(t, r, publicListenerName).GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	h := hcmOf(t, baseMesh(), Options{})
	d := h.GetSetCurrentClientCertDetails()
	if h.GetForwardClientCertDetails() != hcmv3.HttpConnectionManager_APPEND_FORWARD ||
		!d.GetSubject().GetValue() || !d.GetCert() || !d.GetChain() || !d.GetDns() || !d.GetUri() {
		t.Errorf("http: forward %v, details %v", h.GetForwardClientCertDetails(), d)
	}
	grpc := baseMesh()
	svc(grpc, "web").Defaults = &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "web", Protocol: "grpc"}
	if h := hcmOf(t, grpc, Options{}); h.GetForwardClientCertDetails() != hcmv3.HttpConnectionManager_SANITIZE || h.GetSetCurrentClientCertDetails() != nil {
		t.Errorf("grpc: forward %v, details %v", h.GetForwardClientCertDetails(), h.GetSetCurrentClientCertDetails())
	}
	if h := hcmOf(t, baseMesh(), Options{Plaintext: true}); h.GetForwardClientCertDetails() != hcmv3.HttpConnectionManager_SANITIZE || h.GetSetCurrentClientCertDetails() != nil {
		t.Errorf("plaintext: forward %v, details %v", h.GetForwardClientCertDetails(), h.GetSetCurrentClientCertDetails())
	}
}
