// Package bootstrap loads an Envoy v3 Bootstrap file (YAML or JSON, with an
// optional --config-yaml merged over it like Envoy does), validates it
// (protojson without discarding unknown fields, the proto's ValidateAll(),
// then the support table of xds/resource) and converts static_resources
// into a snapshot. Every error names the offending field path, e.g.
// "static_resources.clusters[1].lb_subset_config: Cluster.lb_subset_config is not supported yet".
package bootstrap

import (
	"errors"
	"fmt"
	"google.golang.org/protobuf/types/known/durationpb"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"

	"github.com/outrigger-mesh/outrigger/proxy/snapshot"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// Bootstrap is a loaded, validated startup configuration.
type Bootstrap struct {
	// Proto is the merged Bootstrap as decoded, for /config_dump.
	Proto *bootstrapv3.Bootstrap
	Node  Node
	// Admin is the admin listener's "host:port", "" when there is none.
	Admin string
	// Ignored lists the paths of operational fields that are set but have no
	// effect, for the caller to log once.
	Ignored []string
	// Static is static_resources converted. With dynamic_resources, routes
	// and clusters it references may still be missing (pending over ADS).
	Static *snapshot.Snapshot
	// ADS is set when dynamic_resources is.
	ADS *ADS
}

// Node is the xDS node identity (--service-node and --service-cluster
// override it).
type Node struct {
	ID      string
	Cluster string
}

// ADS is dynamic_resources: where the aggregated discovery service is and
// what comes over it.
type ADS struct {
	// Cluster is the static cluster of the xDS server (envoy_grpc.cluster_name);
	// Target is a gRPC target URI instead (google_grpc.target_uri, plaintext).
	// Exactly one is set.
	Cluster   string
	Target    string
	Authority string
	// Delta is api_type DELTA_GRPC; otherwise state-of-the-world GRPC.
	Delta bool
	// Timeout is the gRPC service timeout, 0 when unset.
	Timeout time.Duration
	// SetNodeOnFirstMessageOnly mirrors the ApiConfigSource field.
	SetNodeOnFirstMessageOnly bool
	// LDS and CDS say whether listeners and clusters come over ADS.
	LDS, CDS bool
	// InitialFetchTimeout is the longest initial_fetch_timeout of
	// lds_config and cds_config; 0 when neither sets one (Envoy's 15 s),
	// negative when one is 0s (wait for the server without a limit).
	InitialFetchTimeout time.Duration
}

// Load reads the bootstrap file at path (YAML or JSON; "" for none) and
// merges inlineYAML (--config-yaml, "" for none) over it, then validates
// and converts it. Errors are *DecodeError, *resource.ValidationError,
// *resource.UnsupportedError or *resource.InvalidError; each line of their
// message starts with a field path.
func Load(path string, inlineYAML string) (*Bootstrap, error) {
	if path == "" && inlineYAML == "" {
		return nil, errors.New("bootstrap: no configuration: give a config path or --config-yaml")
	}
	bs := &bootstrapv3.Bootstrap{}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
		if bs, err = decode(path, data); err != nil {
			return nil, err
		}
	}
	if inlineYAML != "" {
		over, err := decode("--config-yaml", []byte(inlineYAML))
		if err != nil {
			return nil, err
		}
		// Envoy merges --config-yaml with proto merge semantics: scalars
		// replace, repeated fields append.
		proto.Merge(bs, over)
	}
	return FromProto(bs)
}

// FromProto validates and converts an already decoded Bootstrap.
func FromProto(bs *bootstrapv3.Bootstrap) (*Bootstrap, error) {
	ignored, err := resource.Validate("", bs)
	if err != nil {
		return nil, err
	}
	out := &Bootstrap{
		Proto:   bs,
		Node:    Node{ID: bs.GetNode().GetId(), Cluster: bs.GetNode().GetCluster()},
		Ignored: ignored,
	}
	var problems []resource.FieldError
	fail := func(path, format string, args ...any) {
		problems = append(problems, resource.FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
	}
	if a := bs.GetAdmin().GetAddress(); a != nil {
		sa := a.GetSocketAddress()
		if sa == nil {
			fail("admin.address", "a socket_address is required")
		} else {
			out.Admin = hostPort(sa)
		}
	}
	clusters := bs.GetStaticResources().GetClusters()
	for i, c := range clusters {
		if c.GetType() == clusterv3.Cluster_EDS {
			fail(resource.Join(resource.Index("static_resources.clusters", i), "type"),
				"EDS is not supported in static_resources yet (endpoints would come over xDS)")
		}
	}
	if dr := bs.GetDynamicResources(); dr != nil {
		out.ADS = ads(dr, clusters, fail)
	}
	if len(problems) > 0 {
		return nil, &resource.InvalidError{Fields: problems}
	}
	opts := snapshot.Options{
		AllowMissingRoutes:   out.ADS != nil,
		AllowMissingClusters: out.ADS != nil && out.ADS.CDS,
		StaticSecrets:        bs.GetStaticResources().GetSecrets(),
	}
	static, err := snapshot.BuildWith(opts, bs.GetStaticResources().GetListeners(), nil, clusters)
	if err != nil {
		return nil, resource.Prefix(err, "static_resources")
	}
	if out.ADS == nil && len(static.ADSSecretNames) > 0 {
		return nil, &resource.InvalidError{Fields: []resource.FieldError{{Path: "dynamic_resources.ads_config",
			Reason: fmt.Sprintf("is required: secrets %s use sds_config.ads", strings.Join(static.ADSSecretNames, ", "))}}}
	}
	out.Static = static
	return out, nil
}

// ads reads dynamic_resources. The support table already limits it to ADS
// over envoy_grpc; here the pieces must fit together.
func ads(dr *bootstrapv3.Bootstrap_DynamicResources, clusters []*clusterv3.Cluster, fail func(string, string, ...any)) *ADS {
	out := &ADS{LDS: dr.GetLdsConfig() != nil, CDS: dr.GetCdsConfig() != nil}
	// ConfigSource also carries path_config_source (for SDS files); LDS
	// and CDS come over ADS only.
	if dr.GetLdsConfig().GetPathConfigSource() != nil {
		fail("dynamic_resources.lds_config.path_config_source", "is not supported: listeners come over ads")
	}
	if dr.GetCdsConfig().GetPathConfigSource() != nil {
		fail("dynamic_resources.cds_config.path_config_source", "is not supported: clusters come over ads")
	}
	src := dr.GetAdsConfig()
	if src == nil {
		fail("dynamic_resources.ads_config", "is required: lds_config, cds_config and rds use ads")
		return out
	}
	out.Delta = src.GetApiType() == corev3.ApiConfigSource_DELTA_GRPC
	out.SetNodeOnFirstMessageOnly = src.GetSetNodeOnFirstMessageOnly()
	if len(src.GetGrpcServices()) != 1 {
		fail("dynamic_resources.ads_config.grpc_services", "exactly one gRPC service is required, got %d", len(src.GetGrpcServices()))
		return out
	}
	for _, cs := range []interface {
		GetInitialFetchTimeout() *durationpb.Duration
	}{dr.GetLdsConfig(), dr.GetCdsConfig()} {
		t := cs.GetInitialFetchTimeout()
		switch {
		case t == nil || out.InitialFetchTimeout < 0:
		case t.AsDuration() == 0:
			out.InitialFetchTimeout = -1
		case t.AsDuration() > out.InitialFetchTimeout:
			out.InitialFetchTimeout = t.AsDuration()
		}
	}
	gs := src.GetGrpcServices()[0]
	if gs.GetTimeout() != nil {
		out.Timeout = gs.GetTimeout().AsDuration()
	}
	if g := gs.GetGoogleGrpc(); g != nil {
		out.Target = g.GetTargetUri()
		return out
	}
	out.Cluster = gs.GetEnvoyGrpc().GetClusterName()
	out.Authority = gs.GetEnvoyGrpc().GetAuthority()
	found := false
	for _, c := range clusters {
		found = found || c.GetName() == out.Cluster
	}
	if !found {
		fail("dynamic_resources.ads_config.grpc_services[0].envoy_grpc.cluster_name",
			"cluster %q is not defined in static_resources", out.Cluster)
	}
	return out
}

func hostPort(sa *corev3.SocketAddress) string {
	return net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))
}
