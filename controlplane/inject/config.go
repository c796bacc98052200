// Package inject is the Kubernetes mutating admission webhook that adds the
// Outrigger sidecar to pods. Handler serves AdmissionReview v1 at /mutate;
// Patch computes the JSONPatch for one pod and is pure, so it is tested
// without an API server.
//
// What a pod gets (see docs/kubernetes.md):
//   - an emptyDir volume for the proxy's bootstrap;
//   - an init container "outrigger-init" running `outrigger-cp sidecar-init`,
//     which registers the pod's service and its sidecar in Consul and writes
//     the proxy's bootstrap into that volume;
//   - with transparent capture, an init container "outrigger-redirect"
//     running `outrigger redirect-traffic` (NET_ADMIN);
//   - the proxy itself, "outrigger": a native sidecar (an init container with
//     restartPolicy Always and a startup probe on the admin /ready) on
//     Kubernetes 1.29 and later, so the app starts after the proxy is ready
//     and Jobs complete; a plain first container on older clusters.
package inject

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Defaults of Config.
const (
	DefaultLogLevel     = "info"
	DefaultAdminPort    = 19000
	DefaultInboundPort  = 20000
	DefaultOutboundPort = 15001
	// DefaultProxyUID is the UID the proxy runs as; transparent capture
	// exempts its traffic by this UID (Consul uses 5995 too).
	DefaultProxyUID = 5995
	// DefaultConsulAddr reaches the Consul client agent on the pod's node.
	DefaultConsulAddr = "$(HOST_IP):8500"
)

// Config is what every injected sidecar shares: the chart's values. The
// JSON names are those of the injector's configuration file (LoadConfig).
type Config struct {
	// Image holds both `outrigger` and `outrigger-cp` (the repo's
	// Dockerfile). Required.
	Image string `json:"image"`
	// RedirectImage runs `outrigger redirect-traffic` for transparent
	// capture; it needs the nft (or iptables) command, which the
	// distroless Image lacks (the Dockerfile's "redirect" target). Empty
	// means Image.
	RedirectImage string `json:"redirectImage,omitempty"`
	// ImagePullPolicy of the injected containers; empty lets Kubernetes
	// choose.
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// Resources of the proxy container (the init steps get the same).
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
	// LogLevel of the proxy: trace, debug, info, warn, error, off.
	LogLevel string `json:"logLevel,omitempty"`
	// XDSAddr is where proxies reach outrigger-cp's xDS ("host:port",
	// usually the control plane's Service). Required.
	XDSAddr string `json:"xdsAddress"`
	// ConsulAddr is the Consul HTTP API the init step registers with;
	// $(HOST_IP), $(POD_IP) and $(POD_NAMESPACE) are expanded by the kubelet.
	ConsulAddr string `json:"consulAddress,omitempty"`
	// AdminPort is the proxy's admin listener (on the pod IP, so the
	// kubelet can probe /ready and Prometheus scrape /stats/prometheus).
	AdminPort int32 `json:"adminPort,omitempty"`
	// InboundPort is the sidecar's public listener.
	InboundPort int32 `json:"inboundPort,omitempty"`
	// OutboundPort is the transparent outbound listener.
	OutboundPort int32 `json:"outboundPort,omitempty"`
	// ProxyUID is the proxy's user ID.
	ProxyUID int64 `json:"proxyUID,omitempty"`
	// NativeSidecars injects the proxy as an init container with
	// restartPolicy Always (Kubernetes 1.29 and later); see
	// SupportsNativeSidecars.
	NativeSidecars bool `json:"-"`
}

// withDefaults fills the zero fields that have defaults.
func (c Config) withDefaults() Config {
	if c.RedirectImage == "" {
		c.RedirectImage = c.Image
	}
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	if c.ConsulAddr == "" {
		c.ConsulAddr = DefaultConsulAddr
	}
	if c.AdminPort == 0 {
		c.AdminPort = DefaultAdminPort
	}
	if c.InboundPort == 0 {
		c.InboundPort = DefaultInboundPort
	}
	if c.OutboundPort == 0 {
		c.OutboundPort = DefaultOutboundPort
	}
	if c.ProxyUID == 0 {
		c.ProxyUID = DefaultProxyUID
	}
	return c
}

// Validate reports the first problem of a Config with its defaults applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	if c.Image == "" {
		return errors.New("inject: the sidecar image is required")
	}
	if _, _, err := net.SplitHostPort(c.XDSAddr); err != nil {
		return fmt.Errorf("inject: xDS address %q: %w", c.XDSAddr, err)
	}
	if _, _, err := net.SplitHostPort(c.ConsulAddr); err != nil {
		return fmt.Errorf("inject: Consul address %q: %w", c.ConsulAddr, err)
	}
	switch c.LogLevel {
	case "trace", "debug", "info", "warn", "error", "off":
	default:
		return fmt.Errorf("inject: log level %q is not one of trace, debug, info, warn, error, off", c.LogLevel)
	}
	switch c.ImagePullPolicy {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return fmt.Errorf("inject: image pull policy %q is not Always, IfNotPresent or Never", c.ImagePullPolicy)
	}
	ports := map[int32]string{}
	for _, p := range []struct {
		name string
		port int32
	}{{"admin", c.AdminPort}, {"inbound", c.InboundPort}, {"outbound", c.OutboundPort}} {
		if p.port < 1 || p.port > 65535 {
			return fmt.Errorf("inject: %s port %d is not 1-65535", p.name, p.port)
		}
		if other, dup := ports[p.port]; dup {
			return fmt.Errorf("inject: %s and %s ports are both %d", other, p.name, p.port)
		}
		ports[p.port] = p.name
	}
	if c.ProxyUID < 1 {
		return fmt.Errorf("inject: proxy UID %d must be positive (the proxy never runs as root)", c.ProxyUID)
	}
	return nil
}

// LoadConfig reads the injector's configuration file (YAML or JSON, the
// field names of Config's JSON tags; an unknown field is an error) and
// validates it. NativeSidecars is not in the file: it follows the cluster.
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("inject: configuration: %w", err)
	}
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return Config{}, fmt.Errorf("inject: configuration %s: %w", path, err)
	}
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

// portString formats a port for a command line.
func portString(p int32) string { return strconv.Itoa(int(p)) }
