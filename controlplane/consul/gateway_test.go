package consul

import (
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"

	"github.com/outrigger-mesh/outrigger/internal/consultest"
)

// TestIngressGateway: an ingress-gateway service is a proxy (in Proxies and
// Gateways) with its own leaf certificate; its ingress-gateway entry and
// the jwt-provider entries follow Consul; deregistering drops it and its
// leaf.
func TestIngressGateway(t *testing.T) {
	agent := consultest.Start(t)
	c := agent.Client
	log, _ := newTestLogger(t)
	w := NewWatcher(c, testOptions(log))
	rec := newRecorder(t)
	runWatcher(t, w, rec)

	setEntry(t, c, &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "app", Protocol: "http"})
	setEntry(t, c, &api.JWTProviderConfigEntry{Kind: api.JWTProvider, Name: "idp", Issuer: "https://idp.test",
		JSONWebKeySet: &api.JSONWebKeySet{Remote: &api.RemoteJWKS{URI: "http://127.0.0.1:1/jwks.json"}}})
	setEntry(t, c, &api.IngressGatewayConfigEntry{Kind: api.IngressGateway, Name: "edge",
		Meta:      map[string]string{"outrigger.io/jwt-providers": "idp"},
		Listeners: []api.IngressListener{{Port: 8080, Protocol: "http", Services: []api.IngressService{{Name: "app", Hosts: []string{"app.test"}}}}}})
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{
		Kind: api.ServiceKindIngressGateway, Name: "edge", ID: "edge-1", Address: "127.0.0.1", Port: 8443,
	}); err != nil {
		t.Fatal(err)
	}
	m := rec.waitFor("with the gateway, its entries and its leaf", func(m *model.Mesh) bool {
		return m.Gateways["edge-1"] != nil && m.IngressGateways["edge"] != nil && m.JWTProviders["idp"] != nil &&
			m.Leaves["edge"] != nil
	})
	if m.Proxies["edge-1"] != m.Gateways["edge-1"] {
		t.Error("the gateway is not the same value in Proxies and Gateways")
	}
	if g := m.Gateways["edge-1"]; g.ServiceName != "edge" || g.ServicePort != 8443 {
		t.Errorf("gateway = %s:%d", g.ServiceName, g.ServicePort)
	}
	if e := m.IngressGateways["edge"]; len(e.Listeners) != 1 || e.Meta["outrigger.io/jwt-providers"] != "idp" {
		t.Errorf("entry = %+v", e)
	}
	if p := m.JWTProviders["idp"]; p.Issuer != "https://idp.test" {
		t.Errorf("provider = %+v", p)
	}

	deleteEntry(t, c, api.IngressGateway, "edge")
	deleteEntry(t, c, api.JWTProvider, "idp")
	if err := c.Agent().ServiceDeregister("edge-1"); err != nil {
		t.Fatal(err)
	}
	rec.waitFor("without the gateway, its entries and its leaf", func(m *model.Mesh) bool {
		return len(m.Gateways) == 0 && m.Proxies["edge-1"] == nil && len(m.IngressGateways) == 0 &&
			len(m.JWTProviders) == 0 && m.Leaves["edge"] == nil
	})
}
