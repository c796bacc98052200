package translate

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// benchMesh is the scale bench's "pods" layout built in memory: services
// services of instances replicas each, every replica on its own address
// with a sidecar in front of it, and every sidecar dialing the next
// upstreams services (wrapping around) over http.
func benchMesh(services, instances, upstreams int) *model.Mesh {
	m := &model.Mesh{
		Datacenter:    "dc1",
		Proxies:       make(map[string]*api.CatalogService, services*instances),
		Services:      make(map[string]*model.Service, services),
		ProxyDefaults: &api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal, Config: map[string]any{"protocol": "http"}},
		TrustDomain:   testTrustDomain,
		Roots: &api.CARootList{TrustDomain: testTrustDomain, Roots: []*api.CARoot{
			{ID: "root-1", RootCertPEM: "-----BEGIN CERTIFICATE-----\nROOT\n-----END CERTIFICATE-----\n", Active: true},
		}},
		Leaves:                map[string]*api.LeafCert{},
		IntentionDefaultAllow: true,
	}
	name := func(s int) string { return fmt.Sprintf("svc-%d", s) }
	for s := 0; s < services; s++ {
		svc := &model.Service{
			Name:      name(s),
			Instances: make([]*api.ServiceEntry, 0, instances),
			Sidecars:  make([]*api.ServiceEntry, 0, instances),
		}
		ups := make([]api.Upstream, 0, upstreams)
		for u := 1; u <= upstreams; u++ {
			ups = append(ups, api.Upstream{DestinationName: name((s + u) % services), LocalBindPort: 9000 + u})
		}
		for i := 0; i < instances; i++ {
			addr := fmt.Sprintf("10.%d.%d.%d", s%256, i/256, i%256)
			node := &api.Node{Node: "node-" + addr, Address: addr}
			id := fmt.Sprintf("%s-%d", name(s), i)
			proxyID := id + "-sidecar-proxy"
			svc.Instances = append(svc.Instances, &api.ServiceEntry{Node: node, Service: &api.AgentService{
				ID: id, Service: name(s), Address: addr, Port: 8080,
			}})
			svc.Sidecars = append(svc.Sidecars, &api.ServiceEntry{Node: node, Service: &api.AgentService{
				Kind: api.ServiceKindConnectProxy, ID: proxyID, Service: name(s) + "-sidecar-proxy", Address: addr, Port: 21000,
				Proxy: &api.AgentServiceConnectProxyConfig{DestinationServiceName: name(s), DestinationServiceID: id},
			}})
			m.Proxies[proxyID] = &api.CatalogService{
				Node: node.Node, Address: addr, ServiceID: proxyID, ServiceName: name(s) + "-sidecar-proxy",
				ServiceAddress: addr, ServicePort: 21000,
				ServiceProxy: &api.AgentServiceConnectProxyConfig{
					DestinationServiceName: name(s), DestinationServiceID: id, LocalServicePort: 8080, Upstreams: ups,
				},
			}
		}
		m.Services[svc.Name] = svc
		m.Leaves[svc.Name] = testLeaf(svc.Name)
	}
	return m
}

// proxyIDs lists m's proxies in order.
func proxyIDs(m *model.Mesh) []string { return slices.Sorted(maps.Keys(m.Proxies)) }

// BenchmarkTranslate translates every proxy of a generated mesh, as the
// control plane does on each Consul change: 10 services of 100 replicas
// (1,000 sidecars, each on its own address) dialing 2 upstreams of 100
// endpoints each. per-proxy is Proxy(m, id) for each proxy (every proxy
// rebuilds its upstreams' chains, clusters and endpoints, as before the
// Translator); translator shares one Translator, alone and from two
// goroutines. One op is the whole mesh.
func BenchmarkTranslate(b *testing.B) {
	m := benchMesh(10, 100, 2)
	ids := proxyIDs(m)
	b.Run("per-proxy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			for _, id := range ids {
				if _, err := Proxy(m, id); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("translator", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tr := New(m)
			for _, id := range ids {
				if _, err := tr.Proxy(id); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("translator-2-goroutines", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			tr := New(m)
			var wg sync.WaitGroup
			for w := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := w; i < len(ids); i += 2 {
						if _, err := tr.Proxy(ids[i]); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		}
	})
}

// BenchmarkBenchMesh is the cost of generating the benchmark's input.
func BenchmarkBenchMesh(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchMesh(10, 100, 2)
	}
}
