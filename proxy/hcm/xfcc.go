package hcm

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"net/url"
	"strings"
)

// ClientCertMode is the connection manager's forward_client_cert_details:
// what happens to x-forwarded-client-cert (XFCC) on the way upstream.
type ClientCertMode uint8

const (
	// ClientCertSanitize removes XFCC (Envoy's default), so a client can
	// never claim an identity it did not prove.
	ClientCertSanitize ClientCertMode = iota
	// ClientCertForwardOnly forwards XFCC as it came when the client
	// connection is mutual TLS, and removes it otherwise.
	ClientCertForwardOnly
	// ClientCertAppendForward appends this hop's element when the client
	// connection is mutual TLS, and removes XFCC otherwise.
	ClientCertAppendForward
	// ClientCertSanitizeSet replaces XFCC with this hop's element when
	// the client connection is mutual TLS, and removes it otherwise.
	ClientCertSanitizeSet
	// ClientCertAlwaysForwardOnly forwards XFCC as it came, always.
	ClientCertAlwaysForwardOnly
)

// ClientCert configures XFCC: forward_client_cert_details and
// set_current_client_cert_details. By (the proxy's own URI SAN, from
// Deps.LocalCertificate) and Hash (SHA-256 of the client's certificate)
// are always in an element; the flags add the rest, in Envoy's order.
type ClientCert struct {
	Mode ClientCertMode
	// Subject, Cert, Chain, DNS and URI: set_current_client_cert_details.
	Subject, Cert, Chain, DNS, URI bool
}

const xfccHeader = "X-Forwarded-Client-Cert"

// clientCert applies the XFCC rules to a request's headers.
func (h *Handler) clientCert(r *http.Request) {
	mode := h.cfg.ClientCert.Mode
	if mode == ClientCertAlwaysForwardOnly {
		return
	}
	mtls := r.TLS != nil && len(r.TLS.PeerCertificates) > 0
	if mode == ClientCertSanitize || !mtls {
		delete(r.Header, xfccHeader)
		return
	}
	switch mode {
	case ClientCertAppendForward:
		el := h.clientCertElement(r.TLS.PeerCertificates)
		if prev := r.Header.Values(xfccHeader); len(prev) > 0 {
			el = strings.Join(prev, ",") + "," + el
		}
		r.Header[xfccHeader] = []string{el}
	case ClientCertSanitizeSet:
		r.Header[xfccHeader] = []string{h.clientCertElement(r.TLS.PeerCertificates)}
	}
}

// clientCertElement is this hop's XFCC element for the client's verified
// chain (leaf first): By, Hash, Cert, Chain, Subject, URI, DNS.
func (h *Handler) clientCertElement(chain []*x509.Certificate) string {
	cc := h.cfg.ClientCert
	leaf := chain[0]
	var b strings.Builder
	sep := func() {
		if b.Len() > 0 {
			b.WriteByte(';')
		}
	}
	if h.deps.LocalCertificate != nil {
		if local := h.deps.LocalCertificate(); local != nil {
			for _, u := range local.URIs {
				sep()
				b.WriteString("By=")
				b.WriteString(xfccValue(u.String()))
			}
		}
	}
	sum := sha256.Sum256(leaf.Raw)
	sep()
	b.WriteString("Hash=")
	b.WriteString(hex.EncodeToString(sum[:]))
	if cc.Cert {
		sep()
		b.WriteString(`Cert="`)
		b.WriteString(url.QueryEscape(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw}))))
		b.WriteByte('"')
	}
	if cc.Chain {
		var all []byte
		for _, c := range chain {
			all = append(all, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
		}
		sep()
		b.WriteString(`Chain="`)
		b.WriteString(url.QueryEscape(string(all)))
		b.WriteByte('"')
	}
	if cc.Subject {
		sep()
		b.WriteString(`Subject="`)
		b.WriteString(strings.ReplaceAll(leaf.Subject.String(), `"`, `\"`))
		b.WriteByte('"')
	}
	if cc.URI {
		for _, u := range leaf.URIs {
			sep()
			b.WriteString("URI=")
			b.WriteString(xfccValue(u.String()))
		}
	}
	if cc.DNS {
		for _, d := range leaf.DNSNames {
			sep()
			b.WriteString("DNS=")
			b.WriteString(xfccValue(d))
		}
	}
	return b.String()
}

// xfccValue quotes a value that holds one of XFCC's separators.
func xfccValue(v string) string {
	if strings.ContainsAny(v, `,;="`) {
		return `"` + strings.ReplaceAll(v, `"`, `\"`) + `"`
	}
	return v
}
