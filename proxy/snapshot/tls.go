package snapshot

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"os"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/proxy/secret"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// serverTLS builds the listener side of a DownstreamTlsContext. Without
// alpn_protocols, ALPN follows the codec so TLS clients can negotiate h2.
// A context that takes a secret from SDS or matches the client's SANs
// reads its certificates and trust bundle per handshake (proxy/secret).
func (c *converter) serverTLS(p string, d *tlsv3.DownstreamTlsContext, codec listener.Codec) *tls.Config {
	cp := resource.Join(p, "common_tls_context")
	common := d.GetCommonTlsContext()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	c.tlsVersions(resource.Join(cp, "tls_params"), common.GetTlsParams(), cfg)
	cfg.NextProtos = common.GetAlpnProtocols()
	if len(cfg.NextProtos) == 0 {
		switch codec {
		case listener.CodecHTTP1:
			cfg.NextProtos = []string{"http/1.1"}
		case listener.CodecHTTP2:
			cfg.NextProtos = []string{"h2"}
		default:
			cfg.NextProtos = []string{"h2", "http/1.1"}
		}
	}
	certs := c.tlsCertificates(cp, common)
	if len(common.GetTlsCertificates()) == 0 && len(common.GetTlsCertificateSdsSecretConfigs()) == 0 {
		c.fail(resource.Join(cp, "tls_certificates"), "a server needs at least one certificate (tls_certificates or tls_certificate_sds_secret_configs)")
	}
	v := c.validation(cp, common)
	auth := secret.NoClientCert
	if v.set {
		// Envoy verifies a client certificate when one is presented.
		auth = secret.VerifyClientCertIfGiven
	}
	if d.GetRequireClientCertificate().GetValue() {
		if !v.set {
			c.fail(resource.Join(p, "require_client_certificate"), "needs a validation context (common_tls_context.validation_context, validation_context_sds_secret_config or combined_validation_context)")
		}
		auth = secret.RequireClientCert
	}
	if len(certs.Slots) > 0 || v.dynamic() {
		return secret.ServerConfig(cfg, certs, v.validator(x509.ExtKeyUsageClientAuth), auth)
	}
	cfg.Certificates = certs.Static
	if v.set && v.static != nil { // nil: its secret failed to resolve, reported
		cfg.ClientCAs = v.static.Roots
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if auth == secret.RequireClientCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg
}

// upstreamTLS builds the client side of an UpstreamTlsContext. Like Envoy,
// it verifies the chain against trusted_ca but not the host name, and
// verifies nothing without a validation context. A context that takes a
// secret from SDS or matches the server's SANs reads its certificate and
// trust bundle per handshake (proxy/secret); its config carries
// GetClientCertificate, so the cluster compares it only by identity (its
// TLSVerifyKey cannot tell two such configs apart). So that an xDS update
// keeps such a cluster's pool, the same context converts to the same
// shared config (secret.Store.Share) — except under QUIC, whose caller
// adjusts the config it gets (p ends in upstream_tls_context there).
func (c *converter) upstreamTLS(p string, u *tlsv3.UpstreamTlsContext) *tls.Config {
	cp := resource.Join(p, "common_tls_context")
	common := u.GetCommonTlsContext()
	// Envoy's client default is TLS 1.2 at most.
	cfg := &tls.Config{ServerName: u.GetSni(), MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}
	c.tlsVersions(resource.Join(cp, "tls_params"), common.GetTlsParams(), cfg)
	if len(common.GetAlpnProtocols()) > 0 {
		c.fail(resource.Join(cp, "alpn_protocols"), "is not supported upstream: the cluster's typed_extension_protocol_options choose the protocol")
	}
	certs := c.tlsCertificates(cp, common)
	if len(certs.Static)+len(certs.Slots) > 1 {
		c.fail(resource.Join(cp, "tls_certificates"), "a client takes at most one certificate")
	}
	v := c.validation(cp, common)
	if len(certs.Slots) > 0 || v.dynamic() {
		var val *secret.Validator
		if v.set {
			val = v.validator(x509.ExtKeyUsageServerAuth)
		}
		out := secret.ClientConfig(cfg, certs, val)
		if key, ok := shareKey(u); ok && len(c.errs) == 0 && !strings.HasSuffix(p, "upstream_tls_context") {
			out = c.store().Share(key, out)
		}
		return out
	}
	cfg.Certificates = certs.Static
	cfg.InsecureSkipVerify = true
	if v.set && v.static != nil && v.static.Roots != nil {
		roots := v.static.Roots
		cfg.VerifyConnection = verifyChain(roots)
		// Unused by Go (InsecureSkipVerify) but compared by the cluster,
		// together with VerifyChainKey, to tell an unchanged config.
		cfg.RootCAs = roots
	}
	return cfg
}

// shareKey digests an upstream context that reads no file: what its
// config is built from, besides the store's slots. A context with a
// filename is read anew on every conversion and not shared.
func shareKey(u *tlsv3.UpstreamTlsContext) (string, bool) {
	common := u.GetCommonTlsContext()
	sources := []*corev3.DataSource{common.GetValidationContext().GetTrustedCa(),
		common.GetCombinedValidationContext().GetDefaultValidationContext().GetTrustedCa()}
	for _, tc := range common.GetTlsCertificates() {
		sources = append(sources, tc.GetCertificateChain(), tc.GetPrivateKey())
	}
	for _, ds := range sources {
		if ds.GetFilename() != "" {
			return "", false
		}
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(u)
	if err != nil {
		return "", false
	}
	sum := sha256.Sum256(b)
	return "upstream:" + hex.EncodeToString(sum[:]), true
}

// VerifyChainKey is the cluster.Config.TLSVerifyKey of an upstream TLS
// config whose VerifyConnection is verifyChain(RootCAs).
const VerifyChainKey = "verify-chain(RootCAs)"

// verifyChain checks the peer's chain against roots without a host name
// check (InsecureSkipVerify turns off Go's own verification).
func verifyChain(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("upstream presented no certificate")
		}
		inter := x509.NewCertPool()
		for _, ic := range cs.PeerCertificates[1:] {
			inter.AddCert(ic)
		}
		_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		return err
	}
}

func (c *converter) tlsVersions(p string, params *tlsv3.TlsParameters, cfg *tls.Config) {
	version := func(v tlsv3.TlsParameters_TlsProtocol, def uint16) uint16 {
		switch v {
		case tlsv3.TlsParameters_TLSv1_2:
			return tls.VersionTLS12
		case tlsv3.TlsParameters_TLSv1_3:
			return tls.VersionTLS13
		}
		return def
	}
	cfg.MinVersion = version(params.GetTlsMinimumProtocolVersion(), cfg.MinVersion)
	cfg.MaxVersion = version(params.GetTlsMaximumProtocolVersion(), cfg.MaxVersion)
	if params.GetTlsMaximumProtocolVersion() == tlsv3.TlsParameters_TLS_AUTO && cfg.MinVersion > cfg.MaxVersion {
		cfg.MaxVersion = cfg.MinVersion
	}
	if cfg.MinVersion > cfg.MaxVersion {
		c.fail(p, "tls_minimum_protocol_version is above tls_maximum_protocol_version")
	}
}

// tlsCertificates reads a context's certificates: inline (tls_certificates)
// or SDS slots (tls_certificate_sds_secret_configs), not both, as in Envoy.
func (c *converter) tlsCertificates(cp string, common *tlsv3.CommonTlsContext) secret.Certs {
	out := secret.Certs{Static: c.certificates(cp, common.GetTlsCertificates())}
	refs := common.GetTlsCertificateSdsSecretConfigs()
	if len(refs) > 0 && len(common.GetTlsCertificates()) > 0 {
		c.fail(resource.Join(cp, "tls_certificate_sds_secret_configs"), "cannot be combined with tls_certificates")
	}
	for i, ref := range refs {
		if sl := c.sdsSlot(resource.Index(resource.Join(cp, "tls_certificate_sds_secret_configs"), i), ref, wantCertificate); sl != nil {
			out.Slots = append(out.Slots, sl)
		}
	}
	return out
}

func (c *converter) certificates(p string, certs []*tlsv3.TlsCertificate) []tls.Certificate {
	var out []tls.Certificate
	for i, tc := range certs {
		cp := resource.Index(resource.Join(p, "tls_certificates"), i)
		if cert, ok := c.certificate(cp, tc); ok {
			out = append(out, *cert)
		}
	}
	return out
}

// certificate reads one TlsCertificate: its chain and its key, which must
// belong together.
func (c *converter) certificate(p string, tc *tlsv3.TlsCertificate) (*tls.Certificate, bool) {
	chain, ok1 := c.dataSource(resource.Join(p, "certificate_chain"), tc.GetCertificateChain())
	key, ok2 := c.dataSource(resource.Join(p, "private_key"), tc.GetPrivateKey())
	if !ok1 || !ok2 {
		return nil, false
	}
	cert, err := tls.X509KeyPair(chain, key)
	if err != nil {
		c.fail(p, "bad certificate or key: %v", err)
		return nil, false
	}
	return &cert, true
}

// tlsValidation is a context's validation settings, static and from SDS.
type tlsValidation struct {
	set    bool               // some validation context is configured
	static *secret.Validation // validation_context or the combined default
	slot   *secret.Slot       // from SDS
}

// dynamic tells whether validation needs proxy/secret's per-handshake
// check: a trust bundle from SDS, or SAN matchers.
func (v tlsValidation) dynamic() bool {
	return v.slot != nil || (v.static != nil && len(v.static.SANs) > 0)
}

func (v tlsValidation) validator(usage x509.ExtKeyUsage) *secret.Validator {
	if !v.set {
		return nil
	}
	return secret.NewValidator(v.static, v.slot, usage)
}

// validation reads the validation context of common: inline, from SDS,
// or combined (an inline default merged with one from SDS).
func (c *converter) validation(cp string, common *tlsv3.CommonTlsContext) tlsValidation {
	switch vc := common.GetValidationContextType().(type) {
	case *tlsv3.CommonTlsContext_ValidationContext:
		p := resource.Join(cp, "validation_context")
		return tlsValidation{set: true, static: c.validationContext(p, vc.ValidationContext, true)}
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		p := resource.Join(cp, "validation_context_sds_secret_config")
		return tlsValidation{set: true, slot: c.sdsSlot(p, vc.ValidationContextSdsSecretConfig, wantValidation)}
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		p := resource.Join(cp, "combined_validation_context")
		cvc := vc.CombinedValidationContext
		return tlsValidation{
			set:    true,
			static: c.validationContext(resource.Join(p, "default_validation_context"), cvc.GetDefaultValidationContext(), false),
			slot:   c.sdsSlot(resource.Join(p, "validation_context_sds_secret_config"), cvc.GetValidationContextSdsSecretConfig(), wantValidation),
		}
	}
	return tlsValidation{}
}

// validationContext converts a CertificateValidationContext; needCA
// requires trusted_ca (always, except for a combined context's default,
// whose trust bundle may come from SDS).
func (c *converter) validationContext(p string, vc *tlsv3.CertificateValidationContext, needCA bool) *secret.Validation {
	out := &secret.Validation{}
	if vc.GetTrustedCa() != nil || needCA {
		out.Roots = c.certPool(resource.Join(p, "trusted_ca"), vc.GetTrustedCa())
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		mp := resource.Index(resource.Join(p, "match_typed_subject_alt_names"), i)
		sm := secret.SANMatcher{}
		switch m.GetSanType() {
		case tlsv3.SubjectAltNameMatcher_URI:
			sm.Type = secret.SANURI
		case tlsv3.SubjectAltNameMatcher_DNS:
			sm.Type = secret.SANDNS
		case tlsv3.SubjectAltNameMatcher_EMAIL:
			sm.Type = secret.SANEmail
		case tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
			sm.Type = secret.SANIP
		default:
			c.fail(resource.Join(mp, "san_type"), "%s is not supported (URI, DNS, EMAIL or IP_ADDRESS)", m.GetSanType())
			continue
		}
		sm.Match = c.sanStringMatcher(resource.Join(mp, "matcher"), m.GetMatcher())
		out.SANs = append(out.SANs, sm)
	}
	return out
}

func (c *converter) certPool(p string, ds *corev3.DataSource) *x509.CertPool {
	if ds == nil {
		c.fail(p, "is required")
		return nil
	}
	pem, ok := c.dataSource(p, ds)
	if !ok {
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		c.fail(p, "holds no PEM certificate")
		return nil
	}
	return pool
}

// dataSource reads a DataSource: a file (read now, not watched) or inline.
func (c *converter) dataSource(p string, ds *corev3.DataSource) ([]byte, bool) {
	switch s := ds.GetSpecifier().(type) {
	case *corev3.DataSource_Filename:
		b, err := os.ReadFile(s.Filename)
		if err != nil {
			c.fail(resource.Join(p, "filename"), "%v", err)
			return nil, false
		}
		return b, true
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, true
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), true
	}
	c.fail(p, "filename, inline_bytes or inline_string is required")
	return nil, false
}
