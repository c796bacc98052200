package resource

import "google.golang.org/protobuf/reflect/protoreflect"

// Secret is the SDS resource: a certificate with its key, or a
// validation context (trust bundle and SAN matchers).
const Secret protoreflect.FullName = "envoy.extensions.transport_sockets.tls.v3.Secret"

// The SDS feature's part of the support table: Secret resources (over
// ADS, in files, in static_resources) and the TLS context fields that
// reference them or match the peer's SANs (see docs/mtls.md).
var (
	sdsExtensions []Extension
	sdsMessages   = []Message{
		{"envoy.config.bootstrap.v3.Bootstrap.StaticResources", map[string]Field{
			"secrets": note(supported, "referenced by name from an SdsSecretConfig without sds_config"),
		}},
		{Secret, map[string]Field{
			"name":               supported,
			"tls_certificate":    supported,
			"validation_context": supported,
		}},
		{"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext", map[string]Field{
			"tls_certificate_sds_secret_configs":   note(supported, "not together with tls_certificates; a client takes one"),
			"validation_context_sds_secret_config": supported,
			"combined_validation_context":          note(supported, "the SDS context is merged over the default one, as Envoy does"),
		}},
		{"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext", map[string]Field{
			"default_validation_context":           supported,
			"validation_context_sds_secret_config": supported,
		}},
		{"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig", map[string]Field{
			"name":       supported,
			"sds_config": note(supported, "ads, or path_config_source; unset names a static secret"),
		}},
		{"envoy.config.core.v3.ConfigSource", map[string]Field{
			"path_config_source": note(supported, "sds_config only: a DiscoveryResponse of Secrets in YAML or JSON, re-read when it changes (checked at most once a second, on handshakes)"),
		}},
		{"envoy.config.core.v3.PathConfigSource", map[string]Field{
			"path": supported,
		}},
		{"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext", map[string]Field{
			"match_typed_subject_alt_names": note(supported, "checked on the peer's leaf: the server's upstream, the client's downstream"),
		}},
		{"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher", map[string]Field{
			"san_type": enums("URI", "DNS", "EMAIL", "IP_ADDRESS"),
			"matcher":  supported,
		}},
	}
)
