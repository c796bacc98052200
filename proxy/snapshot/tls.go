package snapshot

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// serverTLS builds the listener side of a DownstreamTlsContext. Without
// alpn_protocols, ALPN follows the codec so TLS clients can negotiate h2.
func (c *converter) serverTLS(p string, d *tlsv3.DownstreamTlsContext, codec listener.Codec) *tls.Config {
	cp := resource.Join(p, "common_tls_context")
	common := d.GetCommonTlsContext()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13}
	c.tlsVersions(resource.Join(cp, "tls_params"), common.GetTlsParams(), cfg)
	cfg.Certificates = c.certificates(cp, common.GetTlsCertificates())
	if len(cfg.Certificates) == 0 {
		c.fail(resource.Join(cp, "tls_certificates"), "a server needs at least one certificate")
	}
	if vc := common.GetValidationContext(); vc != nil {
		cfg.ClientCAs = c.certPool(resource.Join(cp, "validation_context.trusted_ca"), vc.GetTrustedCa())
		// Envoy verifies a client certificate when one is presented.
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	if d.GetRequireClientCertificate().GetValue() {
		if cfg.ClientCAs == nil {
			c.fail(resource.Join(p, "require_client_certificate"), "needs common_tls_context.validation_context.trusted_ca")
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
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
	return cfg
}

// upstreamTLS builds the client side of an UpstreamTlsContext. Like Envoy,
// it verifies the chain against trusted_ca but not the host name, and
// verifies nothing without a validation_context.
func (c *converter) upstreamTLS(p string, u *tlsv3.UpstreamTlsContext) *tls.Config {
	cp := resource.Join(p, "common_tls_context")
	common := u.GetCommonTlsContext()
	// Envoy's client default is TLS 1.2 at most.
	cfg := &tls.Config{ServerName: u.GetSni(), MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12}
	c.tlsVersions(resource.Join(cp, "tls_params"), common.GetTlsParams(), cfg)
	if len(common.GetAlpnProtocols()) > 0 {
		c.fail(resource.Join(cp, "alpn_protocols"), "is not supported upstream: the cluster's typed_extension_protocol_options choose the protocol")
	}
	certs := c.certificates(cp, common.GetTlsCertificates())
	if len(certs) > 1 {
		c.fail(resource.Join(cp, "tls_certificates"), "a client takes at most one certificate")
	}
	cfg.Certificates = certs
	cfg.InsecureSkipVerify = true
	if vc := common.GetValidationContext(); vc != nil {
		roots := c.certPool(resource.Join(cp, "validation_context.trusted_ca"), vc.GetTrustedCa())
		cfg.VerifyConnection = verifyChain(roots)
		// Unused by Go (InsecureSkipVerify) but compared by the cluster,
		// together with VerifyChainKey, to tell an unchanged config.
		cfg.RootCAs = roots
	}
	return cfg
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

func (c *converter) certificates(p string, certs []*tlsv3.TlsCertificate) []tls.Certificate {
	var out []tls.Certificate
	for i, tc := range certs {
		cp := resource.Index(resource.Join(p, "tls_certificates"), i)
		chain, ok1 := c.dataSource(resource.Join(cp, "certificate_chain"), tc.GetCertificateChain())
		key, ok2 := c.dataSource(resource.Join(cp, "private_key"), tc.GetPrivateKey())
		if !ok1 || !ok2 {
			continue
		}
		cert, err := tls.X509KeyPair(chain, key)
		if err != nil {
			c.fail(cp, "bad certificate or key: %v", err)
			continue
		}
		out = append(out, cert)
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
