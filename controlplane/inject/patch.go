package inject

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Names of what the injector adds to a pod.
const (
	ContainerProxy    = "outrigger"
	ContainerInit     = "outrigger-init"
	ContainerRedirect = "outrigger-redirect"
	VolumeConfig      = "outrigger-config"
	// ConfigDir is where the bootstrap volume is mounted.
	ConfigDir = "/etc/outrigger"
	// BootstrapFile is the proxy's bootstrap, written by outrigger-init.
	BootstrapFile = ConfigDir + "/bootstrap.yaml"
)

// Operation is one RFC 6902 JSONPatch operation (only "add" is emitted).
type Operation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// Patch returns the JSONPatch that injects pod, or nil when the pod is to be
// left alone: it did not opt in (pod annotation, or namespaceEnabled from
// its namespace's label), it opted out, it lives in kube-system, it uses
// the node's network (hostNetwork), or it is already injected. A malformed
// annotation is an error naming it; the pod is then refused whole, never
// half-injected.
func Patch(cfg Config, pod *corev1.Pod, namespace string, namespaceEnabled bool) ([]Operation, error) {
	if namespace == "kube-system" {
		return nil, nil
	}
	if pod.Spec.HostNetwork {
		// The sidecar's ports and the capture rules would be the node's.
		return nil, nil
	}
	if injected(pod) {
		return nil, nil
	}
	want, err := wantsInjection(pod, namespaceEnabled)
	if err != nil || !want {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	reserved := map[int32]string{cfg.AdminPort: "admin", cfg.InboundPort: "inbound"}
	o, err := parsePodOptions(pod, reserved)
	if err != nil {
		return nil, err
	}
	if o.transparent {
		reserved[cfg.OutboundPort] = "outbound"
		if what, taken := reserved[o.servicePort]; taken {
			return nil, fmt.Errorf("service port %d is the sidecar's %s port", o.servicePort, what)
		}
		for _, u := range o.upstreams {
			if u.LocalPort == cfg.OutboundPort {
				return nil, fmt.Errorf("annotation %s: %q: port %d is the sidecar's outbound port", AnnotationUpstreams, u, u.LocalPort)
			}
		}
	}
	if err := checkNames(pod); err != nil {
		return nil, err
	}

	var ops []Operation
	if pod.Annotations == nil {
		ops = append(ops, Operation{"add", "/metadata/annotations", map[string]string{AnnotationInjected: "true"}})
	} else {
		ops = append(ops, Operation{"add", "/metadata/annotations/" + escape(AnnotationInjected), "true"})
	}

	vol := corev1.Volume{Name: VolumeConfig, VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory},
	}}
	if pod.Spec.Volumes == nil {
		ops = append(ops, Operation{"add", "/spec/volumes", []corev1.Volume{vol}})
	} else {
		ops = append(ops, Operation{"add", "/spec/volumes/-", vol})
	}

	inits := []corev1.Container{initContainer(cfg, o)}
	if o.transparent {
		inits = append(inits, redirectContainer(cfg, o))
	}
	proxy := proxyContainer(cfg)
	if cfg.NativeSidecars {
		always := corev1.ContainerRestartPolicyAlways
		proxy.RestartPolicy = &always
		inits = append(inits, proxy)
	}
	// Ours run before the pod's own init containers, so those can already
	// use the mesh when the proxy is a native sidecar.
	if pod.Spec.InitContainers == nil {
		ops = append(ops, Operation{"add", "/spec/initContainers", inits})
	} else {
		for i, c := range inits {
			ops = append(ops, Operation{"add", fmt.Sprintf("/spec/initContainers/%d", i), c})
		}
	}
	if !cfg.NativeSidecars {
		// First, so the kubelet starts it before the app (it does not wait
		// for it: only native sidecars give that guarantee).
		ops = append(ops, Operation{"add", "/spec/containers/0", proxy})
	}
	return ops, nil
}

// injected reports whether the pod already carries the sidecar.
func injected(pod *corev1.Pod) bool {
	if _, ok := pod.Annotations[AnnotationInjected]; ok {
		return true
	}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.Name == ContainerProxy {
				return true
			}
		}
	}
	return false
}

// checkNames refuses a pod that already uses a name the injector adds.
func checkNames(pod *corev1.Pod) error {
	for _, v := range pod.Spec.Volumes {
		if v.Name == VolumeConfig {
			return fmt.Errorf("the pod already has a volume named %q, which the sidecar injector adds", VolumeConfig)
		}
	}
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range list {
			if c.Name == ContainerInit || c.Name == ContainerRedirect {
				return fmt.Errorf("the pod already has a container named %q, which the sidecar injector adds", c.Name)
			}
		}
	}
	return nil
}

// escape makes a map key a JSON Pointer segment (RFC 6901).
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// fieldEnv is an environment variable from the downward API.
func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
}

// initContainer registers the pod with Consul and writes the bootstrap.
func initContainer(cfg Config, o *podOptions) corev1.Container {
	ups := make([]string, len(o.upstreams))
	for i, u := range o.upstreams {
		ups[i] = u.String()
	}
	args := []string{"sidecar-init",
		"-service", o.service,
		"-service-id", "$(POD_NAME)-" + o.service,
		"-proxy-id", "$(POD_NAME)-" + o.service + "-sidecar-proxy",
		"-namespace", "$(POD_NAMESPACE)",
		"-pod-ip", "$(POD_IP)",
		"-service-port", portString(o.servicePort),
		"-proxy-port", portString(cfg.InboundPort),
		"-admin-addr", "0.0.0.0:" + portString(cfg.AdminPort),
		"-xds-addr", cfg.XDSAddr,
		"-consul-addr", cfg.ConsulAddr,
		"-out", BootstrapFile,
	}
	if len(ups) > 0 {
		args = append(args, "-upstreams", strings.Join(ups, ","))
	}
	if o.transparent {
		args = append(args, "-outbound-port", portString(cfg.OutboundPort))
	}
	return corev1.Container{
		Name:            ContainerInit,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Command:         []string{"outrigger-cp"},
		Args:            args,
		Env: []corev1.EnvVar{
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			fieldEnv("POD_IP", "status.podIP"),
			fieldEnv("HOST_IP", "status.hostIP"),
		},
		Resources:       cfg.Resources,
		VolumeMounts:    []corev1.VolumeMount{{Name: VolumeConfig, MountPath: ConfigDir}},
		SecurityContext: proxySecurityContext(cfg),
	}
}

// redirectContainer installs the transparent-capture rules.
func redirectContainer(cfg Config, o *podOptions) corev1.Container {
	in := []string{portString(cfg.AdminPort)} // the kubelet probes /ready there
	for _, p := range o.excludeIn {
		in = append(in, portString(p))
	}
	args := []string{"redirect-traffic",
		"-proxy-uid", fmt.Sprint(cfg.ProxyUID),
		"-inbound-port", portString(cfg.InboundPort),
		"-outbound-port", portString(cfg.OutboundPort),
		"-exclude-inbound-ports", strings.Join(in, ","),
	}
	if len(o.excludeOut) > 0 {
		out := make([]string, len(o.excludeOut))
		for i, p := range o.excludeOut {
			out[i] = portString(p)
		}
		args = append(args, "-exclude-outbound-ports", strings.Join(out, ","))
	}
	if len(o.excludeCIDRs) > 0 {
		cidrs := make([]string, len(o.excludeCIDRs))
		for i, p := range o.excludeCIDRs {
			cidrs[i] = p.String()
		}
		args = append(args, "-exclude-outbound-cidrs", strings.Join(cidrs, ","))
	}
	root := int64(0)
	no, yes := false, true
	return corev1.Container{
		Name:            ContainerRedirect,
		Image:           cfg.RedirectImage,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Command:         []string{"outrigger"},
		Args:            args,
		Resources:       cfg.Resources,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                &root,
			RunAsNonRoot:             &no,
			ReadOnlyRootFilesystem:   &yes,
			AllowPrivilegeEscalation: &no,
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
		},
	}
}

// proxyContainer is the sidecar itself.
func proxyContainer(cfg Config) corev1.Container {
	ready := func(period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: "/ready", Port: intstr.FromInt32(cfg.AdminPort),
			}},
			PeriodSeconds:    period,
			TimeoutSeconds:   1,
			FailureThreshold: failures,
		}
	}
	return corev1.Container{
		Name:            ContainerProxy,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Command:         []string{"outrigger"},
		Args: []string{"-c", BootstrapFile, "--log-level", cfg.LogLevel, "--log-format", "json",
			// The admin listener is on the pod IP so the kubelet can probe
			// /ready; see docs/kubernetes.md.
			"--admin-allow-non-loopback"},
		Ports: []corev1.ContainerPort{
			{Name: "outrigger-in", ContainerPort: cfg.InboundPort, Protocol: corev1.ProtocolTCP},
			{Name: "outrigger-admin", ContainerPort: cfg.AdminPort, Protocol: corev1.ProtocolTCP},
		},
		Resources:    cfg.Resources,
		VolumeMounts: []corev1.VolumeMount{{Name: VolumeConfig, MountPath: ConfigDir, ReadOnly: true}},
		// The app starts only once this passes (native sidecars).
		StartupProbe:    ready(1, 120),
		ReadinessProbe:  ready(5, 3),
		SecurityContext: proxySecurityContext(cfg),
	}
}

// proxySecurityContext: non-root as the proxy UID, nothing else.
func proxySecurityContext(cfg Config) *corev1.SecurityContext {
	uid := cfg.ProxyUID
	no, yes := false, true
	return &corev1.SecurityContext{
		RunAsUser:                &uid,
		RunAsGroup:               &uid,
		RunAsNonRoot:             &yes,
		ReadOnlyRootFilesystem:   &yes,
		AllowPrivilegeEscalation: &no,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}
