// Package cluster owns upstream clusters at run time: their endpoints (static
// or resolved through DNS, or for ORIGINAL_DST each connection's original
// destination), the load balancer that picks one, and the
// connection pools that carry requests to it. State (pools, resolved
// addresses, counters) survives a config update that keeps the cluster's
// name. It never sees Envoy protos; proxy/snapshot converts Cluster into
// Config.
package cluster

import (
	"crypto/tls"
	"time"

	"github.com/outrigger-mesh/outrigger/proxy/healthcheck"
	"github.com/outrigger-mesh/outrigger/proxy/lb"
	"github.com/outrigger-mesh/outrigger/proxy/outlier"
)

// Discovery says where a cluster's endpoints come from.
type Discovery uint8

const (
	Static     Discovery = iota // load_assignment addresses as given
	StrictDNS                   // every address of every name, re-resolved
	LogicalDNS                  // the first address of the name, re-resolved
	EDS                         // endpoints arrive over xDS (IP addresses, like Static)
	// OriginalDst has no endpoints: each connection or request goes to
	// its own original destination (lb.Request.OriginalDst), a host made
	// on first use and removed after CleanupInterval unused (Envoy's
	// ORIGINAL_DST with lb_policy CLUSTER_PROVIDED).
	OriginalDst
)

func (d Discovery) String() string {
	switch d {
	case Static:
		return "STATIC"
	case StrictDNS:
		return "STRICT_DNS"
	case LogicalDNS:
		return "LOGICAL_DNS"
	case EDS:
		return "EDS"
	case OriginalDst:
		return "ORIGINAL_DST"
	}
	return "UNKNOWN"
}

// Protocol is the upstream HTTP protocol.
type Protocol uint8

const (
	HTTP1              Protocol = iota // HTTP/1.1 keep-alive pool
	HTTP2                              // h2 over TLS, or h2c prior knowledge without TLS
	UseDownstreamProto                 // HTTP/2 upstream iff the request came as HTTP/2
	HTTP3                              // HTTP/3 over QUIC (TLS required)
)

// Config is one cluster.
type Config struct {
	Name      string
	Discovery Discovery
	// Endpoints: "host:port" with a weight (0 means 1). For EDS they are the
	// ClusterLoadAssignment's, converted by proxy/snapshot; an EDS update is
	// a config update that keeps the cluster's pools and hosts.
	Endpoints []Endpoint
	// DNS settings for StrictDNS and LogicalDNS.
	DNSRefreshRate time.Duration // Envoy's default 5s
	DNSFamily      DNSFamily
	// CleanupInterval is how long an OriginalDst host may go unused before
	// it is removed (Envoy's cleanup_interval, default 5s).
	CleanupInterval time.Duration

	ConnectTimeout time.Duration // Envoy's default 5s
	Protocol       Protocol
	// TLS to the upstream; nil is plaintext. ServerName carries the SNI.
	// NextProtos is filled by the cluster from Protocol.
	TLS *tls.Config
	// TLSVerifyKey names the rule TLS.VerifyConnection was built by (Go
	// cannot compare functions): two configs with the same key and equal
	// settings (RootCAs included) are the same TLS, so an update that
	// re-converts an mTLS cluster keeps its pools and health checks.
	TLSVerifyKey string

	// IdleTimeout closes idle upstream connections (common_http_protocol_options.idle_timeout,
	// Envoy default 1h, which the converter fills in when unset); 0 disables it.
	IdleTimeout time.Duration
	// MaxRequestsPerConnection, 0 for no limit.
	MaxRequestsPerConnection uint32

	// Thresholds are the circuit breakers of the default priority.
	Thresholds Thresholds

	// LB is the load-balancing policy with its priority, locality and
	// panic settings (the overprovisioning factor comes from the
	// assignment's policy).
	LB lb.Config
	// Outlier is outlier_detection; nil: none.
	Outlier *outlier.Config
	// HealthChecks are the active health checks; none: every host counts
	// as passing them.
	HealthChecks []healthcheck.Config
}

// Endpoint is one upstream address.
type Endpoint struct {
	Address string // "host:port"; host may be a DNS name for the DNS kinds
	Weight  uint32
	// Priority is the endpoint's priority level (0 is the highest);
	// Locality names its locality ("region/zone/sub_zone") and
	// LocalityWeight is that locality's load_balancing_weight.
	Priority       uint32
	Locality       string
	LocalityWeight uint32
	// Unhealthy: the control plane says UNHEALTHY, DRAINING or TIMEOUT.
	// The host stays in the set (flagged), so panic mode can still use it.
	Unhealthy bool
}

// DNSFamily is Envoy's dns_lookup_family.
type DNSFamily uint8

const (
	DNSAuto DNSFamily = iota // V6 preferred, V4 fallback (Envoy's AUTO)
	DNSV4Only
	DNSV6Only
	DNSV4Preferred
	DNSAll
)
