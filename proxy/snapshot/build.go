package snapshot

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/secret"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// Options relax Build's reference checks for configs whose missing parts
// are still to arrive over xDS.
type Options struct {
	// AllowMissingRoutes accepts rds names not among the route tables.
	AllowMissingRoutes bool
	// AllowMissingClusters accepts routes naming clusters not among the
	// clusters.
	AllowMissingClusters bool

	// Secrets is the store the snapshot's TLS contexts read their secrets
	// from (Snapshot.Secrets); nil makes a new one. Successive snapshots
	// of one proxy share its store, so that a secret update reaches the
	// listeners and clusters in force.
	Secrets *secret.Store
	// StaticSecrets are static_resources.secrets, referenced by name
	// without sds_config. They are validated, converted and put in force
	// in Secrets (secret.SourceStatic) when the build succeeds.
	StaticSecrets []*tlsv3.Secret
	// ADSSecrets are the Secrets received over ADS (secret.SourceADS), put
	// in force the same way; one with only its name (given up on, or
	// removed by the server) makes that secret unavailable.
	ADSSecrets []*tlsv3.Secret
}

// Build validates (ValidateAll, then the support table) and converts one
// complete set of resources into a Snapshot, checking that every reference
// resolves and every name is unique. Error paths start at "listeners[i]",
// "routes[i]" or "clusters[i]".
func Build(listeners []*listenerv3.Listener, routes []*routev3.RouteConfiguration, clusters []*clusterv3.Cluster) (*Snapshot, error) {
	return BuildWith(Options{}, listeners, routes, clusters)
}

// BuildWith is Build with relaxed reference checks.
func BuildWith(opts Options, listeners []*listenerv3.Listener, routes []*routev3.RouteConfiguration, clusters []*clusterv3.Cluster) (*Snapshot, error) {
	return BuildResources(opts, listeners, routes, clusters, nil)
}

// BuildResources is BuildWith for resources that arrived over xDS: EDS
// clusters take their endpoints from the ClusterLoadAssignment named by
// EDSName (none yet: no endpoints). Error paths start at "listeners[i]",
// "routes[i]", "clusters[i]" or "endpoints[i]".
func BuildResources(opts Options, listeners []*listenerv3.Listener, routes []*routev3.RouteConfiguration, clusters []*clusterv3.Cluster, endpoints []*endpointv3.ClusterLoadAssignment) (*Snapshot, error) {
	var unsupported []resource.FieldError
	check := func(path string, m proto.Message) error {
		_, err := resource.Validate(path, m)
		if u, ok := err.(*resource.UnsupportedError); ok {
			unsupported = append(unsupported, u.Fields...)
			return nil
		}
		return err
	}
	for i, l := range listeners {
		if err := check(resource.Index("listeners", i), l); err != nil {
			return nil, err
		}
	}
	for i, r := range routes {
		if err := check(resource.Index("routes", i), r); err != nil {
			return nil, err
		}
	}
	for i, c := range clusters {
		if err := check(resource.Index("clusters", i), c); err != nil {
			return nil, err
		}
	}
	for i, e := range endpoints {
		if err := check(resource.Index("endpoints", i), e); err != nil {
			return nil, err
		}
	}
	for i, sec := range opts.StaticSecrets {
		if err := check(resource.Index("secrets", i), sec); err != nil {
			return nil, err
		}
	}
	for i, sec := range opts.ADSSecrets {
		if sec.GetType() == nil {
			continue // a placeholder for a missing secret
		}
		if err := check(resource.Index("secrets", i), sec); err != nil {
			return nil, err
		}
	}
	if len(unsupported) > 0 {
		return nil, &resource.UnsupportedError{Fields: unsupported}
	}

	c := newConverter(opts)
	c.checkStatic = true
	c.convertSecrets("secrets", secret.SourceStatic, opts.StaticSecrets)
	c.convertSecrets("secrets", secret.SourceADS, opts.ADSSecrets)
	s := &Snapshot{Routes: make(map[string]*router.Config, len(routes)), Secrets: c.store()}
	listenerAt := map[string]string{}
	for i, l := range listeners {
		p := resource.Index("listeners", i)
		if prev, dup := listenerAt[l.GetName()]; dup {
			c.fail(resource.Join(p, "name"), "listener %q is also the name of %s", l.GetName(), prev)
		}
		listenerAt[l.GetName()] = p
		sl := c.listener(p, l)
		sl.Fingerprint = Fingerprint(l)
		s.Listeners = append(s.Listeners, sl)
	}
	routeAt := map[string]string{}
	for i, r := range routes {
		p := resource.Index("routes", i)
		if prev, dup := routeAt[r.GetName()]; dup {
			c.fail(resource.Join(p, "name"), "route configuration %q is also the name of %s", r.GetName(), prev)
		}
		routeAt[r.GetName()] = p
		s.Routes[r.GetName()] = c.route(p, r)
	}
	type assigned struct {
		eps    []cluster.Endpoint
		factor uint32
	}
	assignments := make(map[string]assigned, len(endpoints))
	for i, e := range endpoints {
		p := resource.Index("endpoints", i)
		if _, dup := assignments[e.GetClusterName()]; dup {
			c.fail(resource.Join(p, "cluster_name"), "assignment %q is given twice", e.GetClusterName())
		}
		eps, factor := c.assignment(p, e, "EDS endpoints need IP addresses")
		assignments[e.GetClusterName()] = assigned{eps, factor}
	}
	clusterAt := map[string]string{}
	for i, cl := range clusters {
		p := resource.Index("clusters", i)
		if prev, dup := clusterAt[cl.GetName()]; dup {
			c.fail(resource.Join(p, "name"), "cluster %q is also the name of %s", cl.GetName(), prev)
		}
		clusterAt[cl.GetName()] = p
		cc := c.cluster(p, cl)
		if cc.Discovery == cluster.EDS {
			a := assignments[EDSName(cl)]
			cc.Endpoints = a.eps
			if a.factor > 0 {
				cc.LB.OverprovisioningFactor = a.factor
			}
		}
		s.Clusters = append(s.Clusters, cc)
	}
	if !opts.AllowMissingClusters {
		for _, r := range c.clusterRefs {
			if _, ok := clusterAt[r.name]; !ok {
				c.fail(r.path, "cluster %q is not defined", r.name)
			}
		}
	}
	if !opts.AllowMissingRoutes {
		for _, r := range c.routeRefs {
			if _, ok := routeAt[r.name]; !ok {
				c.fail(r.path, "route configuration %q is not defined", r.name)
			}
		}
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	s.ADSSecretNames = sortedNames(c.adsSecrets)
	for k, sec := range c.pendingSecrets {
		c.store().Set(k, sec)
	}
	return s, nil
}

// ConvertListener converts one Listener that passed resource.Validate.
// Error paths are relative to the listener. Its TLS contexts read a
// scratch secret store: static secrets are not looked up.
func ConvertListener(l *listenerv3.Listener) (Listener, error) {
	c := newConverter(Options{})
	out := c.listener("", l)
	return out, c.err()
}

// ConvertRoute converts one RouteConfiguration that passed resource.Validate.
func ConvertRoute(r *routev3.RouteConfiguration) (*router.Config, error) {
	c := newConverter(Options{})
	out := c.route("", r)
	return out, c.err()
}

// ConvertCluster converts one Cluster that passed resource.Validate, like
// ConvertListener.
func ConvertCluster(cl *clusterv3.Cluster) (cluster.Config, error) {
	c := newConverter(Options{})
	out := c.cluster("", cl)
	return out, c.err()
}

// converter gathers every problem of a conversion with its path, and the
// references to check once everything is converted. Its zero value
// converts with a scratch secret store.
type converter struct {
	errs        []resource.FieldError
	clusterRefs []reference
	routeRefs   []reference

	secretStore    *secret.Store                 // nil until needed: store()
	checkStatic    bool                          // static secret references must resolve
	pendingSecrets map[secret.Key]*secret.Secret // converted, in force once the build succeeds
	adsSecrets     map[string]bool               // names of the secrets expected over ADS
}

func newConverter(o Options) *converter {
	return &converter{secretStore: o.Secrets}
}

type reference struct{ path, name string }

func (c *converter) fail(path, format string, args ...any) {
	c.errs = append(c.errs, resource.FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
}

// failErr records the field errors of a converter elsewhere (an
// *resource.UnsupportedError or *resource.InvalidError), or err as is.
func (c *converter) failErr(err error) {
	var u *resource.UnsupportedError
	var in *resource.InvalidError
	switch {
	case errors.As(err, &u):
		c.errs = append(c.errs, u.Fields...)
	case errors.As(err, &in):
		c.errs = append(c.errs, in.Fields...)
	default:
		c.errs = append(c.errs, resource.FieldError{Reason: err.Error()})
	}
}

func (c *converter) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return &resource.InvalidError{Fields: c.errs}
}

// duration converts an optional Duration: unset gives def, and 0 stays 0
// (Envoy's "disabled").
func duration(d *durationpb.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.AsDuration()
}

// socketAddress renders an Address as "host:port".
func (c *converter) socketAddress(path string, a *corev3.Address) string {
	sa := a.GetSocketAddress()
	if sa == nil {
		c.fail(path, "a socket_address is required")
		return ""
	}
	return joinHostPort(sa.GetAddress(), sa.GetPortValue())
}

func joinHostPort(host string, port uint32) string {
	return net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

// InconsistentError lists the broken references and duplicate names of a
// Snapshot. Missing references may be legitimate while resources are still
// arriving over xDS; callers can tell by Duplicates being empty.
type InconsistentError struct {
	Duplicates      []string
	MissingClusters []Reference
	MissingRoutes   []Reference
}

// Reference is a name used somewhere (From describes where).
type Reference struct {
	Name string
	From string
}

func (e *InconsistentError) Error() string {
	var lines []string
	lines = append(lines, e.Duplicates...)
	for _, r := range e.MissingClusters {
		lines = append(lines, fmt.Sprintf("%s: cluster %q is not defined", r.From, r.Name))
	}
	for _, r := range e.MissingRoutes {
		lines = append(lines, fmt.Sprintf("%s: route configuration %q is not defined", r.From, r.Name))
	}
	return strings.Join(lines, "\n")
}

// Consistent checks that names are unique and every reference resolves: the
// clusters of every route (inline or RDS) and the RDS names of every
// connection manager. It returns an *InconsistentError.
func (s *Snapshot) Consistent() error {
	e := &InconsistentError{}
	clusters := map[string]bool{}
	for _, c := range s.Clusters {
		if clusters[c.Name] {
			e.Duplicates = append(e.Duplicates, fmt.Sprintf("cluster %q is defined more than once", c.Name))
		}
		clusters[c.Name] = true
	}
	checkRoutes := func(rc *router.Config, from string) {
		for _, vh := range rc.VirtualHosts {
			for i, r := range vh.Routes {
				if r.Forward == nil {
					continue
				}
				where := fmt.Sprintf("%s virtual host %q route %d", from, vh.Name, i)
				names := []string{r.Forward.Cluster}
				if r.Forward.Cluster == "" {
					names = names[:0]
					for _, w := range r.Forward.WeightedClusters {
						names = append(names, w.Name)
					}
				}
				for _, n := range names {
					if !clusters[n] {
						e.MissingClusters = append(e.MissingClusters, Reference{Name: n, From: where})
					}
				}
			}
		}
	}
	listeners := map[string]bool{}
	for _, l := range s.Listeners {
		if listeners[l.Config.Name] {
			e.Duplicates = append(e.Duplicates, fmt.Sprintf("listener %q is defined more than once", l.Config.Name))
		}
		listeners[l.Config.Name] = true
		https := l.HTTP
		if l.DefaultHTTP != nil {
			https = append(https[:len(https):len(https)], *l.DefaultHTTP)
		}
		for _, h := range https {
			from := fmt.Sprintf("listener %q", l.Config.Name)
			switch {
			case h.Routes != nil:
				checkRoutes(h.Routes, from)
			case s.Routes[h.RDSName] == nil:
				e.MissingRoutes = append(e.MissingRoutes, Reference{Name: h.RDSName, From: from})
			}
		}
	}
	names := make([]string, 0, len(s.Routes))
	for n := range s.Routes {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		checkRoutes(s.Routes[n], fmt.Sprintf("route configuration %q", n))
	}
	if len(e.Duplicates)+len(e.MissingClusters)+len(e.MissingRoutes) == 0 {
		return nil
	}
	return e
}
