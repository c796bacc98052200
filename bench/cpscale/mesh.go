package cpscale

import (
	"context"
	"errors"
	"fmt"
	"sync"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/hashicorp/consul/api"
	"google.golang.org/protobuf/proto"
)

// Fixed parts of the registered mesh.
const (
	// HubService is the service every proxy has as its first upstream; the
	// bench's changes touch it, so each one reaches every proxy.
	HubService = "cpb-hub"
	hubNode    = "cpb-hub-node"
	// sidecarPort, appPort: every sidecar listens on sidecarPort and
	// forwards to its application on appPort (same ports on every
	// replica, as in a real deployment).
	sidecarPort = 21000
	appPort     = 8080
	// hubBindPort and nextBindPort are the local ports of the upstreams.
	hubBindPort  = 9000
	nextBindPort = 9001
	// podsPerNode is how many replicas share one synthetic Consul node.
	podsPerNode = 100
	// txnOps is the number of operations per /v1/txn request.
	txnOps = 64
	// registerWorkers is how many catalog registrations run at once.
	registerWorkers = 32
)

// Layout is the mesh the bench registers in Consul: Services services with
// one instance and one sidecar per proxy, spread round-robin, plus
// HubService with HubInstances instances.
type Layout struct {
	// Proxies is the number of sidecars that connect over xDS.
	Proxies int
	// Services is the number of services they are spread over.
	Services int
	// Upstreams is 1 (HubService) or 2 (also the next service,
	// cpb-svc-<i+1 mod Services>).
	Upstreams int
	// HubInstances is how many instances (each with a sidecar that does not
	// connect) HubService starts with.
	HubInstances int
	// Shared gives every replica of a service the same address, so their
	// sidecars' translations are identical. Without it each replica has its
	// own address (its pod IP), as in a real deployment.
	Shared bool
}

// Validate checks the layout's bounds.
func (l Layout) Validate() error {
	var errs []error
	if l.Proxies < 1 || l.Proxies > 1<<22 {
		errs = append(errs, fmt.Errorf("proxies %d: want 1..%d", l.Proxies, 1<<22))
	}
	if l.Services < 1 || l.Services > 1<<15 {
		errs = append(errs, fmt.Errorf("services %d: want 1..%d", l.Services, 1<<15))
	}
	if l.Upstreams < 1 || l.Upstreams > 2 {
		errs = append(errs, fmt.Errorf("upstreams %d: want 1 (the hub) or 2 (the hub and the next service)", l.Upstreams))
	}
	if l.HubInstances < 1 || l.HubInstances > 250 {
		errs = append(errs, fmt.Errorf("hub instances %d: want 1..250", l.HubInstances))
	}
	return errors.Join(errs...)
}

// ServiceName is the name of service i.
func ServiceName(i int) string { return fmt.Sprintf("cpb-svc-%d", i) }

// ProxyID is the Consul service ID of sidecar j: the node.id it sends.
func (l Layout) ProxyID(j int) string { return l.instanceID(j) + "-sidecar-proxy" }

// ProxyService is the destination service of sidecar j (its node.cluster).
func (l Layout) ProxyService(j int) string { return ServiceName(j % l.Services) }

func (l Layout) instanceID(j int) string { return fmt.Sprintf("%s-%d", l.ProxyService(j), j) }

func nodeName(j int) string { return fmt.Sprintf("cpb-node-%d", j/podsPerNode) }

func nodeAddress(j int) string {
	k := j / podsPerNode
	return fmt.Sprintf("172.16.%d.%d", (k>>8)&255, k&255)
}

// podAddress is replica j's address: its own (10.0.0.0/9), or with Shared
// its service's (10.128.0.0/9).
func (l Layout) podAddress(j int) string {
	if l.Shared {
		s := j % l.Services
		return fmt.Sprintf("10.%d.%d.1", 128+(s>>8), s&255)
	}
	n := j + 1
	return fmt.Sprintf("10.%d.%d.%d", (n>>16)&127, (n>>8)&255, n&255)
}

func hubAddress(h int) string { return fmt.Sprintf("10.250.0.%d", h+1) }

// extraHubAddress is the address of the instance added by change k.
func extraHubAddress(k int) string { return fmt.Sprintf("10.251.%d.%d", ((k+1)>>8)&255, (k+1)&255) }

// upstreams of a sidecar of service s.
func (l Layout) upstreams(s int) []api.Upstream {
	ups := []api.Upstream{{DestinationType: api.UpstreamDestTypeService, DestinationName: HubService, LocalBindPort: hubBindPort}}
	if l.Upstreams > 1 {
		ups = append(ups, api.Upstream{DestinationType: api.UpstreamDestTypeService,
			DestinationName: ServiceName((s + 1) % l.Services), LocalBindPort: nextBindPort})
	}
	return ups
}

// instance is service's instance id at addr.
func instance(service, id, addr string) api.AgentService {
	return api.AgentService{ID: id, Service: service, Address: addr, Port: appPort}
}

// sidecar is the connect-proxy in front of instance id of service.
func sidecar(service, id, addr string, ups []api.Upstream) *api.AgentService {
	return &api.AgentService{
		Kind:    api.ServiceKindConnectProxy,
		ID:      id + "-sidecar-proxy",
		Service: service + "-sidecar-proxy",
		Address: addr,
		Port:    sidecarPort,
		Proxy: &api.AgentServiceConnectProxyConfig{
			DestinationServiceName: service,
			DestinationServiceID:   id,
			LocalServiceAddress:    "127.0.0.1",
			LocalServicePort:       appPort,
			Upstreams:              ups,
		},
	}
}

// Register writes the whole layout to Consul: proxy-defaults (protocol
// http, so upstreams route over RDS), the nodes and instances in /v1/txn
// batches, and the sidecars through /v1/catalog/register (a transaction's
// service operation drops a proxy's upstreams: Consul 1.16
// agent/txn_endpoint.go copies only the destination and local fields).
func (l Layout) Register(ctx context.Context, c *api.Client) error {
	if err := l.Validate(); err != nil {
		return fmt.Errorf("cpscale: layout: %w", err)
	}
	pd := &api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal, Config: map[string]any{"protocol": "http"}}
	if _, _, err := c.ConfigEntries().Set(pd, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("cpscale: write proxy-defaults: %w", err)
	}

	var ops api.TxnOps
	ops = append(ops, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: hubNode, Address: "172.31.0.1"}}})
	for h := range l.HubInstances {
		in := instance(HubService, fmt.Sprintf("%s-%d", HubService, h), hubAddress(h))
		ops = append(ops, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: hubNode, Service: in}})
	}
	for j := range l.Proxies {
		if j%podsPerNode == 0 {
			ops = append(ops, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: nodeName(j), Address: nodeAddress(j)}}})
		}
		in := instance(l.ProxyService(j), l.instanceID(j), l.podAddress(j))
		ops = append(ops, &api.TxnOp{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: nodeName(j), Service: in}})
	}
	for len(ops) > 0 {
		n := min(txnOps, len(ops))
		if err := runTxn(ctx, c, ops[:n]); err != nil {
			return err
		}
		ops = ops[n:]
	}

	regs := make(chan *api.CatalogRegistration)
	errc := make(chan error, registerWorkers)
	var wg sync.WaitGroup
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range registerWorkers {
		wg.Go(func() {
			for r := range regs {
				if _, err := c.Catalog().Register(r, (&api.WriteOptions{}).WithContext(wctx)); err != nil {
					errc <- fmt.Errorf("cpscale: register %s: %w", r.Service.ID, err)
					cancel()
					return
				}
			}
		})
	}
	send := func(r *api.CatalogRegistration) bool {
		select {
		case regs <- r:
			return true
		case <-wctx.Done():
			return false
		}
	}
	ok := true
	for h := 0; ok && h < l.HubInstances; h++ {
		ok = send(&api.CatalogRegistration{Node: hubNode, Address: "172.31.0.1", SkipNodeUpdate: true,
			Service: sidecar(HubService, fmt.Sprintf("%s-%d", HubService, h), hubAddress(h), nil)})
	}
	for j := 0; ok && j < l.Proxies; j++ {
		s := j % l.Services
		ok = send(&api.CatalogRegistration{Node: nodeName(j), Address: nodeAddress(j), SkipNodeUpdate: true,
			Service: sidecar(ServiceName(s), l.instanceID(j), l.podAddress(j), l.upstreams(s))})
	}
	close(regs)
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	return ctx.Err()
}

// RegisteredProxies is how many connect-proxies the layout registers (the
// connecting sidecars and the hub's).
func (l Layout) RegisteredProxies() int { return l.Proxies + l.HubInstances }

// runTxn applies ops atomically.
func runTxn(ctx context.Context, c *api.Client, ops api.TxnOps) error {
	ok, resp, _, err := c.Txn().Txn(ops, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("cpscale: consul txn of %d operations: %w", len(ops), err)
	}
	if !ok {
		var errs []error
		if resp != nil {
			for _, e := range resp.Errors {
				errs = append(errs, fmt.Errorf("operation %d: %s", e.OpIndex, e.What))
			}
		}
		return fmt.Errorf("cpscale: consul rolled back a txn of %d operations: %w", len(ops), errors.Join(errs...))
	}
	return nil
}

// Change is one Consul write that reaches every proxy, and how a proxy's
// configuration shows it.
type Change struct {
	// Kind is endpoint-add, endpoint-remove, splitter-set or
	// splitter-delete.
	Kind string
	// Detail says what exactly changes.
	Detail string
	// TypeURL and Resource name the resource that carries the change.
	TypeURL  string
	Resource string
	apply    func(ctx context.Context, c *api.Client) error
	// match reports whether the resource (its serialized form) shows the
	// change.
	match func(raw []byte) bool
}

// ChangeKinds are the changes a run cycles through, in order.
var ChangeKinds = []string{"endpoint-add", "endpoint-remove", "splitter-set", "splitter-delete"}

// Changes returns the first n changes of the cycle. Each one alters the
// hub's endpoints (EDS) or its route (RDS, plus a cluster for the split
// target), which every proxy has.
func Changes(n int) []*Change {
	out := make([]*Change, 0, n)
	for i := range n {
		k := i / len(ChangeKinds) // the k-th extra hub instance
		switch ChangeKinds[i%len(ChangeKinds)] {
		case "endpoint-add":
			out = append(out, endpointChange(k, true))
		case "endpoint-remove":
			out = append(out, endpointChange(k, false))
		case "splitter-set":
			out = append(out, splitterChange(true))
		case "splitter-delete":
			out = append(out, splitterChange(false))
		}
	}
	return out
}

// endpointChange registers (add) or deregisters extra hub instance k and
// its sidecar in one transaction: the hub's endpoints gain or lose it.
func endpointChange(k int, add bool) *Change {
	id := fmt.Sprintf("%s-extra-%d", HubService, k)
	addr := extraHubAddress(k)
	ch := &Change{TypeURL: resource.EndpointType, Resource: HubService}
	in := instance(HubService, id, addr)
	sc := sidecar(HubService, id, addr, nil)
	if add {
		ch.Kind, ch.Detail = "endpoint-add", fmt.Sprintf("register %s and its sidecar at %s:%d", id, addr, sidecarPort)
		ch.apply = func(ctx context.Context, c *api.Client) error {
			return runTxn(ctx, c, api.TxnOps{
				{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: hubNode, Service: in}},
				{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: hubNode, Service: *sc}},
			})
		}
		ch.match = func(raw []byte) bool { return claHas(raw, addr) }
	} else {
		ch.Kind, ch.Detail = "endpoint-remove", fmt.Sprintf("deregister %s and its sidecar", id)
		ch.apply = func(ctx context.Context, c *api.Client) error {
			return runTxn(ctx, c, api.TxnOps{
				{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: hubNode, Service: api.AgentService{ID: sc.ID, Service: sc.Service}}},
				{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: hubNode, Service: api.AgentService{ID: id, Service: HubService}}},
			})
		}
		ch.match = func(raw []byte) bool { return !claHas(raw, addr) }
	}
	return ch
}

// splitTarget is where the splitter sends a tenth of the hub's traffic.
var splitTarget = ServiceName(0)

// splitterChange writes (set) or deletes the hub's service-splitter: the
// hub's route gains or loses weighted clusters.
func splitterChange(set bool) *Change {
	ch := &Change{TypeURL: resource.RouteType, Resource: HubService}
	if set {
		ch.Kind, ch.Detail = "splitter-set", fmt.Sprintf("service-splitter %s: 90%% %s, 10%% %s", HubService, HubService, splitTarget)
		ch.apply = func(ctx context.Context, c *api.Client) error {
			e := &api.ServiceSplitterConfigEntry{Kind: api.ServiceSplitter, Name: HubService, Splits: []api.ServiceSplit{
				{Weight: 90, Service: HubService}, {Weight: 10, Service: splitTarget},
			}}
			if _, _, err := c.ConfigEntries().Set(e, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
				return fmt.Errorf("cpscale: write service-splitter %s: %w", HubService, err)
			}
			return nil
		}
		ch.match = func(raw []byte) bool { return routeSplitsTo(raw, splitTarget) }
	} else {
		ch.Kind, ch.Detail = "splitter-delete", fmt.Sprintf("delete service-splitter %s", HubService)
		ch.apply = func(ctx context.Context, c *api.Client) error {
			if _, err := c.ConfigEntries().Delete(api.ServiceSplitter, HubService, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
				return fmt.Errorf("cpscale: delete service-splitter %s: %w", HubService, err)
			}
			return nil
		}
		ch.match = func(raw []byte) bool { return !routeSplitsTo(raw, splitTarget) }
	}
	return ch
}

// claHas reports whether a serialized ClusterLoadAssignment has an endpoint
// at host (any port). An undecodable one has nothing.
func claHas(raw []byte, host string) bool {
	cla := &endpointv3.ClusterLoadAssignment{}
	if proto.Unmarshal(raw, cla) != nil {
		return false
	}
	for _, loc := range cla.GetEndpoints() {
		for _, ep := range loc.GetLbEndpoints() {
			if ep.GetEndpoint().GetAddress().GetSocketAddress().GetAddress() == host {
				return true
			}
		}
	}
	return false
}

// routeSplitsTo reports whether a serialized RouteConfiguration has a
// route with weighted clusters that include cluster.
func routeSplitsTo(raw []byte, cluster string) bool {
	rc := &routev3.RouteConfiguration{}
	if proto.Unmarshal(raw, rc) != nil {
		return false
	}
	for _, vh := range rc.GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
				if wc.GetName() == cluster {
					return true
				}
			}
		}
	}
	return false
}
