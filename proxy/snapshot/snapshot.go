// Package snapshot converts validated Envoy resources (Listener,
// RouteConfiguration, Cluster, Secret) into the plain configs of the building blocks
// and bundles them into one immutable Snapshot that the server swaps in
// atomically. It is the only package under proxy/ besides proxy/bootstrap
// that sees Envoy protos.
package snapshot

import (
	"github.com/outrigger-mesh/outrigger/proxy/cluster"
	"github.com/outrigger-mesh/outrigger/proxy/h3"
	"github.com/outrigger-mesh/outrigger/proxy/hcm"
	"github.com/outrigger-mesh/outrigger/proxy/listener"
	"github.com/outrigger-mesh/outrigger/proxy/router"
	"github.com/outrigger-mesh/outrigger/proxy/secret"
)

// Snapshot is one complete, consistent configuration.
type Snapshot struct {
	Version   string
	Listeners []Listener
	// Routes holds route tables by name (RDS); inline route_configs live in
	// their hcm.Config.
	Routes   map[string]*router.Config
	Clusters []cluster.Config
	// Secrets is the store the TLS contexts of the listeners and clusters
	// read their SDS secrets from, per handshake.
	Secrets *secret.Store
	// ADSSecretNames are the secrets the listeners and clusters expect
	// over ADS (sds_config.ads), sorted.
	ADSSecretNames []string
}

// Listener is a listener.Config whose chains' Handler fields are still nil,
// and the connection manager config of each chain (HTTP[i] belongs to
// Config.FilterChains[i]; DefaultHTTP to Config.DefaultChain).
type Listener struct {
	// Fingerprint digests the Listener resource it came from: an update
	// with the same fingerprint leaves the running listener alone.
	Fingerprint string
	Config      listener.Config
	HTTP        []hcm.Config
	DefaultHTTP *hcm.Config
	// QUIC is set for an HTTP/3 listener (udp_listener_config.quic_options):
	// its chains, Config.FilterChains, are served over QUIC with these
	// settings (selected by SNI when there are several); the server fills
	// in the handlers.
	QUIC *h3.Config
}
