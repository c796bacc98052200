package client

import (
	"maps"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
)

// assemble builds the set Apply gets from the accepted state: every listener
// and cluster, and the routes, assignments and secrets they need (empty
// ones for names given up on), sorted by name.
func (c *Client) assemble() *Resources {
	res := &Resources{Versions: make(map[string]string)}
	for _, st := range c.types {
		if st.enabled {
			res.Versions[st.url] = st.version
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.types[kindListener].entries)) {
		res.Listeners = append(res.Listeners, c.types[kindListener].entries[name].msg.(*listenerv3.Listener))
	}
	for _, name := range slices.Sorted(maps.Keys(c.types[kindCluster].entries)) {
		res.Clusters = append(res.Clusters, c.types[kindCluster].entries[name].msg.(*clusterv3.Cluster))
	}
	routes := c.types[kindRoute]
	for _, name := range slices.Sorted(maps.Keys(routes.wanted)) {
		if e, ok := routes.entries[name]; ok {
			res.Routes = append(res.Routes, e.msg.(*routev3.RouteConfiguration))
		} else {
			res.Routes = append(res.Routes, &routev3.RouteConfiguration{Name: name})
		}
	}
	endpoints := c.types[kindEndpoint]
	for _, name := range slices.Sorted(maps.Keys(endpoints.wanted)) {
		if e, ok := endpoints.entries[name]; ok {
			res.Endpoints = append(res.Endpoints, e.msg.(*endpointv3.ClusterLoadAssignment))
		} else {
			res.Endpoints = append(res.Endpoints, &endpointv3.ClusterLoadAssignment{ClusterName: name})
		}
	}
	secrets := c.types[kindSecret]
	for _, name := range slices.Sorted(maps.Keys(secrets.wanted)) {
		if e, ok := secrets.entries[name]; ok {
			res.Secrets = append(res.Secrets, e.msg.(*tlsv3.Secret))
		} else {
			res.Secrets = append(res.Secrets, &tlsv3.Secret{Name: name})
		}
	}
	return res
}

// sameResources tells whether two sets hold equal resources. Versions are
// not compared: a new version of the same content is no reason to rebuild
// the proxy (Status reports it).
func sameResources(a, b *Resources) bool {
	return sameList(a.Listeners, b.Listeners) && sameList(a.Routes, b.Routes) &&
		sameList(a.Clusters, b.Clusters) && sameList(a.Endpoints, b.Endpoints) &&
		sameList(a.Secrets, b.Secrets)
}

func sameList[M proto.Message](a, b []M) bool {
	return slices.EqualFunc(a, b, func(x, y M) bool { return proto.Message(x) == proto.Message(y) || proto.Equal(x, y) })
}
