package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/protobuf/proto"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/secret"
	"github.com/outrigger-mesh/outrigger/proxy/snapshot"
	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
	"github.com/outrigger-mesh/outrigger/xds/client"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// defaultInitialFetchTimeout is Envoy's initial_fetch_timeout default.
const defaultInitialFetchTimeout = 15 * time.Second

// userAgent names the proxy to xDS servers (node.user_agent_name).
const userAgent = "outrigger"

// runADS connects to the xDS server named by dynamic_resources and feeds
// every complete configuration it sends into Apply until ctx ends.
func (s *Server) runADS(ctx context.Context) error {
	ads := s.opts.Bootstrap.ADS
	conn, err := s.dialADS()
	if err != nil {
		s.log.Error("xDS: cannot set up the connection", "error", err)
		s.markSynced() // serve the static part rather than never becoming ready
		return err
	}
	defer conn.Close()
	timeout := ads.InitialFetchTimeout
	if timeout == 0 {
		timeout = defaultInitialFetchTimeout
	}
	readyAfter := timeout
	if timeout < 0 { // 0s in the bootstrap: wait for the server forever
		readyAfter = 1<<63 - 1
	}
	// Like Envoy, stop waiting for the first configuration after the
	// initial fetch timeout and serve what there is.
	t := time.AfterFunc(readyAfter, func() {
		select {
		case <-s.synced:
		default:
			s.log.Warn("xDS: no complete configuration within the initial fetch timeout; serving the static part", "timeout", timeout)
			s.markSynced()
		}
	})
	defer t.Stop()
	c := client.New(client.Config{
		Conn:                conn,
		Node:                s.node(),
		Delta:               ads.Delta,
		LDS:                 ads.LDS,
		CDS:                 ads.CDS,
		StaticRoutes:        s.staticRDSNames(),
		StaticSecrets:       s.staticSDSNames(),
		InitialFetchTimeout: timeout,
		Logger:              s.log.Named("xds"),
	}, &adsTarget{s: s, secrets: s.secretStore()})
	s.ads.Store(c) // the admin API reads its Status
	s.metrics.SetXDSSource(func() []telemetry.XDSType { return xdsTypes(c.Status()) })
	go func() {
		select {
		case <-c.Synced():
			s.markSynced()
		case <-ctx.Done():
		}
	}()
	err = c.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *Server) markSynced() { s.syncOne.Do(func() { close(s.synced) }) }

// node is the identity sent to the xDS server: the bootstrap's node with
// --service-node/--service-cluster applied and our user agent.
func (s *Server) node() *corev3.Node {
	b := s.opts.Bootstrap
	n := &corev3.Node{}
	if b.Proto != nil && b.Proto.GetNode() != nil {
		n = proto.Clone(b.Proto.GetNode()).(*corev3.Node)
	}
	n.Id, n.Cluster = b.Node.ID, b.Node.Cluster
	n.UserAgentName = userAgent
	n.UserAgentVersionType = &corev3.Node_UserAgentVersion{UserAgentVersion: s.opts.Version}
	return n
}

// staticRDSNames are the RDS names static listeners ask for.
func (s *Server) staticRDSNames() []string {
	var out []string
	if st := s.opts.Bootstrap.Static; st != nil {
		for _, l := range st.Listeners {
			hs := l.HTTP
			if l.DefaultHTTP != nil {
				hs = append(hs[:len(hs):len(hs)], *l.DefaultHTTP)
			}
			for _, h := range hs {
				if h.Routes == nil && h.RDSName != "" {
					out = append(out, h.RDSName)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// staticSDSNames are the SDS secrets static listeners and clusters expect
// over ADS.
func (s *Server) staticSDSNames() []string {
	if st := s.opts.Bootstrap.Static; st != nil {
		return st.ADSSecretNames
	}
	return nil
}

// secretStore is the store every snapshot of the server reads its secrets
// from: the static snapshot's, so that static and dynamic TLS contexts
// share it.
func (s *Server) secretStore() *secret.Store {
	if st := s.opts.Bootstrap.Static; st != nil && st.Secrets != nil {
		st.Secrets.SetLogger(s.log.Named("secret"))
		return st.Secrets
	}
	return secret.NewStore(secret.Options{Logger: s.log.Named("secret")})
}

// dialADS opens the gRPC connection to the xDS server: the static cluster
// envoy_grpc names (its endpoints, its TLS), or a google_grpc target.
func (s *Server) dialADS() (*grpc.ClientConn, error) {
	ads := s.opts.Bootstrap.ADS
	opts := []grpc.DialOption{
		grpc.WithUserAgent(userAgent + "/" + s.opts.Version),
		// Reconnect to a restarted control plane within seconds, not
		// gRPC's default two minutes; the client adds its own jitter.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 200 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	if ads.Authority != "" {
		opts = append(opts, grpc.WithAuthority(ads.Authority))
	}
	if ads.Target != "" {
		return grpc.NewClient(ads.Target, append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	}
	var cfg *cluster.Config
	for i := range s.opts.Bootstrap.Static.Clusters {
		if c := &s.opts.Bootstrap.Static.Clusters[i]; c.Name == ads.Cluster {
			cfg = c
		}
	}
	if cfg == nil || len(cfg.Endpoints) == 0 {
		return nil, fmt.Errorf("xDS cluster %q has no endpoints", ads.Cluster)
	}
	if cfg.TLS != nil {
		tc := cfg.TLS.Clone()
		tc.NextProtos = []string{"h2"}
		if tc.MinVersion == 0 {
			tc.MinVersion = tls.VersionTLS12
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if cfg.Discovery != cluster.Static {
		// DNS names: gRPC resolves and re-resolves them itself.
		return grpc.NewClient("dns:///"+cfg.Endpoints[0].Address, opts...)
	}
	r := manual.NewBuilderWithScheme("outrigger-xds")
	var addrs []resolver.Address
	for _, ep := range cfg.Endpoints {
		addrs = append(addrs, resolver.Address{Addr: ep.Address})
	}
	r.InitialState(resolver.State{Addresses: addrs})
	opts = append(opts, grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"pick_first":{}}]}`))
	return grpc.NewClient(r.Scheme()+":///"+ads.Cluster, opts...)
}

// adsTarget is the proxy as the xDS client sees it.
type adsTarget struct {
	s       *Server
	secrets *secret.Store // shared by every snapshot it builds
}

// Check validates one resource the way Apply will use it: the proto's own
// rules, our support table, and the conversion to the building blocks.
func (t *adsTarget) Check(typeURL string, m proto.Message) error {
	err := t.check(typeURL, m)
	if err != nil {
		t.s.metrics.ConfigUpdate(false)
	}
	return err
}

// The client names the resource in front of the error; paths here are
// relative to the resource.
func (t *adsTarget) check(typeURL string, m proto.Message) error {
	if _, err := resource.Validate("", m); err != nil {
		return err
	}
	static := t.s.opts.Bootstrap.Static
	var err error
	switch r := m.(type) {
	case *listenerv3.Listener:
		for _, l := range static.Listeners {
			if l.Config.Name == r.GetName() {
				return fmt.Errorf("listener %q: a static listener has that name", r.GetName())
			}
		}
		_, err = snapshot.ConvertListener(r)
	case *routev3.RouteConfiguration:
		var rc *router.Config
		if rc, err = snapshot.ConvertRoute(r); err == nil {
			_, err = router.New(rc)
		}
	case *clusterv3.Cluster:
		for _, c := range static.Clusters {
			if c.Name == r.GetName() {
				return fmt.Errorf("cluster %q: a static cluster has that name", r.GetName())
			}
		}
		var cc cluster.Config
		if cc, err = snapshot.ConvertCluster(r); err == nil {
			err = cc.Validate()
		}
	case *endpointv3.ClusterLoadAssignment:
		_, err = snapshot.ConvertEndpoints(r)
	case *tlsv3.Secret:
		_, err = snapshot.ConvertSecret(r)
	default:
		return fmt.Errorf("resource type %s is not supported", typeURL)
	}
	return err
}

// Apply merges the dynamic resources with the static ones and puts the
// result in force. Secrets go into the server's store as the snapshot is
// built, before its listeners and clusters: a secret update reaches the
// TLS contexts in force at once, for new handshakes.
func (t *adsTarget) Apply(r *client.Resources) error {
	dyn, err := snapshot.BuildResources(snapshot.Options{
		AllowMissingRoutes: true, AllowMissingClusters: true,
		Secrets: t.secrets, ADSSecrets: r.Secrets,
	}, r.Listeners, r.Routes, r.Clusters, r.Endpoints)
	if err != nil {
		return err
	}
	merged := mergeSnapshots(t.s.opts.Bootstrap.Static, dyn)
	merged.Version = versionString(r.Versions)
	if err := t.s.Apply(merged); err != nil {
		return err
	}
	t.s.log.Info("xDS configuration in force", "versions", merged.Version,
		"listeners", len(merged.Listeners), "clusters", len(merged.Clusters), "routes", len(merged.Routes))
	t.s.markSynced()
	return nil
}

func mergeSnapshots(static, dyn *snapshot.Snapshot) *snapshot.Snapshot {
	out := &snapshot.Snapshot{Routes: map[string]*router.Config{}, Secrets: dyn.Secrets}
	if static != nil {
		out.ADSSecretNames = append(out.ADSSecretNames, static.ADSSecretNames...)
		out.Listeners = append(out.Listeners, static.Listeners...)
		out.Clusters = append(out.Clusters, static.Clusters...)
		for n, rc := range static.Routes {
			out.Routes[n] = rc
		}
	}
	out.ADSSecretNames = slices.Compact(slices.Sorted(slices.Values(append(out.ADSSecretNames, dyn.ADSSecretNames...))))
	out.Listeners = append(out.Listeners, dyn.Listeners...)
	out.Clusters = append(out.Clusters, dyn.Clusters...)
	for n, rc := range dyn.Routes {
		out.Routes[n] = rc
	}
	return out
}

func versionString(v map[string]string) string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k[strings.LastIndexByte(k, '.')+1:])
		b.WriteByte('=')
		b.WriteString(v[k])
	}
	return b.String()
}

// xdsTypes is the client's per-type state for the metrics, by short type
// name, sorted.
func xdsTypes(st client.Status) []telemetry.XDSType {
	out := make([]telemetry.XDSType, 0, len(st.Types))
	for url, t := range st.Types {
		name := url[strings.LastIndexByte(url, '.')+1:]
		if name == "ClusterLoadAssignment" {
			name = "Endpoint"
		}
		name = strings.TrimSuffix(strings.ToLower(name), "configuration")
		out = append(out, telemetry.XDSType{Type: name, Version: t.Version, Accepted: t.Accepted, Rejected: t.Rejected})
	}
	slices.SortFunc(out, func(a, b telemetry.XDSType) int { return strings.Compare(a.Type, b.Type) })
	return out
}
