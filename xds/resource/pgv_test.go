package resource

import (
	"errors"
	"strings"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The proto's own rules come back one line per violation, each at the
// proto path of its field: through lists, maps, oneofs and wrappers, every
// violation of a ValidateAll reported.
func TestValidationRulesAtFieldPaths(t *testing.T) {
	sock := func(port uint32) *corev3.Address {
		return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
	}
	bs := &bootstrapv3.Bootstrap{
		Admin: &bootstrapv3.Admin{Address: sock(70000)},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{
			{Name: "ok"},
			{
				Name:           "ring",
				LbConfig:       &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{MaximumRingSize: wrapperspb.UInt64(1 << 30)}},
				ConnectTimeout: durationpb.New(-1),
			},
			{Name: ""},
		}},
	}
	_, err := Validate("", bs)
	var v *ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("Validate: %v (%T), want a *ValidationError", err, err)
	}
	want := []string{
		"static_resources.clusters[1].connect_timeout: value must be greater than 0s",
		"static_resources.clusters[1].ring_hash_lb_config.maximum_ring_size: value must be less than or equal to 8388608",
		"static_resources.clusters[2].name: value length must be at least 1 runes",
		"admin.address.socket_address.port_value: value must be less than or equal to 65535", // field order
	}
	got := strings.Split(err.Error(), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%s\nwant:\n%s", err, strings.Join(want, "\n"))
	}
	// Prefix moves them all, as it does the other kinds.
	if p := Prefix(err, "bootstrap").Error(); !strings.HasPrefix(p, "bootstrap.static_resources.clusters[1]") || strings.Count(p, "bootstrap.") != 4 {
		t.Fatalf("prefixed:\n%s", p)
	}
}

// Go names that keep an underscore (before a digit), map keys with
// brackets and quotes, and a rule failing on a value it cannot read.
func TestValidationRuleOddNames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		prefix string
		msg    interface{ ValidateAll() error }
		want   string
	}{
		{"underscore before a digit", "c", &clusterv3.Cluster{Name: "c",
			OutlierDetection: &clusterv3.OutlierDetection{EnforcingConsecutive_5Xx: wrapperspb.UInt32(101)}},
			"c.outlier_detection.enforcing_consecutive_5xx: value must be less than or equal to 100"},
		{"map key", "rules", &rbacv3.RBAC{Policies: map[string]*rbacv3.Policy{"a[b]\"c": {}}},
			`rules.policies["a[b]\"c"].permissions: value must contain at least 1 item(s)`},
		{"unreadable duration", "c", &clusterv3.Cluster{Name: "c", ConnectTimeout: &durationpb.Duration{Seconds: 1 << 62}},
			"c.connect_timeout: value is not a valid duration: proto:"}, // protobuf varies the space after "proto:"
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Validate(tc.prefix, tc.msg.(proto.Message))
			if err == nil || !strings.HasPrefix(strings.Split(err.Error(), "\n")[0], tc.want) {
				t.Fatalf("error:\n%v\nwant a first line starting with:\n%s", err, tc.want)
			}
		})
	}
}

// A violation it cannot place keeps the library's text at the path it has.
func TestValidationRuleUnplaced(t *testing.T) {
	got := pgvFields("x", (&clusterv3.Cluster{}).ProtoReflect().Descriptor(), errors.New("something odd"))
	if len(got) != 1 || got[0].Path != "x" || got[0].Reason != "invalid: something odd" {
		t.Fatalf("got %v", got)
	}
	if got := pgvFields("x", (&clusterv3.Cluster{}).ProtoReflect().Descriptor(), clusterv3.ClusterMultiError{nil}); len(got) != 0 {
		t.Fatalf("a nil violation: %v", got)
	}
	bad := clusterv3.ClusterValidationError{}
	if got := pgvFields("x", (&clusterv3.Cluster{}).ProtoReflect().Descriptor(), bad); len(got) != 1 || got[0].Path != "x" {
		t.Fatalf("an error naming no field: %v", got)
	}
}
