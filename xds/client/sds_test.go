package client_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/outrigger-mesh/outrigger/xds/client"
	"github.com/outrigger-mesh/outrigger/xds/xdstest"
)

func sdsAds(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: ads()}
}

// tlsListener is listener() with a DownstreamTlsContext taking cert and
// the trust bundle roots over ADS.
func tlsListener(t *testing.T, name, route string, port uint32, cert, roots string) *listenerv3.Listener {
	l := listener(t, name, route, port)
	l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, &tlsv3.DownstreamTlsContext{
			CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsAds(cert), {Name: "static-not-subscribed"}},
				ValidationContextType:          &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sdsAds(roots)},
			},
		})}}
	return l
}

// tlsEDSCluster is an EDS cluster whose UpstreamTlsContext takes cert and,
// combined with a default, roots over ADS.
func tlsEDSCluster(t *testing.T, name, cert, roots string) *clusterv3.Cluster {
	c := edsCluster(name)
	c.TransportSocket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls",
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, &tlsv3.UpstreamTlsContext{
			CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsAds(cert)},
				ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{},
					ValidationContextSdsSecretConfig: sdsAds(roots),
				}},
			},
		})}}
	return c
}

func sdsSecret(name, pem string) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: pem}},
	}}}
}

func secretsOf(r *client.Resources) string {
	var out []string
	for _, s := range r.Secrets {
		v := "-"
		if s.GetValidationContext() != nil {
			v = s.GetValidationContext().GetTrustedCa().GetInlineString()
		}
		out = append(out, s.GetName()+"="+v)
	}
	return strings.Join(out, " ")
}

// Secrets are subscribed by the names listeners and clusters give with
// sds_config.ads (and the static names), warm what needs them, and a
// change of a secret alone reaches Apply.
func TestSecretsFollowListenersAndClusters(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.Start(t)
		set(t, srv, "v1",
			tlsListener(t, "L1", "R1", 10001, "l-cert", "roots"), route("R1", "/", "C1"),
			tlsEDSCluster(t, "C1", "c-cert", "roots"), cla("C1", 9001))
		tgt := newTarget(t)
		cfg := baseConfig(t, srv.Conn(), delta)
		cfg.StaticSecrets = []string{"boot"}
		c := client.New(cfg, tgt)
		run(t, c)
		eventually(t, "a secrets subscription with every name", func() bool {
			subscribed := map[string]bool{} // delta: subscriptions add up
			for _, r := range srv.Requests() {
				if r.TypeURL != resource.SecretType {
					continue
				}
				if !r.Delta {
					subscribed = map[string]bool{}
				}
				for _, n := range append(r.ResourceNames, r.Subscribe...) {
					subscribed[n] = true
				}
			}
			return slices.Equal(slices.Sorted(maps.Keys(subscribed)), []string{"boot", "c-cert", "l-cert", "roots"})
		})
		if got, _ := tgt.applies(); len(got) > 0 {
			t.Fatalf("applied before the secrets came: %s", describe(got[0]))
		}
		set(t, srv, "v2",
			tlsListener(t, "L1", "R1", 10001, "l-cert", "roots"), route("R1", "/", "C1"),
			tlsEDSCluster(t, "C1", "c-cert", "roots"), cla("C1", 9001),
			sdsSecret("boot", "b1"), sdsSecret("c-cert", "c1"), sdsSecret("l-cert", "l1"), sdsSecret("roots", "r1"))
		got := tgt.waitApply(func(*client.Resources) bool { return true })
		if s := secretsOf(got); s != "boot=b1 c-cert=c1 l-cert=l1 roots=r1" {
			t.Fatalf("secrets applied: %s", s)
		}
		set(t, srv, "v3",
			tlsListener(t, "L1", "R1", 10001, "l-cert", "roots"), route("R1", "/", "C1"),
			tlsEDSCluster(t, "C1", "c-cert", "roots"), cla("C1", 9001),
			sdsSecret("boot", "b1"), sdsSecret("c-cert", "c1"), sdsSecret("l-cert", "l1"), sdsSecret("roots", "r2"))
		got = tgt.waitApply(func(r *client.Resources) bool { return strings.Contains(secretsOf(r), "roots=r2") })
		// The status follows the apply (the ACK comes after it).
		eventually(t, "secret status v3", func() bool {
			st := c.Status().Types[resource.SecretType]
			return st.Resources == 4 && (st.Version == "v3" || delta)
		})
		// The cluster goes: its secret is dropped.
		set(t, srv, "v4",
			tlsListener(t, "L1", "R1", 10001, "l-cert", "roots"), route("R1", "/", "C1"),
			sdsSecret("boot", "b1"), sdsSecret("l-cert", "l1"), sdsSecret("roots", "r2"))
		got = tgt.waitApply(func(r *client.Resources) bool { return len(r.Clusters) == 0 })
		if s := secretsOf(got); s != "boot=b1 l-cert=l1 roots=r2" {
			t.Fatalf("after the cluster left: %s", s)
		}
	})
}

// A rejected secret NACKs its response with the reason; the secrets in
// force stay.
func TestSecretRejectionKeepsTheOld(t *testing.T) {
	modes(t, func(t *testing.T, delta bool) {
		srv := xdstest.Start(t)
		l := tlsListener(t, "L1", "R1", 10001, "cert", "roots")
		set(t, srv, "v1", l, route("R1", "/", "C1"), sdsSecret("cert", "good"), sdsSecret("roots", "r"))
		tgt := newTarget(t)
		tgt.check = func(typeURL string, m proto.Message) error {
			if s, ok := m.(*tlsv3.Secret); ok && s.GetValidationContext().GetTrustedCa().GetInlineString() == "bad" {
				return errors.New("bad PEM")
			}
			return nil
		}
		c := client.New(baseConfig(t, srv.Conn(), delta), tgt)
		run(t, c)
		tgt.waitApply(func(r *client.Resources) bool { return secretsOf(r) == "cert=good roots=r" })
		set(t, srv, "v2", l, route("R1", "/", "C1"), sdsSecret("cert", "bad"), sdsSecret("roots", "r"))
		nack, err := srv.WaitRequest(waitFor, func(r xdstest.Request) bool { return r.TypeURL == resource.SecretType && r.IsNACK() })
		if err != nil {
			t.Fatal(err)
		}
		if msg := nack.ErrorDetail.GetMessage(); !strings.Contains(msg, `secret "cert": bad PEM`) {
			t.Fatalf("NACK detail %q", msg)
		}
		if s := secretsOf(tgt.last()); s != "cert=good roots=r" {
			t.Fatalf("in force after the NACK: %s", s)
		}
		eventually(t, "the NACK in the status", func() bool {
			return strings.Contains(c.Status().Types[resource.SecretType].LastError, "bad PEM")
		})
	})
}
