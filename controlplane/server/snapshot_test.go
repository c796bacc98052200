package server

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/controlplane/translate"
)

func TestContentRejects(t *testing.T) {
	extraRoute := sidecar("api", 15001, 9000)
	extraRoute.Routes = append(extraRoute.Routes, routeTo("orphan", "api"))
	missingRoute := sidecar("api", 15001, 9000)
	missingRoute.Routes = nil
	serviceName := sidecar("api", 15001, 9000)
	serviceName.Clusters[0].EdsClusterConfig.ServiceName = "api-v2" // the CLA is named "api"
	badAPI := proxylessSet("api")
	badAPI.Listeners[0].ApiListener.ApiListener = &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager", Value: []byte{0xff}}
	badHCM := sidecar("api", 15001, 9000)
	m := hcmRDS("", "route_api") // stat_prefix is required
	badHCM.Listeners[0].FilterChains[0].Filters[0].ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(m)}
	typedNil := sidecar("api", 15001, 9000)
	typedNil.Clusters = append(typedNil.Clusters, (*clusterv3.Cluster)(nil))

	for _, tc := range []struct {
		name string
		res  *translate.Resources
		want []string
	}{
		{"unreferenced route", extraRoute, []string{`route "orphan" is not referenced by any listener`}},
		{"missing route", missingRoute, []string{`listener "outbound_api" references route "route_api", which is not in the configuration`}},
		{"eds service name", serviceName, []string{`cluster "api" references endpoint "api-v2"`, `endpoint "api" is not referenced`}},
		{"api listener garbage", badAPI, []string{`listener "api": api_listener`}},
		{"invalid http connection manager", badHCM, []string{`listener "outbound_api": http_connection_manager`, "StatPrefix"}},
		{"typed nil", typedNil, []string{"cluster[1] is nil"}},
		{"nil", nil, []string{"no resources"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newBuilder(nil).content(kindProxy, tc.res)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestContentAccepts(t *testing.T) {
	for name, res := range map[string]*translate.Resources{
		"sidecar":    sidecar("api", 15001, 9000),
		"proxyless":  proxylessSet("api", "db"),
		"empty":      {},
		"eds by svc": withServiceName(),
	} {
		if _, err := newBuilder(nil).content(kindProxy, res); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func withServiceName() *translate.Resources {
	r := sidecar("api", 15001, 9000)
	r.Clusters[0].EdsClusterConfig.ServiceName = "api"
	return r
}

func TestContentVersions(t *testing.T) {
	b := newBuilder(nil)
	a, err := b.content(kindProxy, sidecar("api", 15001, 9000))
	if err != nil {
		t.Fatal(err)
	}
	same, _ := b.content(kindProxy, sidecar("api", 15001, 9000))
	if a.key != same.key || a.versions != same.versions {
		t.Error("identical content must hash identically")
	}
	other, _ := b.content(kindProxy, sidecar("api", 15001, 9001))
	if other.key == a.key {
		t.Error("different content, same key")
	}
	for s := range numSlots {
		changed := a.versions[s] != other.versions[s]
		if changed != (s == slotEndpoint) {
			t.Errorf("%s version changed=%v; only endpoint should", slots[s].kind, changed)
		}
	}
	if pl, _ := b.content(kindProxyless, sidecar("api", 15001, 9000)); pl.key == a.key {
		t.Error("the kind must be part of the key")
	}
	// Order of the translator's lists does not matter.
	r := proxylessSet("api", "db")
	r2 := proxylessSet("api", "db")
	r2.Clusters[0], r2.Clusters[1] = r2.Clusters[1], r2.Clusters[0]
	x, _ := b.content(kindProxy, r)
	y, _ := b.content(kindProxy, r2)
	if x.key != y.key {
		t.Error("list order changed the key")
	}
}

func TestContentInterning(t *testing.T) {
	b := newBuilder(nil)
	a, _ := b.content(kindProxy, sidecar("api", 15001, 9000))
	c, _ := b.content(kindProxy, sidecar("api", 15002, 9000)) // only the listener differs
	if a.items[slotCluster][0].res != c.items[slotCluster][0].res {
		t.Error("identical clusters of two groups should be one object")
	}
	if a.items[slotListener][0].res == c.items[slotListener][0].res {
		t.Error("different listeners share an object")
	}
	// The next update reuses the objects of the previous one.
	next := newBuilder(b.interned)
	d, _ := next.content(kindProxy, sidecar("api", 15001, 9000))
	if d.items[slotRoute][0].res != a.items[slotRoute][0].res {
		t.Error("an unchanged route should keep its object across updates")
	}
	// A translator returning one object twice is validated once.
	shared := edsCluster("shared")
	r1 := &translate.Resources{Clusters: []*clusterv3.Cluster{shared}, Endpoints: nil}
	r1.Endpoints = append(r1.Endpoints, cla("shared", 1))
	if _, err := next.content(kindProxy, r1); err != nil {
		t.Fatal(err)
	}
	if _, ok := next.seen[types.Resource(shared)]; !ok {
		t.Error("resource not memoized")
	}
}

func TestSnapshotFromContent(t *testing.T) {
	c, err := newBuilder(nil).content(kindProxy, mtlsSidecar("api", 15001, 9000))
	if err != nil {
		t.Fatal(err)
	}
	s := c.snapshot()
	if err := s.Consistent(); err != nil {
		t.Errorf("go-control-plane finds the snapshot inconsistent: %v", err)
	}
	for i, slot := range slots {
		if got := s.GetVersion(slot.typeURL); got != c.versions[i] {
			t.Errorf("%s version %q, want %q", slot.kind, got, c.versions[i])
		}
		vm := s.GetVersionMap(slot.typeURL)
		if len(vm) != len(c.items[i]) || len(vm) == 0 {
			t.Errorf("%s version map %v", slot.kind, vm)
		}
	}
	// The precomputed version map is kept: go-control-plane does not redo it.
	before := s.GetVersionMap(resource.ClusterType)
	if err := s.ConstructVersionMap(); err != nil {
		t.Fatal(err)
	}
	if s.GetVersionMap(resource.ClusterType)["api"] != before["api"] {
		t.Error("version map rebuilt")
	}
	cl := s.GetResources(resource.ClusterType)["api"]
	if !proto.Equal(cl, mtlsSidecar("api", 15001, 9000).Clusters[0]) {
		t.Errorf("cluster: %v", cl)
	}
}
