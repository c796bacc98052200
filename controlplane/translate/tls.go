package translate

import (
	"errors"
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/hashicorp/consul/api"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// This file secures the hops between sidecars with Consul's Connect CA,
// the way Consul's own Envoy integration does, but with the certificates
// served over SDS (on the same ADS stream) instead of inline:
//
//   - the secret "roots" is the trust bundle: every root Consul lists
//     (during a CA rotation the old and the new), concatenated;
//   - the secret "leaf:<service>" is the service's leaf certificate chain
//     and private key;
//   - public_listener requires a client certificate that chains to the
//     roots, with TLS 1.3 at least;
//   - every cluster of an upstream presents the local service's leaf,
//     sends Consul's SNI for the target and accepts only the target's
//     SPIFFE ID (a failover target's service too: its endpoints are in the
//     same cluster).
//
// Proxyless gRPC clients dial service instances directly, not sidecars, so
// their clusters stay plaintext.

// ErrCANotReady is wrapped by the error of a sidecar's translation while
// the Connect CA state it needs (trust domain, roots, the service's leaf
// certificate) is not known yet. Serving a sidecar without it would mean
// either plaintext or TLS that cannot complete, so the proxy gets no
// configuration until it is known (or keeps the one it has).
var ErrCANotReady = errors.New("the Connect CA state is not known yet")

// Names and values of the mesh's TLS.
const (
	tlsTransportSocketName = "envoy.transport_sockets.tls"
	// RootsSecretName is the SDS secret holding the trust bundle.
	RootsSecretName = "roots"
	// LeafSecretPrefix prefixes the service name in the SDS secret holding
	// the service's leaf certificate and key.
	LeafSecretPrefix = "leaf:"
	// meshTLSVersion is the minimum inside the mesh.
	meshTLSVersion = tlsv3.TlsParameters_TLSv1_3
)

// LeafSecretName is the SDS secret name of service's leaf certificate.
func LeafSecretName(service string) string { return LeafSecretPrefix + service }

// SpiffeID is the URI SAN Consul's CA puts in service's leaf certificates
// (Consul CE: namespace and partition default).
func SpiffeID(trustDomain, datacenter, service string) string {
	return "spiffe://" + trustDomain + "/ns/default/dc/" + datacenter + "/svc/" + service
}

// serviceSNI is the server name Consul's sidecars send to t (connect.ServiceSNI
// for the default namespace and partition).
func serviceSNI(t target, datacenter, trustDomain string) string {
	parts := []string{t.service, "default", datacenter, "internal", trustDomain}
	if t.subset != "" {
		parts = append([]string{t.subset}, parts...)
	}
	return strings.Join(parts, ".")
}

// caReady checks that the mesh has what a sidecar of service needs for
// mTLS; the error wraps ErrCANotReady.
func caReady(m *model.Mesh, id, service string) error {
	switch {
	case m.TrustDomain == "":
		return fmt.Errorf("translate: proxy %q: %w: no trust domain", id, ErrCANotReady)
	case m.Roots == nil || !hasRoot(m.Roots):
		return fmt.Errorf("translate: proxy %q: %w: no CA roots", id, ErrCANotReady)
	case m.Datacenter == "":
		return fmt.Errorf("translate: proxy %q: %w: no datacenter", id, ErrCANotReady)
	}
	leaf := m.Leaves[service]
	if leaf == nil || leaf.CertPEM == "" || leaf.PrivateKeyPEM == "" {
		return fmt.Errorf("translate: proxy %q: %w: no leaf certificate for service %q", id, ErrCANotReady, service)
	}
	return nil
}

func hasRoot(roots *api.CARootList) bool {
	for _, r := range roots.Roots {
		if r != nil && strings.TrimSpace(r.RootCertPEM) != "" {
			return true
		}
	}
	return false
}

// rootsSecret is the trust bundle: every listed root, in Consul's order,
// each ending in a newline.
func rootsSecret(roots *api.CARootList) *tlsv3.Secret {
	var b strings.Builder
	for _, r := range roots.Roots {
		if r == nil || strings.TrimSpace(r.RootCertPEM) == "" {
			continue
		}
		b.WriteString(withNewline(r.RootCertPEM))
	}
	return &tlsv3.Secret{
		Name: RootsSecretName,
		Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			TrustedCa: inlineString(b.String()),
		}},
	}
}

// leafSecret is service's certificate chain (Consul appends the
// intermediates it needs) and private key.
func leafSecret(service string, leaf *api.LeafCert) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: LeafSecretName(service),
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: inlineString(withNewline(leaf.CertPEM)),
			PrivateKey:       inlineString(withNewline(leaf.PrivateKeyPEM)),
		}},
	}
}

func withNewline(s string) string {
	if strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

func inlineString(s string) *corev3.DataSource {
	return &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: s}}
}

// sdsSecret refers to secret name on the ADS stream.
func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

// meshCommonTLS is what both sides share: TLS 1.3 and the local leaf.
func meshCommonTLS(service string) *tlsv3.CommonTlsContext {
	return &tlsv3.CommonTlsContext{
		TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: meshTLSVersion},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(LeafSecretName(service))},
	}
}

// inboundTLS is public_listener's transport socket for a sidecar of
// service: a client certificate chained to the roots is required. Which
// caller may do what is the RBAC filter's business.
func inboundTLS(service string) (*corev3.TransportSocket, error) {
	common := meshCommonTLS(service)
	common.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
		ValidationContextSdsSecretConfig: sdsSecret(RootsSecretName),
	}
	return transportSocket(&tlsv3.DownstreamTlsContext{
		CommonTlsContext:         common,
		RequireClientCertificate: wrapperspb.Bool(true),
	})
}

// upstreamTLS is the transport socket of a cluster that local's sidecars
// use to reach res: the local leaf, SNI for the target, and the roots from
// SDS combined with the SPIFFE IDs the peer may have.
func upstreamTLS(m *model.Mesh, local string, res *resolution) (*corev3.TransportSocket, error) {
	var sans []*tlsv3.SubjectAltNameMatcher
	seen := map[string]bool{}
	for _, t := range append([]target{res.target}, res.failover...) {
		if seen[t.service] {
			continue
		}
		seen[t.service] = true
		sans = append(sans, &tlsv3.SubjectAltNameMatcher{
			SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{
				Exact: SpiffeID(m.TrustDomain, m.Datacenter, t.service),
			}},
		})
	}
	common := meshCommonTLS(local)
	common.ValidationContextType = &tlsv3.CommonTlsContext_CombinedValidationContext{
		CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
			DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sans},
			ValidationContextSdsSecretConfig: sdsSecret(RootsSecretName),
		},
	}
	return transportSocket(&tlsv3.UpstreamTlsContext{
		CommonTlsContext: common,
		Sni:              serviceSNI(res.target, m.Datacenter, m.TrustDomain),
	})
}

// transportSocket wraps a TLS context. Its error is the encoding's.
func transportSocket(ctx proto.Message) (*corev3.TransportSocket, error) {
	cfg, err := marshalAny(ctx)
	if err != nil {
		return nil, err
	}
	return &corev3.TransportSocket{
		Name:       tlsTransportSocketName,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: cfg},
	}, nil
}
