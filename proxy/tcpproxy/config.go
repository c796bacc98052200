// Package tcpproxy is Envoy's TCP proxy network filter
// (envoy.filters.network.tcp_proxy): each downstream connection gets one
// upstream connection to a host of a cluster, and bytes are copied both
// ways until both sides have closed. Between two plain TCP sockets the copy
// is splice(2) (io.Copy from *net.TCPConn to *net.TCPConn), so the bytes
// never enter user space. It never sees Envoy protos; proxy/snapshot
// converts TcpProxy into Config.
package tcpproxy

import (
	"errors"
	"fmt"
	"github.com/outrigger-mesh/outrigger/proxy/telemetry"
	"time"
)

// Envoy's defaults.
const (
	// DefaultIdleTimeout is idle_timeout when unset. The converter applies
	// it: a zero IdleTimeout in Config disables the timeout, as 0s does in
	// Envoy.
	DefaultIdleTimeout = time.Hour
	// DefaultMaxConnectAttempts is max_connect_attempts when unset.
	DefaultMaxConnectAttempts = 1
)

// Config is one TcpProxy filter.
type Config struct {
	// StatPrefix roots the filter's statistics (tcp.<stat_prefix>.*).
	StatPrefix string
	// Cluster is the upstream cluster; when it is empty, WeightedClusters
	// chooses one per connection by weight. Exactly one is set.
	Cluster          string
	WeightedClusters []WeightedCluster
	// IdleTimeout closes both connections once no byte has moved either
	// way for this long; 0 disables it.
	IdleTimeout time.Duration
	// MaxConnectAttempts is how many upstream connects a downstream
	// connection may try (each on a host not tried yet, when the cluster
	// has one) before it is closed; 0 means 1.
	MaxConnectAttempts uint32
	// AccessLogs get one line per connection when it closes.
	AccessLogs []AccessLog
}

// WeightedCluster is one of weighted_clusters.clusters.
type WeightedCluster struct {
	Name   string
	Weight uint32
}

// AccessLog is one access-log sink: envoy.access_loggers.stdout, .stderr or
// .file, with its log_format compiled.
type AccessLog struct {
	Path string // "/dev/stdout", "/dev/stderr" or a file path
	// Format is the compiled log_format; nil is telemetry.Entry's fixed
	// JSON line. A connection has no HTTP fields: REQ, RESP and the like
	// print "-".
	Format *telemetry.Format
}

// ErrInvalidConfig is wrapped by Validate's errors.
var ErrInvalidConfig = errors.New("invalid tcp proxy config")

// Validate checks what the proxy relies on. It is pure.
func (c *Config) Validate() error {
	switch {
	case c.Cluster != "" && len(c.WeightedClusters) > 0:
		return fmt.Errorf("%w: cluster and weighted_clusters are both set", ErrInvalidConfig)
	case c.Cluster == "" && len(c.WeightedClusters) == 0:
		return fmt.Errorf("%w: cluster or weighted_clusters is required", ErrInvalidConfig)
	}
	var total uint64
	for i, w := range c.WeightedClusters {
		if w.Name == "" {
			return fmt.Errorf("%w: weighted_clusters[%d]: empty cluster name", ErrInvalidConfig, i)
		}
		total += uint64(w.Weight)
	}
	if len(c.WeightedClusters) > 0 && total == 0 {
		return fmt.Errorf("%w: weighted_clusters: the weights add up to 0", ErrInvalidConfig)
	}
	if c.IdleTimeout < 0 {
		return fmt.Errorf("%w: negative idle_timeout %s", ErrInvalidConfig, c.IdleTimeout)
	}
	for i, l := range c.AccessLogs {
		if l.Path == "" {
			return fmt.Errorf("%w: access_log[%d]: empty path", ErrInvalidConfig, i)
		}
	}
	return nil
}

func (c *Config) maxConnectAttempts() int {
	if c.MaxConnectAttempts == 0 {
		return DefaultMaxConnectAttempts
	}
	return int(c.MaxConnectAttempts)
}
