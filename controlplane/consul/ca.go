package consul

import (
	"reflect"

	"github.com/hashicorp/consul/api"
)

// This file follows what makes the mesh secure: the agent's configuration
// (datacenter, ACL default policy), the Connect CA's roots and one leaf
// certificate per service that has a sidecar proxy.

// agentSelf is what the watcher reads from /v1/agent/self.
type agentSelf struct {
	datacenter string
	// defaultAllow is Consul's intention default: its agent derives it from
	// the ACL default policy (agent.go, intentionDefaultAllow), whether ACLs
	// are enabled or not. policy is the raw value, "" when not found.
	defaultAllow bool
	policy       string
}

// selfDoc is the part of /v1/agent/self we read. DebugConfig is the
// agent's sanitized runtime configuration; ACLResolverSettings.ACLDefaultPolicy
// is the acl.default_policy the agent resolved ("allow" unless set).
type selfDoc struct {
	Config struct {
		Datacenter string
	}
	DebugConfig struct {
		ACLResolverSettings struct {
			ACLDefaultPolicy string
		}
	}
}

// fetchSelf reads the agent's datacenter and ACL default policy from
// /v1/agent/self (what Agent().Self() reads, but with the query's context
// so it can be cancelled).
func (w *Watcher) fetchSelf(q *api.QueryOptions) (agentSelf, *api.QueryMeta, error) {
	var doc selfDoc
	meta, err := w.client.Raw().Query("/v1/agent/self", &doc, (&api.QueryOptions{}).WithContext(q.Context()))
	policy := doc.DebugConfig.ACLResolverSettings.ACLDefaultPolicy
	return agentSelf{datacenter: doc.Config.Datacenter, defaultAllow: policy == "allow", policy: policy}, meta, err
}

// applySelf stores the agent's configuration. Callers hold w.mu.
func (w *Watcher) applySelf(self agentSelf) bool {
	switch self.policy {
	case "allow", "deny":
	default:
		w.log.Warn("cannot read the agent's ACL default policy from /v1/agent/self (DebugConfig.ACLResolverSettings.ACLDefaultPolicy); intentions default to deny",
			"policy", self.policy)
	}
	changed := w.st.datacenter != self.datacenter || w.st.defaultAllow != self.defaultAllow
	w.st.datacenter, w.st.defaultAllow = self.datacenter, self.defaultAllow
	return changed
}

// rootsAnswer is one roots answer with its index.
type rootsAnswer struct {
	roots *api.CARootList
	index uint64
}

// fetchRoots is Agent().ConnectCARoots keeping the answer's index: the
// agent serves the roots from its cache and answers a blocking query as
// soon as they change (a CA rotation).
func (w *Watcher) fetchRoots(q *api.QueryOptions) (rootsAnswer, *api.QueryMeta, error) {
	roots, meta, err := w.client.Agent().ConnectCARoots(q)
	if err != nil {
		return rootsAnswer{}, meta, err
	}
	return rootsAnswer{roots: roots, index: meta.LastIndex}, meta, nil
}

// applyRoots stores the trust bundle. Callers hold w.mu.
func (w *Watcher) applyRoots(a rootsAnswer) bool {
	td := ""
	if a.roots != nil {
		td = a.roots.TrustDomain
	}
	changed := w.st.trustDomain != td || w.st.rootsIndex != a.index || !reflect.DeepEqual(w.st.roots, a.roots)
	w.st.trustDomain, w.st.roots, w.st.rootsIndex = td, a.roots, a.index
	return changed
}

// leafState is one service's leaf certificate watch.
type leafState struct {
	watch *watch
	cert  *api.LeafCert // nil until the first answer
}

// apply stores a new leaf and reports whether it changed. An answer
// without a certificate or key never replaces a good one.
func (ls *leafState) apply(cert *api.LeafCert) bool {
	if cert == nil || cert.CertPEM == "" || cert.PrivateKeyPEM == "" {
		return false
	}
	changed := !reflect.DeepEqual(ls.cert, cert)
	ls.cert = cert
	return changed
}

// fetchLeaf is Agent().ConnectCALeaf for service: the agent issues the
// certificate (signing a CSR with the servers) and answers a blocking
// query when it renews it or re-signs it after a roots change.
func (w *Watcher) fetchLeaf(service string) fetchFunc[*api.LeafCert] {
	return func(q *api.QueryOptions) (*api.LeafCert, *api.QueryMeta, error) {
		return w.client.Agent().ConnectCALeaf(service, q)
	}
}

// reconcileLeaves runs one leaf watch per service that has at least one
// registered sidecar proxy and per ingress gateway service, and stops the
// others (their certificates are
// dropped with them). Callers hold w.mu.
func (w *Watcher) reconcileLeaves() bool {
	want := map[string]bool{}
	for _, ns := range w.st.names {
		for _, e := range ns.entries {
			switch {
			case e.ServiceKind == api.ServiceKindConnectProxy && e.ServiceProxy != nil && e.ServiceProxy.DestinationServiceName != "":
				want[e.ServiceProxy.DestinationServiceName] = true
			case e.ServiceKind == api.ServiceKindIngressGateway && e.ServiceName != "":
				// A gateway's clusters present its own service's leaf.
				want[e.ServiceName] = true
			}
		}
	}
	changed := false
	for service, ls := range w.st.leaves {
		if !want[service] {
			w.stopWatch(ls.watch)
			delete(w.st.leaves, service)
			changed = changed || ls.cert != nil
		}
	}
	for service := range want {
		if w.st.leaves[service] != nil {
			continue
		}
		ls := &leafState{}
		ls.watch = startWatch(w, &watch{name: "agent/connect/ca/leaf/" + service}, w.fetchLeaf(service), ls.apply)
		w.st.leaves[service] = ls
	}
	return changed
}
