package translate

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/hashicorp/consul/api"
	"google.golang.org/protobuf/proto"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// wire is r in deterministic wire form, resource by resource, or the
// error's text: what a proxy would be sent. It may run on any goroutine.
func wire(t *testing.T, r *Resources, err error) string {
	t.Helper()
	if err != nil {
		return "error: " + err.Error()
	}
	var buf bytes.Buffer
	labels, msgs := all(r)
	for i, m := range msgs {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			t.Errorf("%s: %v", labels[i], err)
		}
		buf.WriteString(labels[i])
		buf.WriteByte(0)
		buf.Write(b)
		buf.WriteByte(0)
	}
	return buf.String()
}

// equivalenceMeshes are every testdata mesh and a generated one with
// several proxies per upstream.
func equivalenceMeshes(t *testing.T) map[string]*model.Mesh {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) < 10 {
		t.Fatalf("testdata meshes: %v (%d)", err, len(files))
	}
	out := map[string]*model.Mesh{"generated": benchMesh(4, 25, 3)}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		out[name] = loadMesh(t, name)
	}
	return out
}

// TestTranslatorMatchesPerProxy: one Translator shared by goroutines that
// translate every proxy of a mesh (and the proxyless set) in different
// orders gives, byte for byte, what a fresh translation of each gives:
// memoizing changes nothing a proxy is sent, errors included. The golden
// tests pin the fresh translation itself.
func TestTranslatorMatchesPerProxy(t *testing.T) {
	for name, m := range equivalenceMeshes(t) {
		t.Run(name, func(t *testing.T) {
			ids := append(proxyIDs(m), "not-registered")
			want := map[string]string{}
			for _, id := range ids {
				r, err := Proxy(m, id)
				want[id] = wire(t, r, err)
			}
			r, err := Proxyless(m)
			want[""] = wire(t, r, err)

			tr := New(m)
			const workers = 4
			got := make([]map[string]string, workers)
			var wg sync.WaitGroup
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					order := slices.Clone(ids)
					if w%2 == 1 {
						slices.Reverse(order)
					}
					got[w] = map[string]string{}
					for _, id := range order {
						r, err := tr.Proxy(id)
						got[w][id] = wire(t, r, err)
					}
					r, err := tr.Proxyless()
					got[w][""] = wire(t, r, err)
				}()
			}
			wg.Wait()
			for w := range workers {
				for id, g := range got[w] {
					if g != want[id] {
						t.Errorf("worker %d, proxy %q: shared Translator differs from a fresh translation", w, id)
					}
				}
			}
		})
	}
}

// byName indexes messages by a name.
func byName[T proto.Message](list []T, name func(T) string) map[string]T {
	out := make(map[string]T, len(list))
	for _, x := range list {
		out[name(x)] = x
	}
	return out
}

// TestTranslatorSharesResources: proxies with an upstream in common get
// the very same route, cluster and endpoint messages for it; listeners are
// their own but share their filters.
func TestTranslatorSharesResources(t *testing.T) {
	m := benchMesh(3, 4, 2) // svc-0 dials svc-1 and svc-2, svc-1 dials svc-2 and svc-0
	tr := New(m)
	get := func(id string) *Resources {
		t.Helper()
		r, err := tr.Proxy(id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	a, b, c := get("svc-0-0-sidecar-proxy"), get("svc-0-1-sidecar-proxy"), get("svc-1-3-sidecar-proxy")
	again := get("svc-0-0-sidecar-proxy")

	same := func(what string, x, y map[string]proto.Message, names ...string) {
		t.Helper()
		for _, n := range names {
			if x[n] == nil || x[n] != y[n] {
				t.Errorf("%s %q: %p and %p, want one shared message", what, n, x[n], y[n])
			}
		}
	}
	index := func(r *Resources) (routes, clusters, endpoints map[string]proto.Message) {
		routes, clusters, endpoints = map[string]proto.Message{}, map[string]proto.Message{}, map[string]proto.Message{}
		for _, x := range r.Routes {
			routes[x.GetName()] = x
		}
		for _, x := range r.Clusters {
			clusters[x.GetName()] = x
		}
		for _, x := range r.Endpoints {
			endpoints[x.GetClusterName()] = x
		}
		return
	}
	ar, ac, ae := index(a)
	br, bc, be := index(b)
	cr, cc, ce := index(c)
	agr, agc, age := index(again)
	same("route", ar, br, "svc-1", "svc-2")
	same("cluster", ac, bc, "svc-1", "svc-2", localAppName)
	same("endpoints", ae, be, "svc-1", "svc-2")
	// Different services, one upstream in common: the cluster differs
	// only in the leaf certificate it presents.
	same("route", ar, cr, "svc-2")
	same("cluster", ac, cc, localAppName)
	same("endpoints", ae, ce, "svc-2")
	if ac["svc-2"] == cc["svc-2"] {
		t.Error("svc-0 and svc-1 share their svc-2 cluster, which presents the downstream's own leaf")
	}
	// A second call for the same proxy.
	same("route", ar, agr, "svc-1", "svc-2")
	same("cluster", ac, agc, "svc-1", "svc-2")
	same("endpoints", ae, age, "svc-1", "svc-2")

	al := byName(a.Listeners, (*listenerv3.Listener).GetName)
	bl := byName(b.Listeners, (*listenerv3.Listener).GetName)
	for _, n := range []string{publicListenerName, "svc-1:127.0.0.1:9001", "svc-2:127.0.0.1:9002"} {
		x, y := al[n], bl[n]
		if x == nil || y == nil {
			t.Fatalf("listener %q missing", n)
		}
		if x == y {
			t.Errorf("listener %q is shared; it names a proxy's own address and must not be", n)
		}
		if fx, fy := x.GetFilterChains()[0].GetFilters()[0], y.GetFilterChains()[0].GetFilters()[0]; fx != fy {
			t.Errorf("listener %q: filters %p and %p, want one shared filter", n, fx, fy)
		}
	}
	if got := al[publicListenerName].GetAddress().GetSocketAddress().GetAddress(); got != "10.0.0.0" {
		t.Errorf("svc-0-0's public_listener binds %s, want its own address 10.0.0.0", got)
	}
	if got := bl[publicListenerName].GetAddress().GetSocketAddress().GetAddress(); got != "10.0.0.1" {
		t.Errorf("svc-0-1's public_listener binds %s, want its own address 10.0.0.1", got)
	}
}

// TestTranslatorMemoizesErrors: every proxy whose upstream's chain is
// broken gets the one error built for it.
func TestTranslatorMemoizesErrors(t *testing.T) {
	m := baseMesh()
	svc(m, "api").Splitter = splitter("api", api.ServiceSplit{Weight: 100, ServiceSubset: "v9"})
	other := *m.Proxies[proxyID]
	other.ServiceID, other.Address = "web-2-sidecar-proxy", "10.0.0.11"
	m.Proxies[other.ServiceID] = &other

	tr := New(m)
	_, err1 := tr.Proxy(proxyID)
	_, err2 := tr.Proxy(other.ServiceID)
	var ee *EntryError
	if !errors.As(err1, &ee) || ee.Kind != kindSplitter {
		t.Fatalf("err = %v, want the splitter's EntryError", err1)
	}
	if err1 != err2 {
		t.Errorf("errors %p (%v) and %p (%v), want the one memoized error", err1, err1, err2, err2)
	}
}

// TestProxylessResultIsFresh: what a caller appends to one result does not
// show up in the next.
func TestProxylessResultIsFresh(t *testing.T) {
	tr := New(loadMesh(t, "proxyless"))
	r1, err := tr.Proxyless()
	if err != nil {
		t.Fatal(err)
	}
	n := len(r1.Clusters)
	r1.Clusters = append(r1.Clusters[:0], nil)
	r2, err := tr.Proxyless()
	if err != nil {
		t.Fatal(err)
	}
	if len(r2.Clusters) != n || r2.Clusters[0] == nil {
		t.Fatalf("second result has %d clusters (first %v), want the %d built", len(r2.Clusters), r2.Clusters[0], n)
	}
}

func TestTranslatorNilMesh(t *testing.T) {
	tr := New(nil)
	if _, err := tr.Proxy(proxyID); !errors.Is(err, errNoMesh) {
		t.Errorf("Proxy: err = %v, want errNoMesh", err)
	}
	if _, err := tr.Proxyless(); !errors.Is(err, errNoMesh) {
		t.Errorf("Proxyless: err = %v, want errNoMesh", err)
	}
}

// TestMemoPanicBecomesError: a panic while building is the memoized error
// of every caller, and the build runs once.
func TestMemoPanicBecomesError(t *testing.T) {
	var c memo[string, *int]
	var builds atomic.Int32
	build := func() (*int, error) {
		builds.Add(1)
		panic("boom")
	}
	for i := range 3 {
		v, err := c.get("k", build)
		if v != nil || err == nil || !strings.Contains(err.Error(), `internal error building k: boom`) {
			t.Errorf("call %d: %v, %v; want nil and the panic as an error", i, v, err)
		}
	}
	if n := builds.Load(); n != 1 {
		t.Errorf("built %d times, want once", n)
	}
}

// TestMemoBuildsOnceUnderContention: goroutines asking for one key at once
// all get the value of a single build.
func TestMemoBuildsOnceUnderContention(t *testing.T) {
	var c memo[int, *int]
	var builds atomic.Int32
	var wg sync.WaitGroup
	got := make([]*int, 16)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _ = c.get(1, func() (*int, error) {
				builds.Add(1)
				v := 42
				return &v, nil
			})
		}()
	}
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Errorf("built %d times, want once", n)
	}
	for i, p := range got {
		if p != got[0] {
			t.Errorf("goroutine %d got %p, goroutine 0 %p", i, p, got[0])
		}
	}
}
