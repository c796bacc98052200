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
// resource.Validate. Endpoints whose health_status is UNHEALTHY, DRAINING or
// TIMEOUT are left out. Priorities fail over whole: traffic goes to the
// lowest priority that has at least one usable endpoint (Envoy spreads load
// by the overprovisioning factor when a priority is partly unhealthy; that
// arrives with health checking). Error paths are relative to the assignment.
func ConvertEndpoints(cla *endpointv3.ClusterLoadAssignment) ([]cluster.Endpoint, error) {
	c := &converter{}
	out := c.assignment("", cla)
	return out, c.err()
}

func (c *converter) assignment(p string, cla *endpointv3.ClusterLoadAssignment) []cluster.Endpoint {
	byPriority := map[uint32][]cluster.Endpoint{}
	best, found := uint32(0), false
	for i, loc := range cla.GetEndpoints() {
		locp := resource.Index(resource.Join(p, "endpoints"), i)
		for j, ep := range loc.GetLbEndpoints() {
			ap := resource.Join(resource.Index(resource.Join(locp, "lb_endpoints"), j), "endpoint.address")
			sa := ep.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				c.fail(ap, "a socket_address is required")
				continue
			}
			if _, err := netip.ParseAddr(sa.GetAddress()); err != nil {
				c.fail(resource.Join(ap, "socket_address.address"), "%q: EDS endpoints need IP addresses", sa.GetAddress())
				continue
			}
			switch ep.GetHealthStatus() {
			case corev3.HealthStatus_UNHEALTHY, corev3.HealthStatus_DRAINING, corev3.HealthStatus_TIMEOUT:
				continue
			}
			pr := loc.GetPriority()
			byPriority[pr] = append(byPriority[pr], cluster.Endpoint{
				Address: joinHostPort(sa.GetAddress(), sa.GetPortValue()),
				Weight:  ep.GetLoadBalancingWeight().GetValue(),
			})
			if !found || pr < best {
				best, found = pr, true
			}
		}
	}
	return byPriority[best]
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
