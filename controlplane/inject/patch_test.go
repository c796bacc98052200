package inject

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// testConfig is a valid Config for the tests.
func testConfig(native bool) Config {
	return Config{
		Image:          "outrigger:test",
		XDSAddr:        "outrigger-cp.outrigger.svc:18000",
		NativeSidecars: native,
	}
}

// appPod is a one-container pod with a port.
func appPod(annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{"app": "web"}, Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "web:1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}, {ContainerPort: 9090}},
		}}},
	}
}

// applyPatch applies the "add" operations to pod the way RFC 6902 says
// (an index inserts, "-" appends, a missing map key is created) and
// returns the result, so the tests check what the API server would store.
func applyPatch(t *testing.T, pod *corev1.Pod, ops []Operation) *corev1.Pod {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if op.Op != "add" {
			t.Fatalf("op %q: only add is expected", op.Op)
		}
		v, err := json.Marshal(op.Value)
		if err != nil {
			t.Fatal(err)
		}
		var val any
		if err := json.Unmarshal(v, &val); err != nil {
			t.Fatal(err)
		}
		doc = addAt(t, doc, strings.Split(op.Path, "/")[1:], val, op.Path)
	}
	raw, err = json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	out := &corev1.Pod{}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func addAt(t *testing.T, doc any, path []string, val any, full string) any {
	t.Helper()
	key := strings.ReplaceAll(strings.ReplaceAll(path[0], "~1", "/"), "~0", "~")
	switch d := doc.(type) {
	case map[string]any:
		if len(path) == 1 {
			if _, exists := d[key]; exists {
				t.Fatalf("patch %s: add over an existing member %q would replace it", full, key)
			}
			d[key] = val
			return d
		}
		next, ok := d[key]
		if !ok {
			t.Fatalf("patch %s: no member %q", full, key)
		}
		d[key] = addAt(t, next, path[1:], val, full)
		return d
	case []any:
		if len(path) == 1 {
			if key == "-" {
				return append(d, val)
			}
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i > len(d) {
				t.Fatalf("patch %s: bad index %q", full, key)
			}
			return slices.Insert(d, i, val)
		}
		i, err := strconv.Atoi(key)
		if err != nil || i < 0 || i >= len(d) {
			t.Fatalf("patch %s: bad index %q", full, key)
		}
		d[i] = addAt(t, d[i], path[1:], val, full)
		return d
	}
	t.Fatalf("patch %s: %q is inside a scalar", full, key)
	return nil
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func argValue(t *testing.T, args []string, flag string) string {
	t.Helper()
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	t.Fatalf("no %s in %q", flag, args)
	return ""
}

func TestPatchNativeSidecar(t *testing.T) {
	pod := appPod(nil)
	ops, err := Patch(testConfig(true), pod, "shop", true)
	if err != nil {
		t.Fatal(err)
	}
	// Minimal: the annotation, the volume, the init containers.
	if len(ops) != 3 {
		t.Fatalf("got %d operations, want 3: %+v", len(ops), ops)
	}
	got := applyPatch(t, pod, ops)
	if got.Annotations[AnnotationInjected] != "true" {
		t.Errorf("annotations = %v", got.Annotations)
	}
	if want := []string{ContainerInit, ContainerProxy}; !slices.Equal(names(got.Spec.InitContainers), want) {
		t.Fatalf("init containers = %v, want %v", names(got.Spec.InitContainers), want)
	}
	if want := []string{"app"}; !slices.Equal(names(got.Spec.Containers), want) {
		t.Errorf("containers = %v, want %v", names(got.Spec.Containers), want)
	}
	proxy := got.Spec.InitContainers[1]
	if proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("proxy restartPolicy = %v, want Always", proxy.RestartPolicy)
	}
	sp := proxy.StartupProbe
	if sp == nil || sp.HTTPGet == nil || sp.HTTPGet.Path != "/ready" || sp.HTTPGet.Port.IntValue() != DefaultAdminPort {
		t.Errorf("startup probe = %+v, want GET /ready on %d", sp, DefaultAdminPort)
	}
	if proxy.Image != "outrigger:test" || !slices.Contains(proxy.Args, BootstrapFile) {
		t.Errorf("proxy = %s %q", proxy.Image, proxy.Args)
	}
	if sc := proxy.SecurityContext; sc == nil || *sc.RunAsUser != DefaultProxyUID || !*sc.RunAsNonRoot || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("proxy security context = %+v", sc)
	}
	init := got.Spec.InitContainers[0]
	for flag, want := range map[string]string{
		"-service": "web", "-service-port": "8080", "-proxy-id": "$(POD_NAME)-web-sidecar-proxy",
		"-xds-addr": "outrigger-cp.outrigger.svc:18000", "-consul-addr": DefaultConsulAddr,
		"-out": BootstrapFile, "-admin-addr": "0.0.0.0:19000", "-proxy-port": "20000",
	} {
		if got := argValue(t, init.Args, flag); got != want {
			t.Errorf("init %s = %q, want %q", flag, got, want)
		}
	}
	if slices.Contains(init.Args, "-upstreams") {
		t.Errorf("init args %q have -upstreams without the annotation", init.Args)
	}
	if len(got.Spec.Volumes) != 1 || got.Spec.Volumes[0].Name != VolumeConfig || got.Spec.Volumes[0].EmptyDir == nil {
		t.Errorf("volumes = %+v", got.Spec.Volumes)
	}
}

func TestPatchPlainContainerBefore129(t *testing.T) {
	pod := appPod(map[string]string{AnnotationInject: "true"})
	ops, err := Patch(testConfig(false), pod, "shop", false)
	if err != nil {
		t.Fatal(err)
	}
	got := applyPatch(t, pod, ops)
	if want := []string{ContainerProxy, "app"}; !slices.Equal(names(got.Spec.Containers), want) {
		t.Fatalf("containers = %v, want %v", names(got.Spec.Containers), want)
	}
	if want := []string{ContainerInit}; !slices.Equal(names(got.Spec.InitContainers), want) {
		t.Errorf("init containers = %v, want %v", names(got.Spec.InitContainers), want)
	}
	if got.Spec.Containers[0].RestartPolicy != nil {
		t.Errorf("a plain container has restartPolicy %v", *got.Spec.Containers[0].RestartPolicy)
	}
	if got.Annotations[AnnotationInject] != "true" || got.Annotations[AnnotationInjected] != "true" {
		t.Errorf("annotations = %v", got.Annotations)
	}
}

func TestPatchKeepsExistingEntries(t *testing.T) {
	pod := appPod(map[string]string{AnnotationUpstreams: "web:9191, payments:9292"})
	pod.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "m:1"}}
	pod.Spec.Volumes = []corev1.Volume{{Name: "data"}}
	ops, err := Patch(testConfig(true), pod, "shop", true)
	if err != nil {
		t.Fatal(err)
	}
	got := applyPatch(t, pod, ops)
	if want := []string{ContainerInit, ContainerProxy, "migrate"}; !slices.Equal(names(got.Spec.InitContainers), want) {
		t.Errorf("init containers = %v, want %v", names(got.Spec.InitContainers), want)
	}
	if len(got.Spec.Volumes) != 2 || got.Spec.Volumes[0].Name != "data" || got.Spec.Volumes[1].Name != VolumeConfig {
		t.Errorf("volumes = %+v", got.Spec.Volumes)
	}
	if v := argValue(t, got.Spec.InitContainers[0].Args, "-upstreams"); v != "web:9191,payments:9292" {
		t.Errorf("-upstreams = %q", v)
	}
	if got.Annotations[AnnotationUpstreams] == "" || got.Annotations[AnnotationInjected] != "true" {
		t.Errorf("annotations = %v", got.Annotations)
	}
}

func TestPatchLeavesAlone(t *testing.T) {
	hostNet := appPod(map[string]string{AnnotationInject: "true", AnnotationTransparent: "true"})
	hostNet.Spec.HostNetwork = true
	withProxy := appPod(nil)
	withProxy.Spec.InitContainers = []corev1.Container{{Name: ContainerProxy}}
	for _, tc := range []struct {
		name      string
		pod       *corev1.Pod
		namespace string
		enabled   bool
	}{
		{"not opted in", appPod(nil), "shop", false},
		{"opted out in an enabled namespace", appPod(map[string]string{AnnotationInject: "false"}), "shop", true},
		{"kube-system, annotated", appPod(map[string]string{AnnotationInject: "true"}), "kube-system", true},
		{"kube-system, bad annotation", appPod(map[string]string{AnnotationUpstreams: "x"}), "kube-system", true},
		{"already injected (annotation)", appPod(map[string]string{AnnotationInjected: "true"}), "shop", true},
		{"already injected (container)", withProxy, "shop", true},
		{"host network", hostNet, "shop", true},
		{"opted out, other annotations bad", appPod(map[string]string{AnnotationInject: "false", AnnotationUpstreams: "x"}), "shop", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ops, err := Patch(testConfig(true), tc.pod, tc.namespace, tc.enabled)
			if err != nil || ops != nil {
				t.Fatalf("Patch = %v, %v; want nil, nil", ops, err)
			}
		})
	}
}

func TestPatchServiceNameAndPort(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mutate     func(*corev1.Pod)
		wantSvc    string
		wantPort   string
		wantErrSub string
	}{
		{"label app", func(*corev1.Pod) {}, "web", "8080", ""},
		{"label app.kubernetes.io/name wins over app", func(p *corev1.Pod) { p.Labels["app.kubernetes.io/name"] = "shop" }, "shop", "8080", ""},
		{"annotations win", func(p *corev1.Pod) {
			p.Annotations = map[string]string{AnnotationService: "orders", AnnotationServicePort: "9090"}
		}, "orders", "9090", ""},
		{"container name without labels", func(p *corev1.Pod) { p.Labels = nil }, "app", "8080", ""},
		{"no port: a client-only pod", func(p *corev1.Pod) { p.Spec.Containers[0].Ports = nil }, "web", "0", ""},
		{"label not a service name", func(p *corev1.Pod) { p.Labels["app"] = "Web_1" }, "", "", `"Web_1" taken from the pod is not a valid service name: set annotation outrigger.io/service`},
		{"container port is the admin port", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 19000 }, "", "", "service port 19000 is the sidecar's admin port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := appPod(nil)
			tc.mutate(pod)
			ops, err := Patch(testConfig(true), pod, "shop", true)
			if tc.wantErrSub != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrSub) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			init := applyPatch(t, pod, ops).Spec.InitContainers[0]
			if got := argValue(t, init.Args, "-service"); got != tc.wantSvc {
				t.Errorf("-service = %q, want %q", got, tc.wantSvc)
			}
			if got := argValue(t, init.Args, "-service-port"); got != tc.wantPort {
				t.Errorf("-service-port = %q, want %q", got, tc.wantPort)
			}
		})
	}
}

func TestPatchTransparent(t *testing.T) {
	pod := appPod(map[string]string{
		AnnotationTransparent:          "true",
		AnnotationExcludeOutboundPorts: "5432,6379",
		AnnotationExcludeInboundPorts:  "9090",
		AnnotationExcludeOutboundCIDRs: "10.96.0.1/32, 169.254.169.254/32,192.168.1.7/24",
	})
	ops, err := Patch(testConfig(true), pod, "shop", true)
	if err != nil {
		t.Fatal(err)
	}
	got := applyPatch(t, pod, ops)
	if want := []string{ContainerInit, ContainerRedirect, ContainerProxy}; !slices.Equal(names(got.Spec.InitContainers), want) {
		t.Fatalf("init containers = %v, want %v", names(got.Spec.InitContainers), want)
	}
	r := got.Spec.InitContainers[1]
	for flag, want := range map[string]string{
		"-proxy-uid": "5995", "-inbound-port": "20000", "-outbound-port": "15001",
		"-exclude-inbound-ports":  "19000,9090",
		"-exclude-outbound-ports": "5432,6379",
		"-exclude-outbound-cidrs": "10.96.0.1/32,169.254.169.254/32,192.168.1.0/24",
	} {
		if got := argValue(t, r.Args, flag); got != want {
			t.Errorf("redirect %s = %q, want %q", flag, got, want)
		}
	}
	if r.Image != "outrigger:test" {
		t.Errorf("redirect image = %q, want the sidecar's by default", r.Image)
	}
	cfg := testConfig(true)
	cfg.RedirectImage = "outrigger-redirect:test"
	ops, err = Patch(cfg, pod, "shop", true)
	if err != nil {
		t.Fatal(err)
	}
	if img := applyPatch(t, pod, ops).Spec.InitContainers[1].Image; img != "outrigger-redirect:test" {
		t.Errorf("redirect image = %q", img)
	}
	caps := r.SecurityContext.Capabilities.Add
	if !slices.Contains(caps, "NET_ADMIN") || *r.SecurityContext.RunAsUser != 0 {
		t.Errorf("redirect security context = %+v", r.SecurityContext)
	}
	if v := argValue(t, got.Spec.InitContainers[0].Args, "-outbound-port"); v != "15001" {
		t.Errorf("init -outbound-port = %q", v)
	}
}

func TestPatchBadAnnotations(t *testing.T) {
	for _, tc := range []struct {
		annotations map[string]string
		want        string
	}{
		{map[string]string{AnnotationInject: "yes"}, `annotation outrigger.io/inject: "yes" is neither "true" nor "false"`},
		{map[string]string{AnnotationUpstreams: "web"}, `annotation outrigger.io/upstreams: "web" is not service:port`},
		{map[string]string{AnnotationUpstreams: "web:abc"}, `annotation outrigger.io/upstreams: "web:abc": port "abc" is not a number 1-65535`},
		{map[string]string{AnnotationUpstreams: "web:0"}, `port "0" is not a number 1-65535`},
		{map[string]string{AnnotationUpstreams: "web:70000"}, `port "70000" is not a number 1-65535`},
		{map[string]string{AnnotationUpstreams: "web:9191,pay:9191"}, `"pay:9191": port 9191 is already taken by upstream "web"`},
		{map[string]string{AnnotationUpstreams: "Web:9191"}, `"Web:9191": "Web" is not a service name`},
		{map[string]string{AnnotationUpstreams: "web:20000"}, `"web:20000": port 20000 is the sidecar's inbound port`},
		{map[string]string{AnnotationUpstreams: " , "}, `lists no upstream`},
		{map[string]string{AnnotationServicePort: "http"}, `annotation outrigger.io/service-port: port "http" is not a number 1-65535`},
		{map[string]string{AnnotationService: "Bad_Name"}, `annotation outrigger.io/service: "Bad_Name" is not a service name`},
		{map[string]string{AnnotationTransparent: "maybe"}, `annotation outrigger.io/transparent: "maybe" is neither`},
		{map[string]string{AnnotationExcludeOutboundPorts: "5432"}, `annotation outrigger.io/exclude-outbound-ports only applies with outrigger.io/transparent: "true"`},
		{map[string]string{AnnotationTransparent: "true", AnnotationExcludeOutboundPorts: "x"}, `annotation outrigger.io/exclude-outbound-ports: port "x"`},
		{map[string]string{AnnotationTransparent: "true", AnnotationExcludeInboundPorts: "0"}, `annotation outrigger.io/exclude-inbound-ports: port "0"`},
		{map[string]string{AnnotationTransparent: "true", AnnotationExcludeOutboundCIDRs: "10.0.0.0"}, `annotation outrigger.io/exclude-outbound-cidrs: "10.0.0.0" is not a CIDR`},
		{map[string]string{AnnotationTransparent: "true", AnnotationUpstreams: "web:15001"}, `port 15001 is the sidecar's outbound port`},
		{map[string]string{AnnotationTransparent: "true", AnnotationServicePort: "15001"}, `service port 15001 is the sidecar's outbound port`},
	} {
		t.Run(fmt.Sprint(tc.annotations), func(t *testing.T) {
			ops, err := Patch(testConfig(true), appPod(tc.annotations), "shop", true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Patch = %v, %v; want an error containing %q", ops, err, tc.want)
			}
			if ops != nil {
				t.Errorf("a refused pod got operations %+v", ops)
			}
		})
	}
}

func TestPatchNameConflicts(t *testing.T) {
	vol := appPod(nil)
	vol.Spec.Volumes = []corev1.Volume{{Name: VolumeConfig}}
	ctr := appPod(nil)
	ctr.Spec.Containers = append(ctr.Spec.Containers, corev1.Container{Name: ContainerInit})
	for name, pod := range map[string]*corev1.Pod{"volume": vol, "container": ctr} {
		t.Run(name, func(t *testing.T) {
			if _, err := Patch(testConfig(true), pod, "shop", true); err == nil || !strings.Contains(err.Error(), "which the sidecar injector adds") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"ok", func(*Config) {}, ""},
		{"no image", func(c *Config) { c.Image = "" }, "the sidecar image is required"},
		{"bad xds", func(c *Config) { c.XDSAddr = "cp" }, `xDS address "cp"`},
		{"bad consul", func(c *Config) { c.ConsulAddr = "consul" }, `Consul address "consul"`},
		{"bad level", func(c *Config) { c.LogLevel = "loud" }, `log level "loud"`},
		{"bad pull policy", func(c *Config) { c.ImagePullPolicy = "Sometimes" }, `image pull policy "Sometimes"`},
		{"port range", func(c *Config) { c.AdminPort = 70000 }, "admin port 70000 is not 1-65535"},
		{"port clash", func(c *Config) { c.OutboundPort = 20000 }, "inbound and outbound ports are both 20000"},
		{"root", func(c *Config) { c.ProxyUID = -1 }, "proxy UID -1 must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(true)
			tc.mutate(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if _, err := NewHandler(c, nil); err == nil {
				t.Error("NewHandler accepted the bad config")
			}
			if _, err := Patch(c, appPod(map[string]string{AnnotationInject: "true"}), "shop", false); err == nil {
				t.Error("Patch accepted the bad config")
			}
		})
	}
}

func TestEscape(t *testing.T) {
	if got := escape("a/b~c"); got != "a~1b~0c" {
		t.Errorf("escape = %q", got)
	}
}

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", `
image: outrigger:1
imagePullPolicy: IfNotPresent
logLevel: debug
xdsAddress: outrigger-cp.outrigger.svc:18000
resources:
  requests: {cpu: 50m, memory: 32Mi}
  limits: {memory: 128Mi}
`)
	c, err := LoadConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.Image != "outrigger:1" || c.LogLevel != "debug" || c.AdminPort != DefaultAdminPort || c.ConsulAddr != DefaultConsulAddr ||
		c.Resources.Limits.Memory().String() != "128Mi" || c.Resources.Requests.Cpu().String() != "50m" || c.NativeSidecars {
		t.Errorf("config = %+v", c)
	}
	for _, tc := range []struct{ name, content, want string }{
		{"unknown field", "image: x\nxdsAddress: a:1\nimgae: y\n", `unknown field "imgae"`},
		{"invalid", "image: x\nxdsAddress: a\n", `xDS address "a"`},
		{"not yaml", "image: [\n", "configuration"},
		{"bad quantity", "image: x\nxdsAddress: a:1\nresources: {limits: {memory: lots}}\n", "quantities must match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := LoadConfig(write(tc.name, tc.content)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := LoadConfig(dir + "/missing"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("missing file: err = %v", err)
	}
}
