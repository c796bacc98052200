// Package secret holds the certificates and trust bundles of the proxy's
// TLS contexts (Envoy's SDS secrets) and builds the tls.Configs that read
// them on every handshake. A Store maps each secret to a Slot, an atomic
// pointer that the source of the secret (the bootstrap, ADS or a watched
// file) replaces: a new Secret takes effect for the next handshake and
// connections already established keep going. It sees no Envoy protos:
// proxy/snapshot converts them.
package secret

import (
	"crypto/tls"
	"crypto/x509"
	"regexp"
	"strings"
)

// Secret is one secret's content: a certificate with its private key
// (Envoy's tls_certificate) or a validation context (validation_context).
// Exactly one is set.
type Secret struct {
	Certificate *tls.Certificate
	Validation  *Validation
}

// Validation says how to validate a peer certificate: its chain against
// Roots, then its subject alternative names against SANs (any matcher
// matching any SAN of its type accepts; no matchers accept any).
type Validation struct {
	// Roots is the trust bundle (trusted_ca); nil when unset.
	Roots *x509.CertPool
	SANs  []SANMatcher
}

// Merge combines a static validation context with one from a secret as
// Envoy's combined_validation_context does (protobuf merge of the secret's
// over the default): over's Roots replace v's when set, SAN matchers add
// up. Either may be nil.
func (v *Validation) Merge(over *Validation) *Validation {
	switch {
	case v == nil:
		return over
	case over == nil:
		return v
	}
	out := &Validation{Roots: v.Roots, SANs: append(append([]SANMatcher(nil), v.SANs...), over.SANs...)}
	if over.Roots != nil {
		out.Roots = over.Roots
	}
	return out
}

// SANType is the kind of subject alternative name a matcher looks at.
type SANType uint8

// The SAN types of Envoy's SubjectAltNameMatcher we implement.
const (
	SANURI SANType = iota
	SANDNS
	SANEmail
	SANIP
)

// String is the Envoy enum name of the SAN type.
func (t SANType) String() string {
	switch t {
	case SANURI:
		return "URI"
	case SANDNS:
		return "DNS"
	case SANEmail:
		return "EMAIL"
	case SANIP:
		return "IP_ADDRESS"
	}
	return "unknown"
}

// SANMatcher matches the SANs of one type (match_typed_subject_alt_names).
type SANMatcher struct {
	Type  SANType
	Match StringMatcher
}

// Matches reports whether some SAN of m's type in cert matches. An exact
// DNS matcher also matches a wildcard SAN that covers it, as Envoy does.
func (m *SANMatcher) Matches(cert *x509.Certificate) bool {
	switch m.Type {
	case SANURI:
		for _, u := range cert.URIs {
			if m.Match.Matches(u.String()) {
				return true
			}
		}
	case SANDNS:
		for _, n := range cert.DNSNames {
			if m.Match.Kind == MatchExact && !m.Match.IgnoreCase && dnsWildcardMatch(n, m.Match.Value) {
				return true
			}
			if m.Match.Matches(n) {
				return true
			}
		}
	case SANEmail:
		for _, e := range cert.EmailAddresses {
			if m.Match.Matches(e) {
				return true
			}
		}
	case SANIP:
		for _, ip := range cert.IPAddresses {
			if m.Match.Matches(ip.String()) {
				return true
			}
		}
	}
	return false
}

// dnsWildcardMatch reports whether the SAN pattern "*.example.com" covers
// name (one label, not the bare domain), Envoy's dnsNameMatch.
func dnsWildcardMatch(pattern, name string) bool {
	rest, ok := strings.CutPrefix(pattern, "*.")
	if !ok {
		return false
	}
	i := strings.IndexByte(name, '.')
	return i > 0 && strings.EqualFold(name[i+1:], rest)
}

// MatchKind is the form of a StringMatcher.
type MatchKind uint8

// Envoy's StringMatcher forms.
const (
	MatchExact MatchKind = iota
	MatchPrefix
	MatchSuffix
	MatchContains
	MatchRegex
)

// StringMatcher is Envoy's StringMatcher. Regex, set for MatchRegex, must
// match the whole value (the caller anchors it); IgnoreCase folds ASCII
// case and does not apply to Regex.
type StringMatcher struct {
	Kind       MatchKind
	Value      string
	IgnoreCase bool
	Regex      *regexp.Regexp
}

// Matches reports whether s matches.
func (m *StringMatcher) Matches(s string) bool {
	v := m.Value
	if m.IgnoreCase && m.Kind != MatchRegex {
		s, v = strings.ToLower(s), strings.ToLower(v)
	}
	switch m.Kind {
	case MatchExact:
		return s == v
	case MatchPrefix:
		return strings.HasPrefix(s, v)
	case MatchSuffix:
		return strings.HasSuffix(s, v)
	case MatchContains:
		return strings.Contains(s, v)
	case MatchRegex:
		return m.Regex != nil && m.Regex.MatchString(s)
	}
	return false
}

// String describes the matcher for error messages.
func (m *StringMatcher) String() string {
	switch m.Kind {
	case MatchPrefix:
		return "prefix " + m.Value
	case MatchSuffix:
		return "suffix " + m.Value
	case MatchContains:
		return "contains " + m.Value
	case MatchRegex:
		if m.Regex != nil {
			return "regex " + m.Regex.String()
		}
		return "regex"
	}
	return "exact " + m.Value
}
