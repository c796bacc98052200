package secret

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// Certs are the certificates a TLS context presents: Static ones
// (tls_certificates), or the ones in Slots (tls_certificate_sds_secret_configs),
// read on every handshake.
type Certs struct {
	Static []tls.Certificate
	Slots  []*Slot
}

// current returns the certificates in force. A slot without a
// certificate is an error: Envoy does not serve a context whose secret
// has not arrived.
func (c *Certs) current() ([]*tls.Certificate, error) {
	if len(c.Slots) == 0 {
		out := make([]*tls.Certificate, len(c.Static))
		for i := range c.Static {
			out[i] = &c.Static[i]
		}
		return out, nil
	}
	out := make([]*tls.Certificate, 0, len(c.Slots))
	for _, sl := range c.Slots {
		sec := sl.Load()
		switch {
		case sec == nil:
			return nil, fmt.Errorf("certificate secret %q is not available yet", sl.key.Name)
		case sec.Certificate == nil:
			return nil, fmt.Errorf("secret %q holds no tls_certificate", sl.key.Name)
		}
		out = append(out, sec.Certificate)
	}
	return out, nil
}

// forServer picks the certificate for a ClientHello: the first the client
// supports, else the first.
func (c *Certs) forServer(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	certs, err := c.current()
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("no certificate")
	}
	for _, cert := range certs {
		if hello.SupportsCertificate(cert) == nil {
			return cert, nil
		}
	}
	return certs[0], nil
}

// Validator checks a peer's certificate against a validation context: a
// static one (validation_context, or combined_validation_context's
// default), one from a slot (validation_context_sds_secret_config), or
// both merged.
type Validator struct {
	static *Validation
	slot   *Slot
	usage  x509.ExtKeyUsage
	merged atomic.Pointer[mergedValidation]
}

type mergedValidation struct {
	from *Secret
	v    *Validation
}

// NewValidator validates against static merged with slot's secret (either
// may be nil, not both), requiring usage in the peer's chain
// (x509.ExtKeyUsageServerAuth upstream, ClientAuth downstream).
func NewValidator(static *Validation, slot *Slot, usage x509.ExtKeyUsage) *Validator {
	return &Validator{static: static, slot: slot, usage: usage}
}

// validation returns the context in force.
func (v *Validator) validation() (*Validation, error) {
	if v.slot == nil {
		return v.static, nil
	}
	sec := v.slot.Load()
	switch {
	case sec == nil:
		return nil, fmt.Errorf("validation context secret %q is not available yet", v.slot.key.Name)
	case sec.Validation == nil:
		return nil, fmt.Errorf("secret %q holds no validation_context", v.slot.key.Name)
	}
	if m := v.merged.Load(); m != nil && m.from == sec {
		return m.v, nil
	}
	m := &mergedValidation{from: sec, v: v.static.Merge(sec.Validation)}
	v.merged.Store(m)
	return m.v, nil
}

// Verify checks chain (the peer's leaf first) against the trust bundle in
// force and the SAN matchers.
func (v *Validator) Verify(chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("peer presented no certificate")
	}
	val, err := v.validation()
	if err != nil {
		return err
	}
	if val == nil || val.Roots == nil {
		return errors.New("no trusted CA to verify the peer certificate with")
	}
	opts := x509.VerifyOptions{Roots: val.Roots, KeyUsages: []x509.ExtKeyUsage{v.usage}}
	if len(chain) > 1 {
		opts.Intermediates = x509.NewCertPool()
		for _, c := range chain[1:] {
			opts.Intermediates.AddCert(c)
		}
	}
	if _, err := chain[0].Verify(opts); err != nil {
		return err
	}
	if len(val.SANs) == 0 {
		return nil
	}
	for i := range val.SANs {
		if val.SANs[i].Matches(chain[0]) {
			return nil
		}
	}
	return &SANError{Cert: chain[0], Matchers: val.SANs}
}

// SANError is a peer certificate whose SANs match none of the matchers.
type SANError struct {
	Cert     *x509.Certificate
	Matchers []SANMatcher
}

// Error lists the certificate's SANs and the matchers.
func (e *SANError) Error() string {
	var sans []string
	for _, u := range e.Cert.URIs {
		sans = append(sans, "URI:"+u.String())
	}
	for _, n := range e.Cert.DNSNames {
		sans = append(sans, "DNS:"+n)
	}
	for _, m := range e.Cert.EmailAddresses {
		sans = append(sans, "EMAIL:"+m)
	}
	for _, ip := range e.Cert.IPAddresses {
		sans = append(sans, "IP:"+ip.String())
	}
	var want []string
	for _, m := range e.Matchers {
		want = append(want, m.Type.String()+" "+m.Match.String())
	}
	return fmt.Sprintf("peer certificate SANs [%s] match none of [%s]", strings.Join(sans, " "), strings.Join(want, "; "))
}

// ClientAuth is the server's demand for a client certificate.
type ClientAuth uint8

const (
	// NoClientCert asks for none.
	NoClientCert ClientAuth = iota
	// VerifyClientCertIfGiven verifies a certificate the client presents.
	VerifyClientCertIfGiven
	// RequireClientCert refuses a client without a valid certificate.
	RequireClientCert
)

// ServerConfig returns base (versions, ALPN) with certs presented and,
// with v set, client certificates verified by v, all read per handshake.
// base is not modified.
func ServerConfig(base *tls.Config, certs Certs, v *Validator, auth ClientAuth) *tls.Config {
	cfg := base.Clone()
	if len(certs.Slots) == 0 {
		cfg.Certificates = certs.Static
	} else {
		cfg.Certificates = nil
		cfg.GetCertificate = certs.forServer
	}
	if v == nil || auth == NoClientCert {
		return cfg
	}
	cfg.ClientAuth = tls.RequestClientCert
	if auth == RequireClientCert {
		cfg.ClientAuth = tls.RequireAnyClientCert
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			if auth == RequireClientCert {
				return errors.New("client presented no certificate")
			}
			return nil
		}
		return v.Verify(cs.PeerCertificates)
	}
	return cfg
}

// ClientConfig returns base (versions, server name) presenting certs (the
// first; none when empty) and, with v set, verifying the server's
// certificate by v (without a host name check, as Envoy); without v the
// server is not verified. Both are read per handshake. base is not
// modified.
func ClientConfig(base *tls.Config, certs Certs, v *Validator) *tls.Config {
	cfg := base.Clone()
	cfg.Certificates = nil
	cfg.InsecureSkipVerify = true // v verifies, without a host name
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		cs, err := certs.current()
		if err != nil {
			return nil, err
		}
		if len(cs) == 0 {
			return &tls.Certificate{}, nil // send none
		}
		return cs[0], nil
	}
	if v != nil {
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			return v.Verify(cs.PeerCertificates)
		}
	}
	return cfg
}

// PeerURISAN returns the first URI SAN of the peer's leaf certificate — a
// SPIFFE ID such as spiffe://<trust-domain>/ns/default/dc/dc1/svc/web —
// or "" for a connection without one (plaintext, no client certificate).
// On a listener that verifies client certificates (or a cluster that
// verifies the server), the certificate was verified before the
// connection was served.
func PeerURISAN(cs *tls.ConnectionState) string {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return ""
	}
	for _, u := range cs.PeerCertificates[0].URIs {
		return u.String()
	}
	return ""
}
