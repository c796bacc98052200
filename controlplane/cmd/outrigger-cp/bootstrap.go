package main

import (
	"errors"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"github.com/outrigger-mesh/outrigger/controlplane/sidecarboot"
)

// proxyLookup finds a registered sidecar.
type proxyLookup interface {
	// ProxyDestination returns the destination service of the connect-proxy
	// registered with service ID id, or an error that says why there is
	// none.
	ProxyDestination(id string) (string, error)
}

// bootstrapYAML looks the proxy up and renders its bootstrap.
func bootstrapYAML(o *bootstrapOptions, lookup proxyLookup) ([]byte, error) {
	service, err := lookup.ProxyDestination(o.proxyID)
	if err != nil {
		return nil, err
	}
	bs, err := bootstrapConfig(o.proxyID, service, o.xdsAddr, o.adminAddr)
	if err != nil {
		return nil, err
	}
	return sidecarboot.YAML(bs)
}

// bootstrapConfig is the bootstrap of proxy id (node.cluster is its
// destination service), addresses named by this command's flags.
func bootstrapConfig(id, service, xdsAddr, adminAddr string) (*bootstrapv3.Bootstrap, error) {
	if adminAddr == "" { // a sidecar's admin listener serves its /ready probe
		return nil, errors.New(`-admin-addr "": the admin listener's IP:port is required`)
	}
	return sidecarboot.Config(sidecarboot.Options{ID: id, Service: service, XDSAddr: xdsAddr, AdminAddr: adminAddr,
		XDSAddrName: "-xds-addr", AdminAddrName: "-admin-addr"})
}
