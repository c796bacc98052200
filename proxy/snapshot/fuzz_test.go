package snapshot

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	"sigs.k8s.io/yaml"

	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// The xDS types FuzzResources decodes, selected by the fuzzed kind.
const (
	fuzzListener = iota
	fuzzRoute
	fuzzCluster
	fuzzEndpoints
	fuzzSecret
	fuzzKinds
)

// fuzzSeeds are valid resources of each kind, marshalled: the static demo
// bootstrap's listeners and clusters, and resources built here.
func fuzzSeeds(f testing.TB) map[int][][]byte {
	seeds := map[int][][]byte{}
	add := func(kind int, m proto.Message) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		seeds[kind] = append(seeds[kind], b)
	}
	if y, err := os.ReadFile("../../examples/static/bootstrap.yaml"); err == nil {
		js, err := yaml.YAMLToJSON(y)
		if err != nil {
			f.Fatal(err)
		}
		bs := &bootstrapv3.Bootstrap{}
		if err := protojson.Unmarshal(js, bs); err != nil {
			f.Fatal(err)
		}
		for _, l := range bs.GetStaticResources().GetListeners() {
			add(fuzzListener, l)
		}
		for _, c := range bs.GetStaticResources().GetClusters() {
			add(fuzzCluster, c)
			if c.GetLoadAssignment() != nil {
				add(fuzzEndpoints, c.GetLoadAssignment())
			}
		}
	}
	sm := func(m *matcherv3.StringMatcher) *matcherv3.StringMatcher { return m }
	add(fuzzRoute, &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
		Name: "vh", Domains: []string{"*.example.com", "example.*", "*"},
		Routes: []*routev3.Route{
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/a"}, CaseSensitive: wrapperspb.Bool(false),
				Headers:         []*routev3.HeaderMatcher{{Name: "x-v", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "v"}})}}},
				QueryParameters: []*routev3.QueryParameterMatcher{{Name: "q", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}}}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, Timeout: durationpb.New(time.Second),
					RetryPolicy: &routev3.RetryPolicy{RetryOn: "5xx,reset", NumRetries: wrapperspb.UInt32(2)}}}},
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/u/[0-9]+"}}},
				Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{PathRewriteSpecifier: &routev3.RedirectAction_PathRedirect{PathRedirect: "/b"}}}},
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/sep"}},
				Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200, Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "ok"}}}}},
			{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/w"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
					Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "c", Weight: wrapperspb.UInt32(1)}, {Name: "d", Weight: wrapperspb.UInt32(3)}}}},
					HashPolicy: []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "s", Ttl: durationpb.New(time.Hour)}}}}}}},
		},
	}}})
	add(fuzzCluster, &clusterv3.Cluster{Name: "e", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: "svc", EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}},
		ConnectTimeout:   durationpb.New(time.Second), LbPolicy: clusterv3.Cluster_LEAST_REQUEST})
	add(fuzzEndpoints, &endpointv3.ClusterLoadAssignment{ClusterName: "svc", Endpoints: []*endpointv3.LocalityLbEndpoints{{
		Priority: 1, LoadBalancingWeight: wrapperspb.UInt32(2),
		LbEndpoints: []*endpointv3.LbEndpoint{{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: &corev3.Address{
			Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 80}}}}}},
			HealthStatus: corev3.HealthStatus_DRAINING}}}}})
	add(fuzzSecret, &tlsv3.Secret{Name: "ca", Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}}}}})
	add(fuzzSecret, &tlsv3.Secret{Name: "leaf", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte("x")}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte("y")}}}}})
	return seeds
}

// FuzzResources decodes arbitrary bytes as each xDS resource type (the
// wire form, as over xDS; for kinds past fuzzKinds, protojson, whose text
// the fuzzer mutates into odd but well-formed values more often) and runs
// what the proxy runs on a resource from a control plane: resource.Validate
// (ValidateAll and the support table), the converter of its type, and
// BuildResources. Nothing may panic or hang, and every error names the
// field path it is about.
func FuzzResources(f *testing.F) {
	for kind, bs := range fuzzSeeds(f) {
		for _, b := range bs {
			f.Add(uint8(kind), b)
			m := fuzzMessage(kind)
			if err := proto.Unmarshal(b, m); err != nil {
				f.Fatal(err)
			}
			js, err := protojson.Marshal(m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(uint8(fuzzKinds+kind), js)
		}
	}
	f.Add(uint8(fuzzListener), []byte{0x0a, 0x01, 'l', 0xff, 0x01})
	f.Fuzz(func(t *testing.T, kind uint8, data []byte) {
		if len(data) > 64<<10 {
			return
		}
		done := make(chan struct{})
		timer := time.AfterFunc(10*time.Second, func() {
			select {
			case <-done:
			default:
				panic(fmt.Sprintf("FuzzResources: no result after 10s (a hang?) for kind %d, input %x", kind%fuzzKinds, data))
			}
		})
		defer func() { close(done); timer.Stop() }()
		fuzzOneResource(t, int(kind%fuzzKinds), kind%(2*fuzzKinds) >= fuzzKinds, data)
	})
}

// fuzzMessage is an empty message of the kind's type.
func fuzzMessage(kind int) proto.Message {
	switch kind {
	case fuzzListener:
		return &listenerv3.Listener{}
	case fuzzRoute:
		return &routev3.RouteConfiguration{}
	case fuzzCluster:
		return &clusterv3.Cluster{}
	case fuzzEndpoints:
		return &endpointv3.ClusterLoadAssignment{}
	}
	return &tlsv3.Secret{}
}

func fuzzOneResource(t *testing.T, kind int, asJSON bool, data []byte) {
	var (
		m         proto.Message
		listeners []*listenerv3.Listener
		routes    []*routev3.RouteConfiguration
		clusters  []*clusterv3.Cluster
		endpoints []*endpointv3.ClusterLoadAssignment
		opts      = Options{AllowMissingRoutes: true, AllowMissingClusters: true}
		prefix    string
	)
	switch kind {
	case fuzzListener:
		l := &listenerv3.Listener{}
		m, listeners, prefix = l, []*listenerv3.Listener{l}, "listeners[0]"
	case fuzzRoute:
		r := &routev3.RouteConfiguration{}
		m, routes, prefix = r, []*routev3.RouteConfiguration{r}, "routes[0]"
	case fuzzCluster:
		c := &clusterv3.Cluster{}
		m, clusters, prefix = c, []*clusterv3.Cluster{c}, "clusters[0]"
	case fuzzEndpoints:
		e := &endpointv3.ClusterLoadAssignment{}
		m, endpoints, prefix = e, []*endpointv3.ClusterLoadAssignment{e}, "endpoints[0]"
	case fuzzSecret:
		s := &tlsv3.Secret{}
		m, opts.ADSSecrets, prefix = s, []*tlsv3.Secret{s}, "secrets[0]"
	}
	unmarshal := proto.Unmarshal
	if asJSON {
		unmarshal = protojson.Unmarshal
	}
	if err := unmarshal(data, m); err != nil {
		return
	}
	if _, err := resource.Validate(prefix, m); err != nil {
		checkErrorPaths(t, "Validate", prefix, err, m)
		return
	}
	var err error
	switch kind {
	case fuzzListener:
		_, err = ConvertListener(listeners[0])
	case fuzzRoute:
		_, err = ConvertRoute(routes[0])
	case fuzzCluster:
		_, err = ConvertCluster(clusters[0])
	case fuzzEndpoints:
		_, err = ConvertEndpoints(endpoints[0])
	case fuzzSecret:
		_, err = ConvertSecret(opts.ADSSecrets[0])
	}
	if err != nil {
		checkErrorPaths(t, "convert", "", err, m)
	}
	s, err := BuildResources(opts, listeners, routes, clusters, endpoints)
	if err != nil {
		checkErrorPaths(t, "BuildResources", prefix, err, m)
		return
	}
	if s == nil {
		t.Fatal("BuildResources: no snapshot and no error")
	}
}

// checkErrorPaths fails unless err is one of the typed errors whose every
// entry names a field path under prefix.
func checkErrorPaths(t *testing.T, stage, prefix string, err error, m proto.Message) {
	t.Helper()
	var u *resource.UnsupportedError
	var inv *resource.InvalidError
	var v *resource.ValidationError
	var fields []resource.FieldError
	switch {
	case errors.As(err, &u):
		fields = u.Fields
	case errors.As(err, &inv):
		fields = inv.Fields
	case errors.As(err, &v):
		if v.Path != prefix {
			t.Fatalf("%s: validation error at %q, want %q: %v", stage, v.Path, prefix, err)
		}
		fields = v.Fields // one per violation, each at its field's path
	default:
		js, _ := protojson.Marshal(m)
		t.Fatalf("%s: untyped error %T: %v\nresource: %s", stage, err, err, js)
	}
	if len(fields) == 0 {
		t.Fatalf("%s: %T with no fields", stage, err)
	}
	for _, fe := range fields {
		if fe.Path == "" || !strings.HasPrefix(fe.Path, prefix) {
			js, _ := protojson.Marshal(m)
			t.Fatalf("%s: error %q has path %q, want one under %q\nresource: %s", stage, fe.Reason, fe.Path, prefix, js)
		}
	}
}
