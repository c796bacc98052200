package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"sigs.k8s.io/yaml"

	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/secret"
	"github.com/outrigger-mesh/outrigger/proxy/snapshot/matchconv"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// secretKind is what a reference expects its secret to hold.
type secretKind uint8

const (
	wantCertificate secretKind = iota
	wantValidation
)

// sdsSlot resolves an SdsSecretConfig to the slot its TLS context reads:
// without sds_config a static secret (static_resources.secrets), which
// must exist; with ads, a secret that comes over ADS (the xDS client
// subscribes to it and warms what needs it); with path_config_source, a
// secret of a watched file, which is read now and must hold it.
func (c *converter) sdsSlot(p string, ref *tlsv3.SdsSecretConfig, want secretKind) *secret.Slot {
	name := ref.GetName()
	if name == "" {
		c.fail(resource.Join(p, "name"), "a secret name is required")
		return nil
	}
	src := ref.GetSdsConfig()
	var k secret.Key
	switch {
	case src == nil:
		k = secret.Key{Source: secret.SourceStatic, Name: name}
		if !c.checkStatic {
			break
		}
		sec, pending := c.pendingSecrets[k]
		if !pending {
			sec = c.store().Get(k)
		}
		if sec == nil {
			c.fail(resource.Join(p, "name"), "static secret %q is not defined (static_resources.secrets)", name)
			return nil
		}
		c.checkSecretKind(p, name, sec, want)
	case src.GetAds() != nil:
		k = secret.Key{Source: secret.SourceADS, Name: name}
		if c.adsSecrets == nil {
			c.adsSecrets = map[string]bool{}
		}
		c.adsSecrets[name] = true
	case src.GetPathConfigSource() != nil:
		path := src.GetPathConfigSource().GetPath()
		pp := resource.Join(p, "sds_config.path_config_source.path")
		if err := c.store().WatchFile(path, LoadSecretsFile); err != nil {
			c.fail(pp, "%v", err)
			return nil
		}
		k = secret.Key{Source: secret.SourceFile(path), Name: name}
		sec := c.store().Get(k)
		if sec == nil {
			c.fail(pp, "%s holds no secret %q", path, name)
			return nil
		}
		c.checkSecretKind(p, name, sec, want)
	default:
		c.fail(resource.Join(p, "sds_config"), "ads or path_config_source is required")
		return nil
	}
	return c.store().Slot(k)
}

func (c *converter) checkSecretKind(p, name string, sec *secret.Secret, want secretKind) {
	switch {
	case want == wantCertificate && sec.Certificate == nil:
		c.fail(p, "secret %q holds no tls_certificate", name)
	case want == wantValidation && sec.Validation == nil:
		c.fail(p, "secret %q holds no validation_context", name)
	}
}

// store is the converter's secret store, a new one if none was given.
func (c *converter) store() *secret.Store {
	if c.secretStore == nil {
		c.secretStore = secret.NewStore(secret.Options{})
	}
	return c.secretStore
}

// sanStringMatcher converts a StringMatcher with matchconv (regexes anchored).
func (c *converter) sanStringMatcher(p string, m *matcherv3.StringMatcher) secret.StringMatcher {
	rm := matchconv.Conv{Fail: c.fail, Anchor: true}.StringMatcher(p, m)
	out := secret.StringMatcher{Value: rm.Value, IgnoreCase: rm.IgnoreCase, Regex: rm.Regex}
	switch rm.Kind {
	case router.StringPrefix:
		out.Kind = secret.MatchPrefix
	case router.StringSuffix:
		out.Kind = secret.MatchSuffix
	case router.StringContains:
		out.Kind = secret.MatchContains
	case router.StringRegex:
		out.Kind = secret.MatchRegex
	}
	if out.Kind != secret.MatchExact && out.Kind != secret.MatchRegex && out.Value == "" {
		c.fail(p, "the %s value must not be empty", rm.Kind)
	}
	return out
}

// secret converts a Secret: a tls_certificate or a validation_context. A
// Secret with neither (only its name: one the xDS client gave up on or the
// server removed) converts to nil, an unavailable secret.
func (c *converter) secret(p string, s *tlsv3.Secret) *secret.Secret {
	switch t := s.GetType().(type) {
	case *tlsv3.Secret_TlsCertificate:
		cert, ok := c.certificate(resource.Join(p, "tls_certificate"), t.TlsCertificate)
		if !ok {
			return nil
		}
		return &secret.Secret{Certificate: cert}
	case *tlsv3.Secret_ValidationContext:
		return &secret.Secret{Validation: c.validationContext(resource.Join(p, "validation_context"), t.ValidationContext, true)}
	case nil:
		return nil
	}
	c.fail(p, "only tls_certificate and validation_context secrets are supported")
	return nil
}

// secrets converts secrets of one source into c.pendingSecrets, refusing
// a name given twice. What is pending is put in force once the whole
// build succeeds.
func (c *converter) convertSecrets(p, source string, list []*tlsv3.Secret) {
	if c.pendingSecrets == nil {
		c.pendingSecrets = map[secret.Key]*secret.Secret{}
	}
	at := map[string]string{}
	for i, s := range list {
		sp := resource.Index(p, i)
		if s.GetName() == "" {
			c.fail(resource.Join(sp, "name"), "a secret needs a name")
			continue
		}
		if prev, dup := at[s.GetName()]; dup {
			c.fail(resource.Join(sp, "name"), "secret %q is also the name of %s", s.GetName(), prev)
			continue
		}
		at[s.GetName()] = sp
		c.pendingSecrets[secret.Key{Source: source, Name: s.GetName()}] = c.secret(sp, s)
	}
}

// ConvertSecret converts one Secret that passed resource.Validate (nil
// for a Secret with only its name). Error paths are relative to it.
func ConvertSecret(s *tlsv3.Secret) (*secret.Secret, error) {
	c := newConverter(Options{})
	out := c.secret("", s)
	return out, c.err()
}

// LoadSecretsFile parses the content of an SDS file
// (sds_config.path_config_source): a DiscoveryResponse in YAML or JSON
// whose resources are Secrets, as Envoy reads it. Each Secret is
// validated (ValidateAll, the support table) and converted; every error
// names its field path.
func LoadSecretsFile(data []byte) (map[string]*secret.Secret, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	js = bytes.TrimSpace(js)
	if len(js) == 0 || string(js) == "null" {
		return nil, errors.New("empty secrets file")
	}
	var resp discoveryv3.DiscoveryResponse
	if err := protojson.Unmarshal(js, &resp); err != nil {
		return nil, fmt.Errorf("not a DiscoveryResponse of Secrets: %w", err)
	}
	if len(resp.GetResources()) == 0 {
		return nil, errors.New("resources: no secret")
	}
	c := newConverter(Options{})
	var list []*tlsv3.Secret
	for i, a := range resp.GetResources() {
		rp := resource.Index("resources", i)
		s := new(tlsv3.Secret)
		if !c.unpack(rp, a, s) {
			continue
		}
		if _, err := resource.Validate(rp, s); err != nil {
			c.failErr(err)
			continue
		}
		list = append(list, s)
	}
	c.convertSecrets("resources", "file", list)
	if err := c.err(); err != nil {
		return nil, err
	}
	out := make(map[string]*secret.Secret, len(c.pendingSecrets))
	for k, sec := range c.pendingSecrets {
		if sec == nil {
			return nil, fmt.Errorf("secret %q: tls_certificate or validation_context is required", k.Name)
		}
		out[k.Name] = sec
	}
	return out, nil
}

// sortedNames returns the keys of a set, sorted.
func sortedNames(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
