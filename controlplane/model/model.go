// Package model is the control plane's view of Consul at one moment: the
// input of the translator. It holds consul/api's own types so nothing of
// Consul's meaning is re-modelled; the watcher fills it, the translator only
// reads it. A Mesh is immutable once published.
package model

import "github.com/hashicorp/consul/api"

// Mesh is everything the translator needs, read from Consul.
type Mesh struct {
	// Index is the highest Consul raft index the watcher has seen; it only
	// grows and names the state (it is not a resource version).
	Index uint64
	// Datacenter is the agent's datacenter ("dc1").
	Datacenter string
	// TrustDomain is the Connect CA's trust domain ("<uuid>.consul"), empty
	// until known.
	TrustDomain string
	// Proxies are the registered proxies the control plane configures, by
	// their service ID ("web-sidecar-proxy" or the ID the user gave): every
	// connect-proxy service (Kind "connect-proxy"; ServiceProxy carries
	// DestinationServiceName, LocalServiceAddress/Port and Upstreams) and
	// every ingress gateway (also in Gateways).
	Proxies map[string]*api.CatalogService
	// Gateways are the registered ingress-gateway services (Kind
	// "ingress-gateway") by service ID, the same values as in Proxies.
	// Their ServiceName names their ingress-gateway config entry and their
	// identity.
	Gateways map[string]*api.CatalogService
	// IngressGateways are the ingress-gateway config entries by name (the
	// gateway service's name).
	IngressGateways map[string]*api.IngressGatewayConfigEntry
	// JWTProviders are the jwt-provider config entries by name.
	JWTProviders map[string]*api.JWTProviderConfigEntry
	// Services by name: every service in the catalog except connect proxies.
	Services map[string]*Service
	// ProxyDefaults is the global proxy-defaults entry, nil when none.
	ProxyDefaults *api.ProxyConfigEntry

	// Roots is the Connect CA's trust bundle (/v1/agent/connect/ca/roots):
	// every root Consul still trusts, the active one and, during a
	// rotation, the previous ones. Nil until known. Its TrustDomain is
	// also in TrustDomain.
	Roots *api.CARootList
	// RootsIndex is the Consul index of the Roots answer.
	RootsIndex uint64
	// Leaves holds, by service name, the leaf certificate (and private key)
	// Consul issued for each service that has at least one registered
	// sidecar proxy, and for each ingress gateway's service (/v1/agent/connect/ca/leaf/<service>); its ModifyIndex
	// is the Consul index of the answer. A service is absent until its
	// first leaf is known; a leaf stays after a failed refresh (a Consul
	// outage) until Consul gives a new one.
	Leaves map[string]*api.LeafCert
	// Intentions are the service-intentions config entries by destination
	// name; the entry named "*" applies to every destination.
	Intentions map[string]*api.ServiceIntentionsConfigEntry
	// IntentionDefaultAllow is what happens to a connection no intention
	// matches: Consul's agent takes it from its ACL default policy
	// (acl.default_policy, "allow" unless set, so true in dev mode and
	// whenever ACLs are off; false with default_policy "deny"). False
	// (deny) until the agent's configuration has been read.
	IntentionDefaultAllow bool
}

// Service is one Consul service and the config entries that name it.
type Service struct {
	Name string
	// Instances are the passing instances of the service itself
	// (/v1/health/service/<name>?passing), sorted by node then service ID.
	// Proxyless gRPC clients connect to these directly.
	Instances []*api.ServiceEntry
	// Sidecars are the passing connect proxies in front of the service
	// (/v1/health/connect/<name>?passing), sorted by node then service ID:
	// the endpoints sidecars send mesh traffic to.
	Sidecars []*api.ServiceEntry
	// Subsets holds, per service-resolver subset name, the passing sidecars
	// that match the subset's Filter, as evaluated by Consul itself
	// (?filter=...) so bexpr semantics are Consul's. Sidecars inherit the
	// service's tags and meta, which is what subset filters test.
	Subsets map[string][]*api.ServiceEntry
	// Config entries naming this service; nil when absent.
	Defaults *api.ServiceConfigEntry
	Router   *api.ServiceRouterConfigEntry
	Splitter *api.ServiceSplitterConfigEntry
	Resolver *api.ServiceResolverConfigEntry
}

// Protocol is the service's effective protocol: service-defaults, then the
// global proxy-defaults config["protocol"], then "tcp" (Consul's default).
func (m *Mesh) Protocol(service string) string {
	if s := m.Services[service]; s != nil && s.Defaults != nil && s.Defaults.Protocol != "" {
		return s.Defaults.Protocol
	}
	if m.ProxyDefaults != nil {
		if p, ok := m.ProxyDefaults.Config["protocol"].(string); ok && p != "" {
			return p
		}
	}
	return "tcp"
}
