package translate

import (
	"errors"
	"strings"
	"testing"
	"time"

	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// The gateway golden cases join the shared ones, so every check of
// support_test.go (determinism, ValidateAll, the proxy's own support
// table, snapshot consistency, route targets) runs on them too.
func init() {
	goldenCases = append(goldenCases,
		// http (two services: Hosts and Consul's default host, a router
		// with a subset) and tcp listeners; JWT with a remote (https)
		// and a local key set; claim header; rate limit with burst;
		// Defaults limits under a service's own.
		goldenCase{"gateway_http", "edge-1"},
		// TLS from files (meta), TLS 1.2 minimum, HTTP/3 twin + alt-svc.
		goldenCase{"gateway_http3", "edge-1"},
		// TLS with the gateway's Connect CA leaf over SDS.
		goldenCase{"gateway_connect_tls", "edge-1"},
		// A gateway without its entry: an empty configuration.
		goldenCase{"gateway_no_entry", "edge-1"},
		// A jwt-provider the entry names is missing: an error.
		goldenCase{"gateway_missing_provider", "edge-1"},
	)
	for _, n := range []string{"gateway_http", "gateway_http3", "gateway_connect_tls", "gateway_no_entry"} {
		fullySupported[n] = true
	}
}

// gatewayMesh is testdata/gateway_http.json with its entry replaced by
// edit's result.
func gatewayMesh(t *testing.T, edit func(e *api.IngressGatewayConfigEntry)) *model.Mesh {
	t.Helper()
	m := loadMesh(t, "gateway_http")
	e := *m.IngressGateways["edge"]
	e.Meta = map[string]string{}
	for k, v := range m.IngressGateways["edge"].Meta {
		e.Meta[k] = v
	}
	edit(&e)
	m.IngressGateways["edge"] = &e
	return m
}

func TestGatewayErrors(t *testing.T) {
	http := func(port int, services ...api.IngressService) api.IngressListener {
		return api.IngressListener{Port: port, Protocol: "http", Services: services}
	}
	svc := func(name string, hosts ...string) api.IngressService {
		return api.IngressService{Name: name, Hosts: hosts}
	}
	cases := []struct {
		name    string
		edit    func(e *api.IngressGatewayConfigEntry)
		wantErr string
	}{
		{"no services", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{{Port: 1, Protocol: "http"}}
		}, "no services"},
		{"wildcard service", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{http(1, svc("*"))}
		}, `wildcard service "*" is not supported`},
		{"unnamed service", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{http(1, svc(""))}
		}, "a service has no name"},
		{"namespace", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{http(1, api.IngressService{Name: "app", Namespace: "team"})}
		}, "namespaces and partitions"},
		{"unknown protocol", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{{Port: 1, Protocol: "udp", Services: []api.IngressService{svc("app")}}}
		}, `protocol "udp" is not supported`},
		{"tcp with two services", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{{Port: 1, Services: []api.IngressService{svc("db"), svc("db")}}}
		}, "exactly one service, not 2"},
		{"http service on a tcp listener", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{{Port: 1, Protocol: "tcp", Services: []api.IngressService{svc("app")}}}
		}, `service "app" has protocol "http", which does not match the listener's "tcp"`},
		{"tcp service on an http listener", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{http(1, svc("db"))}
		}, `service "db" has protocol "tcp"`},
		{"duplicate host", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{http(1, svc("app", "a.example"), svc("api", "A.example"))}
		}, `host "A.example" is given to both "app" and "api"`},
		{"bad wildcard host", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{http(1, svc("app", "a.*.example"))}
		}, "a wildcard may only be the first or the last character"},
		{"empty host", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{http(1, svc("app", ""))}
		}, `host "": empty`},
		{"port clash", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{http(1, svc("app")), http(1, svc("api"))}
		}, "both bind 10.0.0.5:1"},
		{"port out of range", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{http(70000, svc("app"))}
		}, "port 70000 is out of range"},
		{"sds", func(e *api.IngressGatewayConfigEntry) {
			e.TLS = api.GatewayTLSConfig{Enabled: true, SDS: &api.GatewayTLSSDSConfig{ClusterName: "sds", CertResource: "c"}}
		}, "TLS.SDS is not supported"},
		{"service sds", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{http(1, api.IngressService{Name: "app", TLS: &api.GatewayServiceTLSConfig{SDS: &api.GatewayTLSSDSConfig{}}})}
		}, `service "app": TLS.SDS is not supported`},
		{"cipher suites", func(e *api.IngressGatewayConfigEntry) {
			e.TLS = api.GatewayTLSConfig{Enabled: true, CipherSuites: []string{"TLS_AES_128_GCM_SHA256"}}
		}, "TLS.CipherSuites is not supported"},
		{"tls version", func(e *api.IngressGatewayConfigEntry) {
			e.TLS = api.GatewayTLSConfig{Enabled: true, TLSMinVersion: "SSLv3"}
		}, `TLS.TLSMinVersion: unknown version "SSLv3"`},
		{"listener tls version", func(e *api.IngressGatewayConfigEntry) {
			e.Listeners = []api.IngressListener{{Port: 1, Protocol: "http", Services: []api.IngressService{svc("app")},
				TLS: &api.GatewayTLSConfig{Enabled: true, TLSMaxVersion: "TLSv9"}}}
		}, `TLS.TLSMaxVersion: unknown version "TLSv9"`},
		{"http3 without tls", func(e *api.IngressGatewayConfigEntry) { e.Meta[MetaHTTP3] = "true" },
			"needs TLS on the listener"},
		{"http3 not a bool", func(e *api.IngressGatewayConfigEntry) { e.Meta[MetaHTTP3] = "yes please" },
			`"yes please" is not a boolean`},
		{"cert without key", func(e *api.IngressGatewayConfigEntry) { e.Meta[MetaTLSCertFile] = "/c.pem" },
			"go together"},
		{"rate no slash", func(e *api.IngressGatewayConfigEntry) { e.Meta[MetaRateLimit] = "100" }, "is not <n>/<unit>"},
		{"rate zero", func(e *api.IngressGatewayConfigEntry) { e.Meta[MetaRateLimit] = "0/s" }, "whole number"},
		{"rate unit", func(e *api.IngressGatewayConfigEntry) { e.Meta[MetaRateLimit] = "5/fortnight" }, `unit "fortnight"`},
		{"rate too fast", func(e *api.IngressGatewayConfigEntry) { e.Meta[MetaRateLimit] = "5/10ms" }, "at least 50ms"},
		{"burst", func(e *api.IngressGatewayConfigEntry) { e.Meta[MetaRateLimitBurst] = "-1" }, "burst"},
		{"burst alone", func(e *api.IngressGatewayConfigEntry) {
			delete(e.Meta, MetaRateLimit)
		}, "needs " + MetaRateLimit},
		{"claims alone", func(e *api.IngressGatewayConfigEntry) {
			delete(e.Meta, MetaJWTProviders)
		}, "needs " + MetaJWTProviders},
		{"claims syntax", func(e *api.IngressGatewayConfigEntry) { e.Meta[MetaJWTClaimHeaders] = "x-user" }, "is not header=claim"},
		{"no provider named", func(e *api.IngressGatewayConfigEntry) { e.Meta[MetaJWTProviders] = " , " }, "no provider named"},
		{"unknown provider", func(e *api.IngressGatewayConfigEntry) { e.Meta[MetaJWTProviders] = "nope" },
			`no jwt-provider config entry named "nope"`},
		{"limit out of range", func(e *api.IngressGatewayConfigEntry) {
			e.Defaults = &api.IngressServiceConfig{PassiveHealthCheck: &api.PassiveHealthCheck{MaxEjectionPercent: ptr[uint32](150)}}
		}, "PassiveHealthCheck"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Proxy(gatewayMesh(t, c.edit), "edge-1")
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, c.wantErr)
			}
		})
	}
}

func TestGatewayProviderErrors(t *testing.T) {
	cases := []struct {
		name    string
		edit    func(p *api.JWTProviderConfigEntry)
		wantErr string
	}{
		{"no key set", func(p *api.JWTProviderConfigEntry) { p.JSONWebKeySet = nil }, "neither Local nor Remote"},
		{"empty local", func(p *api.JWTProviderConfigEntry) {
			p.JSONWebKeySet = &api.JSONWebKeySet{Local: &api.LocalJWKS{}}
		}, "neither JWKS nor Filename"},
		{"local not base64", func(p *api.JWTProviderConfigEntry) {
			p.JSONWebKeySet = &api.JSONWebKeySet{Local: &api.LocalJWKS{JWKS: "{not base64"}}
		}, "is not base64"},
		{"header without name", func(p *api.JWTProviderConfigEntry) {
			p.Locations = []*api.JWTLocation{{Header: &api.JWTLocationHeader{}}}
		}, "Locations[0].Header has no name"},
		{"bad uri", func(p *api.JWTProviderConfigEntry) { p.JSONWebKeySet.Remote.URI = "ftp://x/jwks" }, "is not an http:// or https:// URL"},
		{"bad port", func(p *api.JWTProviderConfigEntry) { p.JSONWebKeySet.Remote.URI = "http://x:0/jwks" }, `port "0" is out of range`},
		{"discovery", func(p *api.JWTProviderConfigEntry) {
			p.JSONWebKeySet.Remote.JWKSCluster = &api.JWKSCluster{DiscoveryType: api.DiscoveryTypeEDS}
		}, `DiscoveryType "EDS" is not supported`},
		{"provider instance", func(p *api.JWTProviderConfigEntry) {
			p.JSONWebKeySet.Remote.JWKSCluster = &api.JWKSCluster{TLSCertificates: &api.JWKSTLSCertificate{
				CaCertificateProviderInstance: &api.JWKSTLSCertProviderInstance{InstanceName: "x"}}}
		}, "CaCertificateProviderInstance is not supported"},
		{"trusted ca from env", func(p *api.JWTProviderConfigEntry) {
			p.JSONWebKeySet.Remote.JWKSCluster = &api.JWKSCluster{TLSCertificates: &api.JWKSTLSCertificate{
				TrustedCA: &api.JWKSTLSCertTrustedCA{EnvironmentVariable: "CA"}}}
		}, "only Filename, InlineString or InlineBytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := loadMesh(t, "gateway_http")
			p := *m.JWTProviders["idp"]
			if p.JSONWebKeySet != nil && p.JSONWebKeySet.Remote != nil {
				r := *p.JSONWebKeySet.Remote
				p.JSONWebKeySet = &api.JSONWebKeySet{Remote: &r}
			}
			c.edit(&p)
			m.JWTProviders["idp"] = &p
			_, err := Proxy(m, "edge-1")
			var ee *EntryError
			if !errors.As(err, &ee) || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), `jwt-provider "idp"`) {
				t.Fatalf("err = %v, want an *EntryError on jwt-provider \"idp\" containing %q", err, c.wantErr)
			}
		})
	}
}

func TestGatewayNeedsCAAndAddress(t *testing.T) {
	m := loadMesh(t, "gateway_http")
	delete(m.Leaves, "edge")
	if _, err := Proxy(m, "edge-1"); !errors.Is(err, ErrCANotReady) {
		t.Errorf("without the gateway's leaf: %v, want ErrCANotReady", err)
	}

	m = loadMesh(t, "gateway_http")
	g := *m.Gateways["edge-1"]
	g.ServiceAddress, g.Address = "", ""
	m.Gateways["edge-1"] = &g
	if _, err := Proxy(m, "edge-1"); err == nil || !strings.Contains(err.Error(), "has no address") {
		t.Errorf("without an address: %v", err)
	}
	g.ServiceName = ""
	if _, err := Proxy(m, "edge-1"); err == nil || !strings.Contains(err.Error(), "has no service name") {
		t.Errorf("without a name: %v", err)
	}
}

// TestGatewayPlaintext: with mesh TLS off the clusters dial plaintext, no
// secrets are served, and a TLS listener needs certificate files.
func TestGatewayPlaintext(t *testing.T) {
	r, err := NewWithOptions(loadMesh(t, "gateway_http"), Options{Plaintext: true}).Proxy("edge-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Secrets) != 0 {
		t.Errorf("secrets: %d, want none", len(r.Secrets))
	}
	for _, c := range r.Clusters {
		if c.GetTransportSocket() != nil && !strings.HasPrefix(c.GetName(), jwksClusterPrefix) {
			t.Errorf("cluster %s has a transport socket", c.GetName())
		}
	}
	_, err = NewWithOptions(loadMesh(t, "gateway_connect_tls"), Options{Plaintext: true}).Proxy("edge-1")
	if err == nil || !strings.Contains(err.Error(), "TLS needs the Connect CA") {
		t.Errorf("connect TLS in plaintext mode: %v", err)
	}
	if _, err := NewWithOptions(loadMesh(t, "gateway_http3"), Options{Plaintext: true}).Proxy("edge-1"); err != nil {
		t.Errorf("file TLS in plaintext mode: %v", err)
	}
}

// TestGatewayFilters checks the filters' meaning beyond the golden file:
// rate limit before JWT before the router, and the JWT requirement.
func TestGatewayFilters(t *testing.T) {
	r, err := Proxy(loadMesh(t, "gateway_http"), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var jwt jwtv3.JwtAuthentication
	for _, l := range r.Listeners {
		if !strings.HasPrefix(l.GetName(), "http:") {
			continue
		}
		h := &hcmv3.HttpConnectionManager{}
		if err := l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(h); err != nil {
			t.Fatal(err)
		}
		for _, f := range h.GetHttpFilters() {
			names = append(names, f.GetName())
			if f.GetName() == jwtAuthnFilterName {
				if err := f.GetTypedConfig().UnmarshalTo(&jwt); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if got := strings.Join(names, ","); got != localRateLimitFilterName+","+jwtAuthnFilterName+","+routerFilterName {
		t.Errorf("filters: %s", got)
	}
	any := jwt.GetRules()[0].GetRequires().GetRequiresAny().GetRequirements()
	if len(any) != 2 || any[0].GetProviderName() != "idp" || any[1].GetProviderName() != "partner" {
		t.Errorf("requirement: %v", jwt.GetRules())
	}
	if got := jwt.GetProviders()["idp"].GetRemoteJwks().GetCacheDuration().AsDuration(); got != 5*time.Minute {
		t.Errorf("cache duration %v", got)
	}
	if !strings.Contains(jwt.GetProviders()["partner"].GetLocalJwks().GetInlineString(), `"k1"`) {
		t.Errorf("local JWKS not decoded: %v", jwt.GetProviders()["partner"].GetLocalJwks())
	}
	// The mesh clusters present the gateway's own leaf.
	for _, c := range r.Clusters {
		if strings.HasPrefix(c.GetName(), jwksClusterPrefix) {
			continue
		}
		ctx := &tlsv3.UpstreamTlsContext{}
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(ctx); err != nil {
			t.Fatalf("cluster %s: %v", c.GetName(), err)
		}
		if got := ctx.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()[0].GetName(); got != "leaf:edge" {
			t.Errorf("cluster %s presents %s", c.GetName(), got)
		}
	}
}

func TestParseRate(t *testing.T) {
	for _, c := range []struct {
		in    string
		n     uint32
		every time.Duration
	}{{"100/s", 100, time.Second}, {" 5 / m ", 5, time.Minute}, {"1/h", 1, time.Hour}, {"20/500ms", 20, 500 * time.Millisecond}} {
		n, every, err := parseRate(c.in)
		if err != nil || n != c.n || every != c.every {
			t.Errorf("parseRate(%q) = %d, %v, %v", c.in, n, every, err)
		}
	}
}
