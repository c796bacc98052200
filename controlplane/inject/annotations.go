package inject

import (
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The label and annotations the injector reads and writes.
const (
	// NamespaceLabel = "enabled" on a namespace opts its pods in.
	NamespaceLabel = "outrigger.io/inject"
	// AnnotationInject "true" opts a pod in, "false" opts it out (and wins
	// over the namespace label).
	AnnotationInject = "outrigger.io/inject"
	// AnnotationInjected is set on every injected pod; a pod carrying it
	// (or a container named "outrigger") is left alone.
	AnnotationInjected = "outrigger.io/injected"
	// AnnotationService names the pod's service in Consul (default: label
	// app.kubernetes.io/name, then label app, then the first container's
	// name).
	AnnotationService = "outrigger.io/service"
	// AnnotationServicePort is the app's port behind the sidecar's public
	// listener (default: the first container port; none means the pod
	// only calls out, as a Job usually does).
	AnnotationServicePort = "outrigger.io/service-port"
	// AnnotationUpstreams lists "service:localPort" pairs the app reaches
	// on 127.0.0.1:localPort, comma-separated.
	AnnotationUpstreams = "outrigger.io/upstreams"
	// AnnotationTransparent "true" adds transparent traffic capture.
	AnnotationTransparent = "outrigger.io/transparent"
	// AnnotationExcludeOutboundPorts, AnnotationExcludeInboundPorts and
	// AnnotationExcludeOutboundCIDRs are comma-separated exclusions from
	// transparent capture.
	AnnotationExcludeOutboundPorts = "outrigger.io/exclude-outbound-ports"
	AnnotationExcludeInboundPorts  = "outrigger.io/exclude-inbound-ports"
	AnnotationExcludeOutboundCIDRs = "outrigger.io/exclude-outbound-cidrs"

	// NamespaceEnabled is NamespaceLabel's opt-in value.
	NamespaceEnabled = "enabled"
)

// Upstream is one entry of AnnotationUpstreams.
type Upstream struct {
	Service   string
	LocalPort int32
}

// String is the entry's "service:port" form.
func (u Upstream) String() string { return u.Service + ":" + portString(u.LocalPort) }

// podOptions is what the annotations (and pod shape) ask for one pod.
type podOptions struct {
	service      string
	servicePort  int32 // 0: no inbound
	upstreams    []Upstream
	transparent  bool
	excludeOut   []int32
	excludeIn    []int32
	excludeCIDRs []netip.Prefix
}

// serviceNameRE is what Consul and DNS both accept as a service name.
var serviceNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// wantsInjection decides from the pod's opt-in/opt-out annotation and
// whether its namespace opted in. A malformed annotation is an error.
func wantsInjection(pod *corev1.Pod, namespaceEnabled bool) (bool, error) {
	v, ok := pod.Annotations[AnnotationInject]
	if !ok {
		return namespaceEnabled, nil
	}
	b, err := parseBool(AnnotationInject, v)
	if err != nil {
		return false, err
	}
	return b, nil
}

// parseBool accepts exactly "true" and "false".
func parseBool(key, v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("annotation %s: %q is neither \"true\" nor \"false\"", key, v)
}

// parsePodOptions reads the annotations of a pod that is to be injected;
// reserved are the ports the sidecar itself listens on, which an upstream
// or the service port may not take.
func parsePodOptions(pod *corev1.Pod, reserved map[int32]string) (*podOptions, error) {
	a := pod.Annotations
	o := &podOptions{}

	o.service = a[AnnotationService]
	if _, set := a[AnnotationService]; set {
		if !serviceNameRE.MatchString(o.service) {
			return nil, fmt.Errorf("annotation %s: %q is not a service name (lower-case letters, digits and '-', at most 63, starting and ending alphanumeric)", AnnotationService, o.service)
		}
	} else {
		o.service = defaultServiceName(pod)
		if !serviceNameRE.MatchString(o.service) {
			return nil, fmt.Errorf("the service name %q taken from the pod is not a valid service name: set annotation %s", o.service, AnnotationService)
		}
	}

	if v, set := a[AnnotationServicePort]; set {
		p, err := parsePort(v)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", AnnotationServicePort, err)
		}
		o.servicePort = p
	} else if len(pod.Spec.Containers) > 0 && len(pod.Spec.Containers[0].Ports) > 0 {
		o.servicePort = pod.Spec.Containers[0].Ports[0].ContainerPort
	}
	if what, taken := reserved[o.servicePort]; taken {
		return nil, fmt.Errorf("service port %d is the sidecar's %s port: set annotation %s or change the sidecar's ports", o.servicePort, what, AnnotationServicePort)
	}

	if v, set := a[AnnotationUpstreams]; set {
		ups, err := parseUpstreams(v, reserved)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", AnnotationUpstreams, err)
		}
		o.upstreams = ups
	}

	if v, set := a[AnnotationTransparent]; set {
		b, err := parseBool(AnnotationTransparent, v)
		if err != nil {
			return nil, err
		}
		o.transparent = b
	}
	var err error
	if o.excludeOut, err = parsePortList(AnnotationExcludeOutboundPorts, a); err != nil {
		return nil, err
	}
	if o.excludeIn, err = parsePortList(AnnotationExcludeInboundPorts, a); err != nil {
		return nil, err
	}
	if v, set := a[AnnotationExcludeOutboundCIDRs]; set {
		for _, s := range splitList(v) {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("annotation %s: %q is not a CIDR (such as 10.0.0.0/8)", AnnotationExcludeOutboundCIDRs, s)
			}
			o.excludeCIDRs = append(o.excludeCIDRs, p.Masked())
		}
	}
	if !o.transparent {
		for _, k := range []string{AnnotationExcludeOutboundPorts, AnnotationExcludeInboundPorts, AnnotationExcludeOutboundCIDRs} {
			if _, set := a[k]; set {
				return nil, fmt.Errorf("annotation %s only applies with %s: \"true\"", k, AnnotationTransparent)
			}
		}
	}
	return o, nil
}

// defaultServiceName is the pod's service name without the annotation.
func defaultServiceName(pod *corev1.Pod) string {
	for _, l := range []string{"app.kubernetes.io/name", "app"} {
		if v := pod.Labels[l]; v != "" {
			return v
		}
	}
	if len(pod.Spec.Containers) > 0 {
		return pod.Spec.Containers[0].Name
	}
	return ""
}

// parseUpstreams reads "svc:port,svc:port".
func parseUpstreams(v string, reserved map[int32]string) ([]Upstream, error) {
	items := splitList(v)
	if len(items) == 0 {
		return nil, fmt.Errorf("%q lists no upstream (want service:port, comma-separated)", v)
	}
	seen := map[int32]string{}
	ups := make([]Upstream, 0, len(items))
	for _, item := range items {
		name, portStr, ok := strings.Cut(item, ":")
		if !ok {
			return nil, fmt.Errorf("%q is not service:port", item)
		}
		if !serviceNameRE.MatchString(name) {
			return nil, fmt.Errorf("%q: %q is not a service name", item, name)
		}
		port, err := parsePort(portStr)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		if other, dup := seen[port]; dup {
			return nil, fmt.Errorf("%q: port %d is already taken by upstream %q", item, port, other)
		}
		if what, taken := reserved[port]; taken {
			return nil, fmt.Errorf("%q: port %d is the sidecar's %s port", item, port, what)
		}
		seen[port] = name
		ups = append(ups, Upstream{Service: name, LocalPort: port})
	}
	return ups, nil
}

// parsePortList reads the comma-separated ports of annotation key, if set.
func parsePortList(key string, a map[string]string) ([]int32, error) {
	v, set := a[key]
	if !set {
		return nil, nil
	}
	var ports []int32
	for _, s := range splitList(v) {
		p, err := parsePort(s)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", key, err)
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// parsePort reads a port 1-65535.
func parsePort(s string) (int32, error) {
	p, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16)
	if err != nil || p == 0 {
		return 0, fmt.Errorf("port %q is not a number 1-65535", s)
	}
	return int32(p), nil
}

// splitList splits on commas, trims blanks and drops empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
