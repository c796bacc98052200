package translate

import (
	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

const proxyID = "web-sidecar-proxy"

// baseMesh is web's sidecar with one http upstream, api.
func baseMesh() *model.Mesh {
	return &model.Mesh{
		Datacenter: "dc1",
		Proxies: map[string]*api.CatalogService{proxyID: {
			Node: "n", Address: "10.0.0.10", ServiceID: proxyID, ServiceName: proxyID, ServicePort: 21000,
			ServiceProxy: &api.AgentServiceConnectProxyConfig{
				DestinationServiceName: "web",
				LocalServicePort:       8080,
				Upstreams:              []api.Upstream{{DestinationName: "api", LocalBindPort: 9191}},
			},
		}},
		Services:      map[string]*model.Service{"web": {Name: "web"}, "api": {Name: "api"}},
		ProxyDefaults: &api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal, Config: map[string]any{"protocol": "http"}},
		TrustDomain:   testTrustDomain,
		Roots: &api.CARootList{ActiveRootID: "root-1", TrustDomain: testTrustDomain, Roots: []*api.CARoot{
			{ID: "root-1", RootCertPEM: "-----BEGIN CERTIFICATE-----\nROOT\n-----END CERTIFICATE-----\n", Active: true},
		}},
		Leaves:                map[string]*api.LeafCert{"web": testLeaf("web")},
		IntentionDefaultAllow: true,
	}
}

const testTrustDomain = "11111111-2222-3333-4444-555555555555.consul"

// testLeaf is a stand-in leaf certificate: the translator passes PEM on
// without parsing it.
func testLeaf(service string) *api.LeafCert {
	return &api.LeafCert{
		Service:       service,
		CertPEM:       "-----BEGIN CERTIFICATE-----\nLEAF " + service + "\n-----END CERTIFICATE-----\n",
		PrivateKeyPEM: "-----BEGIN EC PRIVATE KEY-----\nKEY " + service + "\n-----END EC PRIVATE KEY-----\n",
	}
}

func svc(m *model.Mesh, name string) *model.Service {
	if m.Services[name] == nil {
		m.Services[name] = &model.Service{Name: name}
	}
	return m.Services[name]
}

func sidecarProxy(m *model.Mesh) *api.AgentServiceConnectProxyConfig {
	return m.Proxies[proxyID].ServiceProxy
}

func router(routes ...api.ServiceRoute) *api.ServiceRouterConfigEntry {
	return &api.ServiceRouterConfigEntry{Kind: api.ServiceRouter, Name: "api", Routes: routes}
}

func matchRoute(h api.ServiceRouteHTTPMatch) api.ServiceRoute {
	return api.ServiceRoute{Match: &api.ServiceRouteMatch{HTTP: &h}}
}

func splitter(name string, splits ...api.ServiceSplit) *api.ServiceSplitterConfigEntry {
	return &api.ServiceSplitterConfigEntry{Kind: api.ServiceSplitter, Name: name, Splits: splits}
}

func resolver(name string, f func(r *api.ServiceResolverConfigEntry)) *api.ServiceResolverConfigEntry {
	r := &api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: name}
	f(r)
	return r
}

func withLB(lb *api.LoadBalancer) func(m *model.Mesh) {
	return func(m *model.Mesh) {
		svc(m, "api").Resolver = resolver("api", func(r *api.ServiceResolverConfigEntry) { r.LoadBalancer = lb })
	}
}
