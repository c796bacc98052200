package server

import (
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
	"github.com/outrigger-mesh/outrigger/controlplane/translate"
)

// A sidecar of a mesh whose Connect CA is not known yet waits for it (no
// configuration, not counted as a translation error); with mesh TLS off
// (-mesh-tls=false) it is configured at once, in plaintext.
func TestMeshTLSWaitsForTheCA(t *testing.T) {
	m := &model.Mesh{
		Index: 2, Datacenter: "dc1",
		Proxies: map[string]*api.CatalogService{"web-sidecar-proxy": {
			Node: "n1", Address: "127.0.0.1", ServiceID: "web-sidecar-proxy", ServiceName: "web-sidecar-proxy",
			ServiceAddress: "127.0.0.1", ServicePort: 21000,
			ServiceProxy: &api.AgentServiceConnectProxyConfig{DestinationServiceName: "web", LocalServiceAddress: "127.0.0.1", LocalServicePort: 8080},
		}},
		Services: map[string]*model.Service{"web": {Name: "web"}},
	}
	for _, plaintext := range []bool{false, true} {
		s := New(Options{Translation: translate.Options{Plaintext: plaintext}})
		s.Update(m)
		_, configured := s.proxyGroup["web-sidecar-proxy"]
		if configured != plaintext {
			t.Errorf("plaintext=%v: configured=%v", plaintext, configured)
		}
		if v := value(s.metrics.translateErrs); v != 0 {
			t.Errorf("plaintext=%v: translate_errors_total = %v, want 0", plaintext, v)
		}
	}
}
