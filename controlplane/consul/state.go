package consul

import (
	"cmp"
	"net/url"
	"reflect"
	"slices"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// serviceEntryKinds are the config-entry kinds that name one service, in the
// order they are attached.
var serviceEntryKinds = []string{api.ServiceDefaults, api.ServiceRouter, api.ServiceSplitter, api.ServiceResolver}

// state is everything the watches have learnt, guarded by Watcher.mu. Every
// value stored here comes fresh from a decoded answer and is never mutated
// afterwards, so a built Mesh may share it.
type state struct {
	watches map[*watch]struct{}

	maxIndex        uint64
	datacenter      string
	defaultAllow    bool
	trustDomain     string
	roots           *api.CARootList
	rootsIndex      uint64
	servicesFetched bool
	names           map[string]*nameState
	// entries by kind, then name.
	entries map[string]map[string]api.ConfigEntry
	subsets map[subsetKey]*subsetState
	// leaves by service name: one per service with a sidecar proxy.
	leaves map[string]*leafState
}

// nameState is one catalog service name.
type nameState struct {
	catalog *watch
	// entries are the catalog entries, sorted by node then service ID; nil
	// until fetched.
	entries []*catalogEntry
	// health and connect run while the name has non-proxy entries.
	health, connect     *watch
	instances, sidecars []*api.ServiceEntry
}

// plain reports whether the name has entries that are not connect proxies,
// i.e. whether it is a service of the mesh.
func (ns *nameState) plain() bool {
	return slices.ContainsFunc(ns.entries, func(e *catalogEntry) bool {
		return e.ServiceKind != api.ServiceKindConnectProxy
	})
}

// catalogEntry is one /v1/catalog/service answer with the kind that
// api.CatalogService does not decode.
type catalogEntry struct {
	api.CatalogService
	ServiceKind api.ServiceKind
}

// fetchCatalogService is Catalog().Service(name, "", q) keeping ServiceKind.
func (w *Watcher) fetchCatalogService(name string) fetchFunc[[]*catalogEntry] {
	path := "/v1/catalog/service/" + url.PathEscape(name)
	return func(q *api.QueryOptions) ([]*catalogEntry, *api.QueryMeta, error) {
		var out []*catalogEntry
		meta, err := w.client.Raw().Query(path, &out, q)
		return out, meta, err
	}
}

type subsetKey struct{ service, subset string }

// subsetState is one service-resolver subset with a Filter.
type subsetState struct {
	filter  string
	watch   *watch
	entries []*api.ServiceEntry
}

func newState() state {
	return state{
		watches: map[*watch]struct{}{},
		names:   map[string]*nameState{},
		entries: map[string]map[string]api.ConfigEntry{},
		subsets: map[subsetKey]*subsetState{},
		leaves:  map[string]*leafState{},
	}
}

// pendingNames lists the live watches that have not answered yet.
func (s *state) pendingNames() []string {
	var names []string
	for wt := range s.watches {
		if !wt.fetched {
			names = append(names, wt.name)
		}
	}
	slices.Sort(names)
	return names
}

// startTopLevel starts the watches that exist whatever Consul holds.
// Callers hold w.mu.
func (w *Watcher) startTopLevel() {
	startWatch(w, &watch{name: "agent/self", once: true}, w.fetchSelf, w.applySelf)
	startWatch(w, &watch{name: "catalog/services", backbone: true}, w.client.Catalog().Services, w.applyServices)
	for _, kind := range append(slices.Clone(serviceEntryKinds), api.ProxyDefaults, api.ServiceIntentions, api.IngressGateway, api.JWTProvider) {
		fetch := func(q *api.QueryOptions) ([]api.ConfigEntry, *api.QueryMeta, error) {
			return w.client.ConfigEntries().List(kind, q)
		}
		startWatch(w, &watch{name: "config/" + kind}, fetch, func(list []api.ConfigEntry) bool {
			return w.applyEntries(kind, list)
		})
	}
	startWatch(w, &watch{name: "agent/connect/ca/roots"}, w.fetchRoots, w.applyRoots)
}

// applyServices starts a watch for each new name and stops those of names
// that are gone. Callers hold w.mu.
func (w *Watcher) applyServices(names map[string][]string) bool {
	changed := !w.st.servicesFetched
	w.st.servicesFetched = true
	for name := range names {
		if w.st.names[name] != nil {
			continue
		}
		ns := &nameState{}
		ns.catalog = startWatch(w, &watch{name: "catalog/service/" + name}, w.fetchCatalogService(name), func(entries []*catalogEntry) bool {
			return w.applyCatalog(name, ns, entries)
		})
		w.st.names[name] = ns
		changed = true
	}
	for name, ns := range w.st.names {
		if _, ok := names[name]; ok {
			continue
		}
		w.stopWatch(ns.catalog)
		w.stopWatch(ns.health)
		w.stopWatch(ns.connect)
		delete(w.st.names, name)
		changed = true
	}
	if w.reconcileLeaves() {
		changed = true
	}
	return changed
}

// applyCatalog stores a name's catalog entries and starts or stops its
// health watches as it is, or stops being, a service of the mesh.
func (w *Watcher) applyCatalog(name string, ns *nameState, entries []*catalogEntry) bool {
	slices.SortFunc(entries, func(a, b *catalogEntry) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.ServiceID, b.ServiceID))
	})
	changed := !reflect.DeepEqual(ns.entries, entries)
	ns.entries = entries
	switch plain := ns.plain(); {
	case plain && ns.health == nil:
		ns.health = startWatch(w, &watch{name: "health/service/" + name}, func(q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
			return w.client.Health().Service(name, "", true, q)
		}, func(list []*api.ServiceEntry) bool { return storeSorted(&ns.instances, list) })
		ns.connect = startWatch(w, &watch{name: "health/connect/" + name}, func(q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
			return w.client.Health().Connect(name, "", true, q)
		}, func(list []*api.ServiceEntry) bool { return storeSorted(&ns.sidecars, list) })
	case !plain && ns.health != nil:
		w.stopWatch(ns.health)
		w.stopWatch(ns.connect)
		ns.health, ns.connect, ns.instances, ns.sidecars = nil, nil, nil, nil
		changed = true
	}
	if w.reconcileLeaves() {
		changed = true
	}
	return changed
}

// storeSorted sorts list by node then service ID, stores it in *dst and
// reports whether it differs from what was there.
func storeSorted(dst *[]*api.ServiceEntry, list []*api.ServiceEntry) bool {
	slices.SortFunc(list, compareEntries)
	changed := !reflect.DeepEqual(*dst, list)
	*dst = list
	return changed
}

func compareEntries(a, b *api.ServiceEntry) int {
	var an, bn, as, bs string
	if a.Node != nil {
		an = a.Node.Node
	}
	if b.Node != nil {
		bn = b.Node.Node
	}
	if a.Service != nil {
		as = a.Service.ID
	}
	if b.Service != nil {
		bs = b.Service.ID
	}
	return cmp.Or(cmp.Compare(an, bn), cmp.Compare(as, bs))
}

// applyEntries stores the config entries of one kind; resolvers also
// reconcile the subset watches.
func (w *Watcher) applyEntries(kind string, list []api.ConfigEntry) bool {
	byName := make(map[string]api.ConfigEntry, len(list))
	for _, e := range list {
		byName[e.GetName()] = e
	}
	changed := !reflect.DeepEqual(w.st.entries[kind], byName)
	w.st.entries[kind] = byName
	if kind == api.ServiceResolver {
		w.reconcileSubsets()
	}
	return changed
}

// reconcileSubsets runs one filtered health/connect watch per resolver
// subset that has a Filter; a changed Filter restarts its watch. Subsets
// without a Filter are all the sidecars and need no watch.
func (w *Watcher) reconcileSubsets() {
	want := map[subsetKey]string{}
	for name, e := range w.st.entries[api.ServiceResolver] {
		r, ok := e.(*api.ServiceResolverConfigEntry)
		if !ok {
			continue
		}
		for subset, def := range r.Subsets {
			if def.Filter != "" {
				want[subsetKey{name, subset}] = def.Filter
			}
		}
	}
	for key, ss := range w.st.subsets {
		if f, ok := want[key]; !ok || f != ss.filter {
			w.stopWatch(ss.watch)
			delete(w.st.subsets, key)
		}
	}
	for key, filter := range want {
		if w.st.subsets[key] != nil {
			continue
		}
		ss := &subsetState{filter: filter}
		fetch := func(q *api.QueryOptions) ([]*api.ServiceEntry, *api.QueryMeta, error) {
			q.Filter = filter
			return w.client.Health().Connect(key.service, "", true, q)
		}
		ss.watch = startWatch(w, &watch{name: "health/connect/" + key.service + "?subset=" + key.subset}, fetch,
			func(list []*api.ServiceEntry) bool { return storeSorted(&ss.entries, list) })
		w.st.subsets[key] = ss
	}
}

// build assembles a new Mesh from the state. Maps, Service values and
// slices are new; the Consul values they point to are shared, never
// mutated. Callers hold w.mu.
func (s *state) build() *model.Mesh {
	m := &model.Mesh{
		Index:                 s.maxIndex,
		Datacenter:            s.datacenter,
		TrustDomain:           s.trustDomain,
		Proxies:               map[string]*api.CatalogService{},
		Services:              map[string]*model.Service{},
		Roots:                 s.roots,
		RootsIndex:            s.rootsIndex,
		Leaves:                map[string]*api.LeafCert{},
		Intentions:            map[string]*api.ServiceIntentionsConfigEntry{},
		IntentionDefaultAllow: s.defaultAllow,
		Gateways:              map[string]*api.CatalogService{},
		IngressGateways:       map[string]*api.IngressGatewayConfigEntry{},
		JWTProviders:          map[string]*api.JWTProviderConfigEntry{},
	}
	for name, e := range s.entries[api.IngressGateway] {
		if e, ok := e.(*api.IngressGatewayConfigEntry); ok {
			m.IngressGateways[name] = e
		}
	}
	for name, e := range s.entries[api.JWTProvider] {
		if e, ok := e.(*api.JWTProviderConfigEntry); ok {
			m.JWTProviders[name] = e
		}
	}
	for service, ls := range s.leaves {
		if ls.cert != nil {
			m.Leaves[service] = ls.cert
		}
	}
	for name, e := range s.entries[api.ServiceIntentions] {
		if e, ok := e.(*api.ServiceIntentionsConfigEntry); ok {
			m.Intentions[name] = e
		}
	}
	// Names in order, entries by node: when two nodes register a proxy
	// with the same ID, the first node's wins, deterministically.
	for _, name := range sortedKeys(s.names) {
		ns := s.names[name]
		for _, e := range ns.entries {
			if e.ServiceKind != api.ServiceKindConnectProxy && e.ServiceKind != api.ServiceKindIngressGateway {
				continue
			}
			if _, dup := m.Proxies[e.ServiceID]; !dup {
				m.Proxies[e.ServiceID] = &e.CatalogService
				if e.ServiceKind == api.ServiceKindIngressGateway {
					m.Gateways[e.ServiceID] = &e.CatalogService
				}
			}
		}
		if ns.plain() {
			m.Services[name] = &model.Service{
				Name:      name,
				Instances: slices.Clone(ns.instances),
				Sidecars:  slices.Clone(ns.sidecars),
			}
		}
	}
	service := func(name string) *model.Service {
		svc := m.Services[name]
		if svc == nil {
			svc = &model.Service{Name: name}
			m.Services[name] = svc
		}
		return svc
	}
	for _, kind := range serviceEntryKinds {
		for name, e := range s.entries[kind] {
			switch e := e.(type) {
			case *api.ServiceConfigEntry:
				service(name).Defaults = e
			case *api.ServiceRouterConfigEntry:
				service(name).Router = e
			case *api.ServiceSplitterConfigEntry:
				service(name).Splitter = e
			case *api.ServiceResolverConfigEntry:
				service(name).Resolver = e
			}
		}
	}
	if e, ok := s.entries[api.ProxyDefaults][api.ProxyConfigGlobal].(*api.ProxyConfigEntry); ok {
		m.ProxyDefaults = e
	}
	for name, svc := range m.Services {
		if svc.Resolver == nil || len(svc.Resolver.Subsets) == 0 {
			continue
		}
		svc.Subsets = make(map[string][]*api.ServiceEntry, len(svc.Resolver.Subsets))
		for subset, def := range svc.Resolver.Subsets {
			var list []*api.ServiceEntry
			if def.Filter == "" {
				list = svc.Sidecars
			} else if ss := s.subsets[subsetKey{name, subset}]; ss != nil {
				list = ss.entries
			}
			// Every subset has a key; nil until its watch has answered.
			svc.Subsets[subset] = slices.Clone(list)
		}
	}
	return m
}
