package snapshot

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"

	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/xds/resource"
)

// EDSName is the ClusterLoadAssignment name an EDS cluster asks for:
// eds_cluster_config.service_name, or the cluster's own name.
func EDSName(cl *clusterv3.Cluster) string {
	if n := cl.GetEdsClusterConfig().GetServiceName(); n != "" {
		return n
	}
	return cl.GetName()
}

// ConvertEndpoints converts a ClusterLoadAssignment that passed
// resource.Validate. Every endpoint is kept with its priority and locality;
// those whose health_status is UNHEALTHY, DRAINING or TIMEOUT are marked
// unhealthy (no traffic unless the priority panics, as in Envoy). Error
// paths are relative to the assignment.
func ConvertEndpoints(cla *endpointv3.ClusterLoadAssignment) ([]cluster.Endpoint, error) {
	c := &converter{}
	out, _ := c.assignment("", cla, "EDS endpoints need IP addresses")
	return out, c.err()
}

// assignment converts a ClusterLoadAssignment (EDS, or a cluster's
// load_assignment) and returns its overprovisioning factor (0: the
// default). A non-empty needIP is the complaint about a host name where
// only IP addresses are allowed.
func (c *converter) assignment(p string, cla *endpointv3.ClusterLoadAssignment, needIP string) ([]cluster.Endpoint, uint32) {
	var out []cluster.Endpoint
	for i, loc := range cla.GetEndpoints() {
		locp := resource.Index(resource.Join(p, "endpoints"), i)
		locality := localityName(loc.GetLocality())
		for j, ep := range loc.GetLbEndpoints() {
			ap := resource.Join(resource.Index(resource.Join(locp, "lb_endpoints"), j), "endpoint.address")
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				c.fail(ap, "a socket_address is required")
				continue
			}
			if needIP != "" {
				if _, err := netip.ParseAddr(sa.GetAddress()); err != nil {
					c.fail(resource.Join(ap, "socket_address.address"), "%q: %s", sa.GetAddress(), needIP)
					continue
				}
			}
			out = append(out, cluster.Endpoint{
				Address:        joinHostPort(sa.GetAddress(), sa.GetPortValue()),
				Weight:         ep.GetLoadBalancingWeight().GetValue(),
				Priority:       loc.GetPriority(),
				Locality:       locality,
				LocalityWeight: loc.GetLoadBalancingWeight().GetValue(),
				Unhealthy:      unhealthyStatus(ep.GetHealthStatus()),
			})
		}
	}
	pol := cla.GetPolicy()
	if pol.GetWeightedPriorityHealth() {
		c.fail(resource.Join(p, "policy.weighted_priority_health"), "is not supported yet")
	}
	factor := uint32(0)
	if f := pol.GetOverprovisioningFactor(); f != nil {
		if f.GetValue() == 0 {
			c.fail(resource.Join(p, "policy.overprovisioning_factor"), "must be greater than 0")
		}
		factor = f.GetValue()
	}
	return out, factor
}

// localityName is "region/zone/sub_zone" ("" for none).
func localityName(l *corev3.Locality) string {
	if l == nil || (l.GetRegion() == "" && l.GetZone() == "" && l.GetSubZone() == "") {
		return ""
	}
	return l.GetRegion() + "/" + l.GetZone() + "/" + l.GetSubZone()
}

// Fingerprint is a stable digest of a resource: equal fingerprints mean an
// update left the resource unchanged.
func Fingerprint(m proto.Message) string {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return fmt.Sprintf("unmarshalable:%p", m)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}
