package server

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/outrigger-mesh/outrigger/controlplane/translate"
)

// The resource types a translation produces, in the order the snapshot's
// content is hashed.
const (
	slotListener = iota
	slotRoute
	slotCluster
	slotEndpoint
	slotSecret
	numSlots
)

var slots = [numSlots]struct {
	typeURL string
	kind    string // for error messages
	index   types.ResponseType
}{
	{resource.ListenerType, "listener", types.Listener},
	{resource.RouteType, "route", types.Route},
	{resource.ClusterType, "cluster", types.Cluster},
	{resource.EndpointType, "endpoint", types.Endpoint},
	{resource.SecretType, "secret", types.Secret},
}

// item is one validated resource with its content hash.
type item struct {
	name string
	hash string
	res  types.Resource
}

// content is one translation, validated and hashed: the group key names
// it, each type's version names that type's resources, and each resource's
// hash is its delta version.
type content struct {
	key      string
	versions [numSlots]string
	items    [numSlots][]item
}

// hashLen is how many hex digits of SHA-256 versions and keys keep: 64 bits,
// ample to tell apart the states of one resource name.
const hashLen = 16

func shortHash(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:hashLen/2])
}

// builder validates and hashes translations for one Update. Identical
// resources are interned (one object kept per content hash, reused across
// groups and from the previous update), so memory grows with the distinct
// configuration, not with the number of proxies.
type builder struct {
	interned map[string]types.Resource
	prev     map[string]types.Resource
	// seen memoizes resources the translator returned more than once (by
	// pointer) so they are validated and marshalled once per update.
	seen map[types.Resource]string
}

func newBuilder(prev map[string]types.Resource) *builder {
	return &builder{interned: map[string]types.Resource{}, prev: prev, seen: map[types.Resource]string{}}
}

// hash validates r and returns its content hash and the object to keep.
func (b *builder) hash(r types.Resource) (string, types.Resource, error) {
	if h, ok := b.seen[r]; ok {
		return h, b.interned[h], nil
	}
	if v, ok := r.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return "", nil, err
		}
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
	if err != nil {
		return "", nil, fmt.Errorf("marshal: %w", err)
	}
	h := shortHash(raw)
	keep, ok := b.interned[h]
	if !ok {
		if keep, ok = b.prev[h]; !ok {
			keep = r
		}
		b.interned[h] = keep
	}
	b.seen[r] = h
	return h, keep, nil
}

// content validates and hashes res. kind ("proxy" or "proxyless") is part
// of the group key.
func (b *builder) content(kind string, res *translate.Resources) (*content, error) {
	if res == nil {
		return nil, errors.New("translation returned no resources")
	}
	lists := [numSlots][]types.Resource{}
	for _, r := range res.Listeners {
		lists[slotListener] = append(lists[slotListener], r)
	}
	for _, r := range res.Routes {
		lists[slotRoute] = append(lists[slotRoute], r)
	}
	for _, r := range res.Clusters {
		lists[slotCluster] = append(lists[slotCluster], r)
	}
	for _, r := range res.Endpoints {
		lists[slotEndpoint] = append(lists[slotEndpoint], r)
	}
	for _, r := range res.Secrets {
		lists[slotSecret] = append(lists[slotSecret], r)
	}
	c := &content{}
	var keyed strings.Builder
	keyed.WriteString(kind)
	for s, list := range lists {
		items := make([]item, 0, len(list))
		for i, r := range list {
			if isNil(r) {
				return nil, fmt.Errorf("%s[%d] is nil", slots[s].kind, i)
			}
			name := cache.GetResourceName(r)
			if name == "" {
				return nil, fmt.Errorf("%s[%d] has no name", slots[s].kind, i)
			}
			h, keep, err := b.hash(r)
			if err != nil {
				return nil, fmt.Errorf("%s %q: %w", slots[s].kind, name, err)
			}
			items = append(items, item{name: name, hash: h, res: keep})
		}
		slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.name, b.name) })
		var typed strings.Builder
		for i, it := range items {
			if i > 0 && items[i-1].name == it.name {
				return nil, fmt.Errorf("%s %q appears twice", slots[s].kind, it.name)
			}
			typed.WriteString(it.name)
			typed.WriteByte(0)
			typed.WriteString(it.hash)
			typed.WriteByte(0)
		}
		c.items[s] = items
		c.versions[s] = shortHash([]byte(typed.String()))
		keyed.WriteByte(0)
		keyed.WriteString(c.versions[s])
	}
	if err := checkReferences(c); err != nil {
		return nil, err
	}
	c.key = shortHash([]byte(keyed.String()))
	return c, nil
}

// isNil reports a nil message, typed or not.
func isNil(r types.Resource) bool {
	return r == nil || !r.ProtoReflect().IsValid()
}

// snapshot builds the cache snapshot of c: each type carries its own
// version, and the per-resource version map (which delta xDS compares) is
// filled from the content hashes, so go-control-plane never re-marshals to
// compute it.
func (c *content) snapshot() *cache.Snapshot {
	s := &cache.Snapshot{VersionMap: make(map[string]map[string]string, numSlots)}
	for i, slot := range slots {
		items := make(map[string]types.ResourceWithTTL, len(c.items[i]))
		versions := make(map[string]string, len(c.items[i]))
		for _, it := range c.items[i] {
			items[it.name] = types.ResourceWithTTL{Resource: it.res}
			versions[it.name] = it.hash
		}
		s.Resources[slot.index] = cache.Resources{Version: c.versions[i], Items: items}
		s.VersionMap[slot.typeURL] = versions
	}
	return s
}

// checkReferences requires the route configurations to be exactly those the
// listeners name over RDS (in filter chains and API listeners alike), the
// endpoints exactly those the EDS clusters name, and the secrets exactly
// those the listeners' and clusters' TLS transport sockets name over SDS.
// Any mismatch would leave a client warming forever or holding config
// nothing uses; go-control-plane's Snapshot.Consistent does the same for
// routes and endpoints but does not look into API listeners, which
// proxyless gRPC clients use, nor at secrets.
func checkReferences(c *content) error {
	var problems []error
	routes := map[string]string{}     // route name -> the listener naming it
	secrets := map[string]secretRef{} // secret name -> a resource naming it
	for _, it := range c.items[slotListener] {
		l := it.res.(*listenerv3.Listener)
		var managers []*hcmv3.HttpConnectionManager
		chains := l.GetFilterChains()
		if d := l.GetDefaultFilterChain(); d != nil {
			chains = append(slices.Clip(chains), d)
		}
		for _, fc := range chains {
			if err := secretRefs(fc.GetTransportSocket(), &tlsv3.DownstreamTlsContext{}, secrets, secretRef{"listener", it.name}); err != nil {
				problems = append(problems, fmt.Errorf("listener %q: %w", it.name, err))
			}
			for _, f := range fc.GetFilters() {
				if m := resource.GetHTTPConnectionManager(f); m != nil {
					managers = append(managers, m)
				}
			}
		}
		if a := l.GetApiListener().GetApiListener(); a != nil {
			m := &hcmv3.HttpConnectionManager{}
			if err := anypb.UnmarshalTo(a, m, proto.UnmarshalOptions{}); err != nil {
				problems = append(problems, fmt.Errorf("listener %q: api_listener: %w", it.name, err))
				continue
			}
			managers = append(managers, m)
		}
		for _, m := range managers {
			if err := m.ValidateAll(); err != nil {
				problems = append(problems, fmt.Errorf("listener %q: http_connection_manager: %w", it.name, err))
			}
			if name := m.GetRds().GetRouteConfigName(); name != "" {
				routes[name] = it.name
			}
		}
	}
	problems = append(problems, matchRefs(routes, c.items[slotRoute], "listener", "route")...)

	endpoints := map[string]string{} // load assignment name -> the cluster naming it
	for _, it := range c.items[slotCluster] {
		cl := it.res.(*clusterv3.Cluster)
		if err := secretRefs(cl.GetTransportSocket(), &tlsv3.UpstreamTlsContext{}, secrets, secretRef{"cluster", it.name}); err != nil {
			problems = append(problems, fmt.Errorf("cluster %q: %w", it.name, err))
		}
		if cl.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		name := cl.GetEdsClusterConfig().GetServiceName()
		if name == "" {
			name = cl.GetName()
		}
		endpoints[name] = it.name
	}
	problems = append(problems, matchRefs(endpoints, c.items[slotEndpoint], "cluster", "endpoint")...)
	problems = append(problems, matchSecrets(secrets, c.items[slotSecret])...)
	return errors.Join(problems...)
}

// secretRef is a listener or cluster naming a secret.
type secretRef struct{ kind, name string }

// matchSecrets is matchRefs for secrets, which listeners and clusters both
// name.
func matchSecrets(refs map[string]secretRef, present []item) []error {
	var problems []error
	have := make(map[string]bool, len(present))
	for _, it := range present {
		have[it.name] = true
		if _, ok := refs[it.name]; !ok {
			problems = append(problems, fmt.Errorf("secret %q is not referenced by any listener or cluster", it.name))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(refs)) {
		if !have[name] {
			problems = append(problems, fmt.Errorf("%s %q references secret %q, which is not in the configuration", refs[name].kind, refs[name].name, name))
		}
	}
	return problems
}

// tlsContext is a DownstreamTlsContext or an UpstreamTlsContext.
type tlsContext interface {
	proto.Message
	GetCommonTlsContext() *tlsv3.CommonTlsContext
}

// secretRefs records (name -> referrer) the SDS secrets a TLS transport
// socket names: its certificates and its validation context, plain or
// combined. A transport socket that is not TLS, or carries its context
// in a form that cannot be read, names none (the latter is an error).
// Secrets from another config source than ADS are not looked for in the
// snapshot.
func secretRefs(ts *corev3.TransportSocket, ctx tlsContext, refs map[string]secretRef, referrer secretRef) error {
	a := ts.GetTypedConfig()
	if a == nil {
		return nil
	}
	want := string(ctx.ProtoReflect().Descriptor().FullName())
	if name, _ := strings.CutPrefix(a.GetTypeUrl(), "type.googleapis.com/"); name != want {
		return nil
	}
	if err := anypb.UnmarshalTo(a, ctx, proto.UnmarshalOptions{}); err != nil {
		return fmt.Errorf("transport_socket: %w", err)
	}
	common := ctx.GetCommonTlsContext()
	add := func(sds *tlsv3.SdsSecretConfig) {
		if _, seen := refs[sds.GetName()]; !seen && sds.GetName() != "" && sds.GetSdsConfig().GetAds() != nil {
			refs[sds.GetName()] = referrer
		}
	}
	for _, sds := range common.GetTlsCertificateSdsSecretConfigs() {
		add(sds)
	}
	add(common.GetValidationContextSdsSecretConfig())
	add(common.GetCombinedValidationContext().GetValidationContextSdsSecretConfig())
	return nil
}

// matchRefs compares the names referenced (name -> referrer) with the
// resources present.
func matchRefs(refs map[string]string, present []item, referrer, kind string) []error {
	var problems []error
	have := make(map[string]bool, len(present))
	for _, it := range present {
		have[it.name] = true
		if _, ok := refs[it.name]; !ok {
			problems = append(problems, fmt.Errorf("%s %q is not referenced by any %s", kind, it.name, referrer))
		}
	}
	missing := make([]string, 0)
	for name := range refs {
		if !have[name] {
			missing = append(missing, name)
		}
	}
	slices.Sort(missing)
	for _, name := range missing {
		problems = append(problems, fmt.Errorf("%s %q references %s %q, which is not in the configuration", referrer, refs[name], kind, name))
	}
	return problems
}
