package translate

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/outrigger-mesh/outrigger/controlplane/model"
)

// This file compiles a service's discovery chain the way Consul does
// (agent/consul/discoverychain/compile.go): the service-router's routes in
// order and a catch-all, each destination through that service's
// service-splitter (nested splitters flattened, weights multiplied) and
// every leaf through its service-resolver (redirect, default subset,
// subsets, failover). The result names targets, not Envoy resources.

// Config entry kinds, as Consul names them in errors.
const (
	kindRouter   = "service-router"
	kindSplitter = "service-splitter"
	kindResolver = "service-resolver"
)

// maxChainDepth bounds redirects and nested splitters; a longer chain is a
// configuration error even without a cycle.
const maxChainDepth = 32

// defaultConnectTimeout is Consul's (and Envoy's) cluster connect timeout.
const defaultConnectTimeout = 5 * time.Second

// entryRef names a config entry in errors.
type entryRef struct{ kind, name string }

// EntryError is a config entry that cannot be translated: a cycle, a subset
// that does not exist, a router on a tcp service, a bad regex. Kind is
// Consul's config entry kind ("service-router") and Name its name.
type EntryError struct {
	Kind   string
	Name   string
	Reason string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("translate: %s %q: %s", e.Kind, e.Name, e.Reason)
}

func entryErr(ref entryRef, format string, args ...any) error {
	return &EntryError{Kind: ref.kind, Name: ref.name, Reason: fmt.Sprintf(format, args...)}
}

// target is one cluster: a service, or one resolver subset of it.
type target struct{ service, subset string }

// cluster is the target's cluster name: "<service>" or "<subset>.<service>".
func (t target) cluster() string {
	if t.subset == "" {
		return t.service
	}
	return t.subset + "." + t.service
}

// resolution is what the service-resolver makes of a target.
type resolution struct {
	target         target // after redirects and the default subset
	connectTimeout time.Duration
	requestTimeout time.Duration
	lb             *api.LoadBalancer
	failover       []target // priorities 1..n, resolved, same datacenter only
}

// split is one weighted leaf of a (flattened) splitter.
type split struct {
	weight            int // in 0.01% units: 10000 is everything
	to                *resolution
	request, response *api.HTTPHeaderModifiers
}

// step is where traffic goes next: one resolved target, or weighted
// splits when a splitter is in the way.
type step struct {
	resolved *resolution
	splits   []split
	lb       *api.LoadBalancer // hash-based policy to apply on the route
}

// chainRoute is one compiled route: nil match and dest for a catch-all.
type chainRoute struct {
	match *api.ServiceRouteHTTPMatch
	dest  *api.ServiceRouteDestination
	to    step
}

// chain is a compiled discovery chain.
type chain struct {
	protocol string
	// routed is true when the chain starts at a service-router: then, as
	// in Consul, only the router's destinations set route timeouts, not
	// the resolvers'.
	routed  bool
	routes  []chainRoute  // the last is the catch-all
	targets []*resolution // every primary target, sorted by cluster name
}

// compiler compiles one chain.
type compiler struct {
	m        *model.Mesh
	service  string
	protocol string
	resolved map[target]*resolution
	stack    []string // splitters being expanded, for cycle errors
}

// isHTTP reports whether protocol allows routers and splitters.
func isHTTP(protocol string) bool {
	switch protocol {
	case "http", "http2", "grpc":
		return true
	}
	return false
}

// compileChain compiles service's discovery chain from the mesh.
func compileChain(m *model.Mesh, service string) (*chain, error) {
	c := &compiler{
		m:        m,
		service:  service,
		protocol: m.Protocol(service),
		resolved: map[target]*resolution{},
	}
	ch := &chain{protocol: c.protocol}
	self := entryRef{kindResolver, service}
	if r := c.entries(service).Router; r != nil {
		ref := entryRef{kindRouter, r.Name}
		if !isHTTP(c.protocol) {
			return nil, entryErr(ref, "service %q has protocol %q, which does not allow routing (set protocol http, http2 or grpc in its service-defaults)", service, c.protocol)
		}
		for i := range r.Routes {
			rt := &r.Routes[i]
			if err := checkMatch(ref, i, rt.Match); err != nil {
				return nil, err
			}
			var dest api.ServiceRouteDestination
			if rt.Destination != nil {
				dest = *rt.Destination
			}
			svc := dest.Service
			if svc == "" {
				svc = service
			}
			to, err := c.destination(svc, dest.ServiceSubset, ref)
			if err != nil {
				return nil, err
			}
			var match *api.ServiceRouteHTTPMatch
			if rt.Match != nil {
				match = rt.Match.HTTP
			}
			ch.routes = append(ch.routes, chainRoute{match: match, dest: rt.Destination, to: to})
		}
		self = ref
		ch.routed = true
	}
	to, err := c.splitterOrResolver(service, self)
	if err != nil {
		return nil, err
	}
	ch.routes = append(ch.routes, chainRoute{to: to})

	seen := map[target]bool{}
	for _, r := range ch.routes {
		for _, res := range r.to.resolutions() {
			if !seen[res.target] {
				seen[res.target] = true
				ch.targets = append(ch.targets, res)
			}
		}
	}
	sort.Slice(ch.targets, func(i, j int) bool { return ch.targets[i].target.cluster() < ch.targets[j].target.cluster() })
	return ch, nil
}

// destination is where a route goes: a subset goes straight to the
// resolver, a bare service through its splitter first (Consul's rule).
func (c *compiler) destination(service, subset string, from entryRef) (step, error) {
	if subset == "" {
		return c.splitterOrResolver(service, from)
	}
	res, err := c.resolve(target{service, subset}, from, false)
	if err != nil {
		return step{}, err
	}
	return step{resolved: res, lb: res.hashLB()}, nil
}

// resolutions lists the step's targets.
func (s step) resolutions() []*resolution {
	if s.resolved != nil {
		return []*resolution{s.resolved}
	}
	out := make([]*resolution, len(s.splits))
	for i, sp := range s.splits {
		out[i] = sp.to
	}
	return out
}

// hashLB is the resolver's load balancer when it is hash based (the route
// then carries its hash policies), else nil.
func (r *resolution) hashLB() *api.LoadBalancer {
	if r.lb != nil && (r.lb.Policy == "ring_hash" || r.lb.Policy == "maglev") {
		return r.lb
	}
	return nil
}

// entries returns the service's config entries (an empty Service when the
// catalog does not know it: its chain is the default one, with no
// endpoints).
func (c *compiler) entries(service string) *model.Service {
	if s := c.m.Services[service]; s != nil {
		return s
	}
	return &model.Service{Name: service}
}

// checkProtocol enforces Consul's rule that a chain has one protocol.
func (c *compiler) checkProtocol(service string, from entryRef) error {
	if p := c.m.Protocol(service); p != c.protocol {
		return entryErr(from, "leads to service %q with protocol %q, but the chain of %q has protocol %q (a discovery chain uses one protocol)", service, p, c.service, c.protocol)
	}
	return nil
}

// splitterOrResolver follows service's splitter if it has one, else its
// resolver.
func (c *compiler) splitterOrResolver(service string, from entryRef) (step, error) {
	sp := c.entries(service).Splitter
	if sp == nil {
		res, err := c.resolve(target{service: service}, from, false)
		if err != nil {
			return step{}, err
		}
		return step{resolved: res, lb: res.hashLB()}, nil
	}
	ref := entryRef{kindSplitter, sp.Name}
	if err := c.checkProtocol(service, from); err != nil {
		return step{}, err
	}
	if !isHTTP(c.protocol) {
		return step{}, entryErr(ref, "service %q has protocol %q, which does not allow splitting (set protocol http, http2 or grpc in its service-defaults)", service, c.protocol)
	}
	for i, s := range c.stack {
		if s == service {
			cycle := append(append([]string{}, c.stack[i:]...), service)
			return step{}, entryErr(ref, "circular reference: %s", joinEntries(kindSplitter, cycle))
		}
	}
	if len(c.stack) >= maxChainDepth {
		return step{}, entryErr(ref, "splitters nest more than %d deep: %s", maxChainDepth, joinEntries(kindSplitter, c.stack))
	}
	if len(sp.Splits) == 0 {
		return step{}, entryErr(ref, "has no splits")
	}
	total := 0
	for _, s := range sp.Splits {
		if s.Weight < 0 {
			return step{}, entryErr(ref, "split to %q has a negative weight", s.Service)
		}
		total += scaleWeight(s.Weight)
	}
	if total != fullWeight {
		return step{}, entryErr(ref, "split weights add up to %.2f, not 100", float64(total)/100)
	}

	c.stack = append(c.stack, service)
	defer func() { c.stack = c.stack[:len(c.stack)-1] }()

	var out step
	for i := range sp.Splits {
		s := &sp.Splits[i]
		w := scaleWeight(s.Weight)
		svc := s.Service
		if svc == "" {
			svc = service
		}
		if svc != service && s.ServiceSubset == "" && c.entries(svc).Splitter != nil {
			inner, err := c.splitterOrResolver(svc, ref)
			if err != nil {
				return step{}, err
			}
			// Flatten: the inner weights are shares of this split.
			for _, is := range inner.splits {
				out.splits = append(out.splits, split{
					weight:   int(math.Round(float64(w) * float64(is.weight) / fullWeight)),
					to:       is.to,
					request:  mergeHeaders(s.RequestHeaders, is.request),
					response: mergeHeaders(is.response, s.ResponseHeaders),
				})
			}
			if out.lb == nil {
				out.lb = inner.lb
			}
			continue
		}
		res, err := c.resolve(target{svc, s.ServiceSubset}, ref, false)
		if err != nil {
			return step{}, err
		}
		out.splits = append(out.splits, split{weight: w, to: res, request: s.RequestHeaders, response: s.ResponseHeaders})
		// Like Consul, the first hash-based resolver's policy applies to
		// the whole split: a route carries one set of hash policies.
		if out.lb == nil {
			out.lb = res.hashLB()
		}
	}
	return out, nil
}

// fullWeight is 100% in 0.01% units.
const fullWeight = 10000

// scaleWeight turns Consul's percentage (two decimals) into 0.01% units.
func scaleWeight(w float32) int { return int(math.Round(float64(w) * 100)) }

func joinEntries(kind string, names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = kind + " " + n
	}
	return strings.Join(parts, " -> ")
}

// resolve applies t's service-resolver: redirects, the default subset,
// subset checks and, unless forFailover, failover. from names the entry
// asking for t, for errors.
func (c *compiler) resolve(t target, from entryRef, forFailover bool) (*resolution, error) {
	if !forFailover {
		if r, ok := c.resolved[t]; ok {
			return r, nil
		}
	}
	requested := t
	var (
		seen     = map[target]bool{}
		order    []string
		resolver *api.ServiceResolverConfigEntry
	)
	for {
		if err := c.checkProtocol(t.service, from); err != nil {
			return nil, err
		}
		order = append(order, t.cluster())
		if seen[t] {
			return nil, entryErr(from, "circular redirect: %s", strings.Join(order, " -> "))
		}
		if len(order) > maxChainDepth {
			return nil, entryErr(from, "redirects go more than %d deep: %s", maxChainDepth, strings.Join(order, " -> "))
		}
		seen[t] = true
		resolver = c.entries(t.service).Resolver
		if resolver == nil {
			if t.subset != "" {
				return nil, entryErr(from, "service %q has no subset %q (it has no service-resolver)", t.service, t.subset)
			}
			break
		}
		ref := entryRef{kindResolver, resolver.Name}
		if rd := resolver.Redirect; rd != nil {
			if err := c.checkLocal(ref, "redirect", rd.Datacenter, rd.Peer, rd.SamenessGroup); err != nil {
				return nil, err
			}
			next := rewrite(t, rd.Service, rd.ServiceSubset)
			if next != t {
				t, from = next, ref
				continue
			}
		}
		if t.subset == "" && resolver.DefaultSubset != "" {
			t, from = target{t.service, resolver.DefaultSubset}, ref
			continue
		}
		if t.subset != "" {
			if _, ok := resolver.Subsets[t.subset]; !ok {
				return nil, entryErr(from, "service %q has no subset %q in its service-resolver", t.service, t.subset)
			}
		}
		break
	}

	res := &resolution{target: t, connectTimeout: defaultConnectTimeout}
	if resolver != nil {
		if resolver.ConnectTimeout > 0 {
			res.connectTimeout = resolver.ConnectTimeout
		}
		res.requestTimeout = resolver.RequestTimeout
		res.lb = resolver.LoadBalancer
		if err := checkLB(entryRef{kindResolver, resolver.Name}, res.lb); err != nil {
			return nil, err
		}
	}
	if forFailover {
		return res, nil
	}
	c.resolved[requested] = res
	if resolver == nil {
		return res, nil
	}
	ref := entryRef{kindResolver, resolver.Name}
	for _, ft := range c.failoverTargets(t, resolver) {
		fr, err := c.resolve(ft, ref, true)
		if err != nil {
			return nil, err
		}
		if fr.target != t && !containsTarget(res.failover, fr.target) {
			res.failover = append(res.failover, fr.target)
		}
	}
	return res, nil
}

// checkLocal rejects what reaches outside this datacenter: cross-datacenter
// traffic, cluster peering and sameness groups are not supported.
func (c *compiler) checkLocal(ref entryRef, what, dc, peer, samenessGroup string) error {
	switch {
	case dc != "" && dc != c.m.Datacenter:
		return entryErr(ref, "%s to datacenter %q is not supported (only the local datacenter %q)", what, dc, c.m.Datacenter)
	case peer != "":
		return entryErr(ref, "%s to peer %q is not supported", what, peer)
	case samenessGroup != "":
		return entryErr(ref, "%s to sameness group %q is not supported", what, samenessGroup)
	}
	return nil
}

// failoverTargets lists the same-datacenter failover targets of t, before
// their own resolvers apply. Targets in other datacenters, peers and
// sameness groups are left out: only local failover is supported.
func (c *compiler) failoverTargets(t target, r *api.ServiceResolverConfigEntry) []target {
	f, ok := r.Failover[t.subset]
	if !ok {
		if f, ok = r.Failover["*"]; !ok {
			return nil
		}
	}
	local := func(dc string) bool { return dc == "" || dc == c.m.Datacenter }
	var out []target
	switch {
	case len(f.Targets) > 0:
		for _, ft := range f.Targets {
			if ft.Peer == "" && local(ft.Datacenter) {
				out = append(out, rewrite(t, ft.Service, ft.ServiceSubset))
			}
		}
	case len(f.Datacenters) > 0:
		for _, dc := range f.Datacenters {
			if local(dc) {
				out = append(out, rewrite(t, f.Service, f.ServiceSubset))
			}
		}
	case f.SamenessGroup != "":
	default:
		out = append(out, rewrite(t, f.Service, f.ServiceSubset))
	}
	return out
}

// rewrite is Consul's rewriteTarget: another service drops the subset
// unless one is given.
func rewrite(t target, service, subset string) target {
	if service != "" && service != t.service {
		t = target{service: service}
	}
	if subset != "" {
		t.subset = subset
	}
	return t
}

func containsTarget(ts []target, t target) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}

// mergeHeaders is Consul's MergeHTTPHeaderModifiers: overrides win for Add
// and Set, removals are the union.
func mergeHeaders(base, overrides *api.HTTPHeaderModifiers) *api.HTTPHeaderModifiers {
	if headersEmpty(base) {
		return overrides
	}
	if headersEmpty(overrides) {
		return base
	}
	out := &api.HTTPHeaderModifiers{Add: map[string]string{}, Set: map[string]string{}}
	for _, h := range []*api.HTTPHeaderModifiers{base, overrides} {
		for k, v := range h.Add {
			out.Add[k] = v
		}
		for k, v := range h.Set {
			out.Set[k] = v
		}
		for _, r := range h.Remove {
			if !containsString(out.Remove, r) {
				out.Remove = append(out.Remove, r)
			}
		}
	}
	return out
}

func headersEmpty(h *api.HTTPHeaderModifiers) bool {
	return h == nil || len(h.Add) == 0 && len(h.Set) == 0 && len(h.Remove) == 0
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
