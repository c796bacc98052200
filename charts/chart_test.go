package charts

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/outrigger-mesh/outrigger/controlplane/inject"
	"github.com/outrigger-mesh/outrigger/controlplane/inject/kubetest"
)

const (
	chartDir  = "outrigger"
	release   = "mesh"
	namespace = "outrigger"
	fullname  = "mesh-outrigger"
)

// crdKinds have no schema in Kubernetes' own OpenAPI spec (Prometheus
// Operator and cert-manager custom resources): kubeconform skips them and
// the test checks their shape itself.
var crdKinds = []string{"ServiceMonitor", "PodMonitor", "PrometheusRule", "Certificate", "Issuer"}

// tool finds a binary on PATH or in Go's install directory.
func tool(t *testing.T, name, install string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, env := range []string{"GOBIN", "GOPATH"} {
		out, err := exec.Command("go", "env", env).Output()
		if err != nil || strings.TrimSpace(string(out)) == "" {
			continue
		}
		dir := strings.TrimSpace(string(out))
		if env == "GOPATH" {
			dir = filepath.Join(strings.Split(dir, string(os.PathListSeparator))[0], "bin")
		}
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	t.Skipf("SKIP: %s is not installed (%s)", name, install)
	return ""
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// helmCmd runs helm offline with its homes in a temporary directory.
func helmCmd(t *testing.T, helm string, args ...string) (string, error) {
	t.Helper()
	home := t.TempDir()
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// object is one rendered manifest.
type object map[string]any

func (o object) kind() string { s, _ := o["kind"].(string); return s }
func (o object) name() string {
	m, _ := o["metadata"].(map[string]any)
	s, _ := m["name"].(string)
	return s
}

// get walks a path of map keys and list indexes.
func (o object) get(path ...any) any {
	var cur any = map[string]any(o)
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = m[k]
		case int:
			l, ok := cur.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			cur = l[k]
		}
	}
	return cur
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// parse splits a render into objects.
func parse(t *testing.T, rendered string) []object {
	t.Helper()
	var objs []object
	for _, doc := range docSep.Split(rendered, -1) {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if len(o) > 0 {
			objs = append(objs, o)
		}
	}
	return objs
}

func find(objs []object, kind string) []object {
	var out []object
	for _, o := range objs {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func one(t *testing.T, objs []object, kind string) object {
	t.Helper()
	f := find(objs, kind)
	if len(f) != 1 {
		t.Fatalf("%d objects of kind %s, want 1", len(f), kind)
	}
	return f[0]
}

func kinds(objs []object) []string {
	var k []string
	for _, o := range objs {
		k = append(k, o.kind())
	}
	slices.Sort(k)
	return k
}

func args(t *testing.T, objs []object) []string {
	t.Helper()
	var out []string
	for _, a := range one(t, objs, "Deployment").get("spec", "template", "spec", "containers", 0, "args").([]any) {
		out = append(out, a.(string))
	}
	return out
}

const nonDefaultValues = `
image:
  tag: "9.9.9"
controlPlane:
  replicas: 3
  logLevel: debug
  podDisruptionBudget:
    enabled: false
  nodeSelector:
    kubernetes.io/os: linux
injector:
  failurePolicy: Ignore
  kubeVersion: v1.28.5
  excludeNamespaces: [legacy]
  tls:
    certManager:
      enabled: true
sidecar:
  logLevel: debug
  resources:
    requests: {cpu: 20m, memory: 32Mi}
metrics:
  serviceMonitor: {enabled: true, labels: {release: prom}}
  podMonitor: {enabled: true}
  prometheusRule: {enabled: true, labels: {release: prom}}
  grafanaDashboard: {enabled: true, namespace: monitoring}
`

func TestChart(t *testing.T) {
	helm := tool(t, "helm", "go install helm.sh/helm/v3/cmd/helm@v3.22.0")
	kubeconform := tool(t, "kubeconform", "go install github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0")
	dir := t.TempDir()
	valuesFile := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(valuesFile, []byte(nonDefaultValues), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, v := range [][]string{nil, {"-f", valuesFile}, {"--set", "injector.enabled=false"}} {
		if out, err := helmCmd(t, helm, append([]string{"lint", "--strict", chartDir, "--namespace", namespace, "--kube-version", kubeVersion}, v...)...); err != nil {
			t.Fatalf("helm lint %q: %v\n%s", v, err, out)
		}
	}
	// values.schema.json refuses bad values before anything renders.
	for _, tc := range []struct{ set, want string }{
		{"injector.failurePolicy=Sometimes", "at '/injector/failurePolicy': value must be one of 'Fail', 'Ignore'"},
		{"controlPlane.replicas=0", "at '/controlPlane/replicas': minimum"},
		{"sidecar.adminPort=70000", "at '/sidecar/adminPort': maximum"},
		{"sidecar.logLevel=loud", "at '/sidecar/logLevel'"},
		{"controlPlane.replica=2", "'replica' not allowed"},
	} {
		out, err := helmCmd(t, helm, "template", release, chartDir, "--namespace", namespace, "--kube-version", kubeVersion, "--set", tc.set)
		if err == nil || !strings.Contains(out, "values don't meet the specifications of the schema") || !strings.Contains(out, tc.want) {
			t.Errorf("--set %s: %v\n%s", tc.set, err, out)
		}
	}
	render := func(extra ...string) (string, []object) {
		t.Helper()
		out, err := helmCmd(t, helm, append([]string{"template", release, chartDir, "--namespace", namespace, "--kube-version", kubeVersion}, extra...)...)
		if err != nil {
			t.Fatalf("helm template %q: %v\n%s", extra, err, out)
		}
		return out, parse(t, out)
	}
	defRender, def := render()
	customRender, custom := render("-f", valuesFile)
	offRender, off := render("--set", "injector.enabled=false")

	t.Run("defaults", func(t *testing.T) {
		want := []string{"ClusterRole", "ClusterRoleBinding", "ConfigMap", "Deployment", "MutatingWebhookConfiguration",
			"PodDisruptionBudget", "Secret", "Service", "ServiceAccount"}
		if got := kinds(def); !slices.Equal(got, want) {
			t.Errorf("kinds = %v, want %v", got, want)
		}
		dep := one(t, def, "Deployment")
		if dep.get("spec", "replicas") != float64(2) {
			t.Errorf("replicas = %v", dep.get("spec", "replicas"))
		}
		c := object(dep.get("spec", "template", "spec", "containers", 0).(map[string]any))
		for path, want := range map[string]any{
			"securityContext.readOnlyRootFilesystem":   true,
			"securityContext.runAsNonRoot":             true,
			"securityContext.allowPrivilegeEscalation": false,
			"readinessProbe.httpGet.path":              "/readyz",
			"livenessProbe.httpGet.path":               "/healthz",
			"image":                                    "ghcr.io/outrigger-mesh/outrigger:0.1.0",
		} {
			var p []any
			for _, s := range strings.Split(path, ".") {
				p = append(p, s)
			}
			if got := c.get(p...); got != want {
				t.Errorf("container %s = %v, want %v", path, got, want)
			}
		}
		if dep.get("spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
			t.Error("the pod does not run as non-root")
		}
		a := args(t, def)
		for _, want := range []string{"-inject-addr=0.0.0.0:8443", "-inject-cert=/etc/outrigger-cp/tls/tls.crt",
			"-inject-config=/etc/outrigger-cp/inject/inject.yaml", "-xds-addr=0.0.0.0:18000"} {
			if !slices.Contains(a, want) {
				t.Errorf("args %q lack %q", a, want)
			}
		}
		if slices.ContainsFunc(a, func(s string) bool { return strings.HasPrefix(s, "-inject-kube-version") }) {
			t.Errorf("args %q pin a Kubernetes version by default", a)
		}
		if one(t, def, "PodDisruptionBudget").get("spec", "minAvailable") != float64(1) {
			t.Error("PDB minAvailable")
		}

		// The webhook: two hooks, Fail, kube-system excluded, and a
		// caBundle that signed the Secret's serving certificate.
		wh := one(t, def, "MutatingWebhookConfiguration")
		hooks := wh.get("webhooks").([]any)
		if len(hooks) != 2 {
			t.Fatalf("%d webhooks", len(hooks))
		}
		secret := one(t, def, "Secret")
		for i, wantPath := range []string{inject.PathNamespaceEnabled, inject.Path} {
			h := object(hooks[i].(map[string]any))
			if h.get("failurePolicy") != "Fail" || h.get("clientConfig", "service", "path") != wantPath ||
				h.get("clientConfig", "service", "name") != fullname || h.get("sideEffects") != "None" {
				t.Errorf("webhook %d = %v", i, h)
			}
			if h.get("clientConfig", "caBundle") != secret.get("data", "ca.crt") {
				t.Errorf("webhook %d caBundle is not the Secret's ca.crt", i)
			}
			excluded, _ := json.Marshal(h.get("namespaceSelector", "matchExpressions", 0, "values"))
			if string(excluded) != `["kube-system","outrigger"]` {
				t.Errorf("webhook %d excludes %s", i, excluded)
			}
		}
		verifyServingCert(t, secret)

		// The injector's configuration is one controlplane/inject accepts.
		cfgPath := filepath.Join(t.TempDir(), "inject.yaml")
		if err := os.WriteFile(cfgPath, []byte(one(t, def, "ConfigMap").get("data", "inject.yaml").(string)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := inject.LoadConfig(cfgPath)
		if err != nil {
			t.Fatalf("the chart's injector configuration: %v", err)
		}
		if cfg.Image != "ghcr.io/outrigger-mesh/outrigger:0.1.0" || cfg.XDSAddr != fullname+"."+namespace+".svc:18000" ||
			cfg.RedirectImage != "ghcr.io/outrigger-mesh/outrigger-redirect:0.1.0" || cfg.ConsulAddr != "$(HOST_IP):8500" ||
			cfg.Resources.Limits.Memory().String() != "256Mi" {
			t.Errorf("injector configuration = %+v", cfg)
		}
	})

	t.Run("non-default values", func(t *testing.T) {
		for _, k := range []string{"PodDisruptionBudget", "Secret"} {
			if f := find(custom, k); len(f) != 0 {
				t.Errorf("%s rendered", k)
			}
		}
		for _, k := range append([]string{"MutatingWebhookConfiguration"}, crdKinds...) {
			one(t, custom, k)
		}
		if one(t, custom, "Deployment").get("spec", "replicas") != float64(3) {
			t.Error("replicas")
		}
		a := args(t, custom)
		for _, want := range []string{"-inject-kube-version=v1.28.5", "-log-level=debug"} {
			if !slices.Contains(a, want) {
				t.Errorf("args %q lack %q", a, want)
			}
		}
		wh := one(t, custom, "MutatingWebhookConfiguration")
		if wh.get("metadata", "annotations", "cert-manager.io/inject-ca-from") != namespace+"/"+fullname+"-webhook" {
			t.Errorf("webhook annotations = %v", wh.get("metadata", "annotations"))
		}
		for i := range 2 {
			h := object(wh.get("webhooks", i).(map[string]any))
			if h.get("failurePolicy") != "Ignore" || h.get("clientConfig", "caBundle") != nil {
				t.Errorf("webhook %d = %v", i, h)
			}
			excluded, _ := json.Marshal(h.get("namespaceSelector", "matchExpressions", 0, "values"))
			if string(excluded) != `["kube-system","outrigger","legacy"]` {
				t.Errorf("webhook %d excludes %s", i, excluded)
			}
		}
		if one(t, custom, "Certificate").get("spec", "secretName") != fullname+"-webhook-tls" {
			t.Error("Certificate secretName")
		}

		// The alert rules and dashboard are docs/ops' own.
		var alerts struct {
			Groups []struct {
				Name  string
				Rules []map[string]any
			}
		}
		b, err := os.ReadFile("../docs/ops/alerts.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &alerts); err != nil {
			t.Fatal(err)
		}
		rule := one(t, custom, "PrometheusRule")
		groups, _ := rule.get("spec", "groups").([]any)
		if len(alerts.Groups) == 0 || len(groups) != len(alerts.Groups) {
			t.Fatalf("PrometheusRule has %d groups, docs/ops/alerts.yaml %d", len(groups), len(alerts.Groups))
		}
		for i, g := range alerts.Groups {
			got := object(groups[i].(map[string]any))
			if got.get("name") != g.Name || len(got.get("rules").([]any)) != len(g.Rules) {
				t.Errorf("group %d = %v, want %s with %d rules", i, got.get("name"), g.Name, len(g.Rules))
			}
		}
		if rule.get("metadata", "labels", "release") != "prom" {
			t.Error("PrometheusRule labels")
		}
		var dash *object
		for _, cm := range find(custom, "ConfigMap") {
			if strings.HasSuffix(cm.name(), "-dashboard") {
				dash = &cm
			}
		}
		if dash == nil {
			t.Fatal("no dashboard ConfigMap")
		}
		want, err := os.ReadFile("../docs/ops/grafana-dashboard.json")
		if err != nil {
			t.Fatal(err)
		}
		got := dash.get("data", "outrigger-mesh.json").(string)
		if strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
			t.Error("the dashboard ConfigMap is not docs/ops/grafana-dashboard.json")
		}
		if dash.get("metadata", "namespace") != "monitoring" || dash.get("metadata", "labels", "grafana_dashboard") != "1" {
			t.Errorf("dashboard metadata = %v", dash.get("metadata"))
		}
		if one(t, custom, "ServiceMonitor").get("spec", "jobLabel") != "outrigger.io/job" {
			t.Error("ServiceMonitor jobLabel")
		}
		cfgYAML := ""
		for _, cm := range find(custom, "ConfigMap") {
			if strings.HasSuffix(cm.name(), "-injector") {
				cfgYAML = cm.get("data", "inject.yaml").(string)
			}
		}
		if !strings.Contains(cfgYAML, `image: "ghcr.io/outrigger-mesh/outrigger:9.9.9"`) || !strings.Contains(cfgYAML, `logLevel: "debug"`) {
			t.Errorf("injector configuration:\n%s", cfgYAML)
		}
	})

	t.Run("injector disabled", func(t *testing.T) {
		for _, k := range []string{"MutatingWebhookConfiguration", "Secret", "ConfigMap"} {
			if f := find(off, k); len(f) != 0 {
				t.Errorf("%s rendered", k)
			}
		}
		if a := args(t, off); slices.ContainsFunc(a, func(s string) bool { return strings.HasPrefix(s, "-inject") }) {
			t.Errorf("args %q", a)
		}
	})

	t.Run("api server dry run", func(t *testing.T) {
		renders := []string{defRender, customRender}
		for _, ex := range exampleManifests(t) {
			b, err := os.ReadFile(ex)
			if err != nil {
				t.Fatal(err)
			}
			renders = append(renders, string(b))
		}
		dryRunAll(t, renders...)
	})

	t.Run("kubeconform", func(t *testing.T) {
		gen := loadSchemaGen(t, swaggerPath(t))
		schemas := t.TempDir()
		files := map[string]string{"default.yaml": defRender, "custom.yaml": customRender, "no-injector.yaml": offRender}
		examples := exampleManifests(t)
		var paths []string
		var all []object
		for name, content := range files {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
			all = append(all, parse(t, content)...)
		}
		for _, ex := range examples {
			b, err := os.ReadFile(ex)
			if err != nil {
				t.Fatal(err)
			}
			paths = append(paths, ex)
			all = append(all, parse(t, string(b))...)
		}
		// A negative control: kubeconform must refuse an unknown field and
		// a wrong type with these schemas.
		bad := filepath.Join(dir, "bad.yaml")
		os.WriteFile(bad, []byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: two\n  replica: 1\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}\n"), 0o600)
		all = append(all, parse(t, "apiVersion: apps/v1\nkind: Deployment\n")...)

		seen := map[string]bool{}
		for _, o := range all {
			apiVersion, _ := o["apiVersion"].(string)
			key := apiVersion + " " + o.kind()
			if seen[key] || slices.Contains(crdKinds, o.kind()) {
				continue
			}
			seen[key] = true
			ok, err := gen.write(schemas, apiVersion, o.kind())
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				t.Errorf("%s is not a kind of Kubernetes %s", key, kubeVersion)
			}
		}
		run := func(files ...string) (string, error) {
			cmd := exec.Command(kubeconform, append([]string{"-strict", "-summary",
				"-schema-location", filepath.Join(schemas, "{{ .ResourceKind }}{{ .KindSuffix }}.json"),
				"-skip", strings.Join(crdKinds, ",")}, files...)...)
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if out, err := run(paths...); err != nil {
			t.Fatalf("kubeconform: %v\n%s", err, out)
		} else {
			t.Logf("kubeconform: %s", strings.TrimSpace(out))
		}
		out, err := run(bad)
		if err == nil || !strings.Contains(out, "additional properties 'replica' not allowed") || !strings.Contains(out, "want integer") {
			t.Errorf("kubeconform accepted a bad Deployment (%v):\n%s", err, out)
		}
	})
}

// clusterScoped kinds have no namespace in their REST path.
var clusterScoped = []string{"Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}

// restPath is where objects of o's kind are created.
func restPath(o object) string {
	apiVersion, _ := o["apiVersion"].(string)
	base := "/apis/" + apiVersion
	if !strings.Contains(apiVersion, "/") {
		base = "/api/" + apiVersion
	}
	plural := strings.ToLower(o.kind()) + "s"
	if slices.Contains(clusterScoped, o.kind()) {
		return base + "/" + plural
	}
	ns, _ := o.get("metadata", "namespace").(string)
	if ns == "" {
		ns = namespace
	}
	return base + "/namespaces/" + ns + "/" + plural
}

// dryRunAll has a real API server validate every object (server-side dry
// run): stricter than the schemas (webhook paths, selectors, names).
// Namespaces are created for real first.
func dryRunAll(t *testing.T, renders ...string) {
	k := kubetest.Start(t)
	var objs []object
	for _, r := range renders {
		objs = append(objs, parse(t, r)...)
	}
	namespaces := map[string]bool{namespace: true, "monitoring": true}
	for _, o := range objs {
		if ns, _ := o.get("metadata", "namespace").(string); ns != "" {
			namespaces[ns] = true
		}
	}
	for ns := range namespaces {
		code, b := k.Do("POST", "/api/v1/namespaces", map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}})
		if code != 201 && code != 409 {
			t.Fatalf("namespace %s: %d %s", ns, code, b)
		}
	}
	checked := 0
	for _, o := range objs {
		if slices.Contains(crdKinds, o.kind()) || o.kind() == "Namespace" {
			continue
		}
		code, b := k.Do("POST", restPath(o)+"?dryRun=All&fieldValidation=Strict", o)
		if code != 201 {
			t.Errorf("%s %s: the API server refuses it: %d %s", o.kind(), o.name(), code, b)
		}
		checked++
	}
	t.Logf("kube-apiserver accepted %d objects (server-side dry run, strict field validation)", checked)
	// A negative control: the same request refuses an unknown field.
	bad := object{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": "bad", "namespace": namespace},
		"spec": map[string]any{"ports": []any{map[string]any{"port": 80}}, "prot": 1}}
	if code, b := k.Do("POST", restPath(bad)+"?dryRun=All&fieldValidation=Strict", bad); code != 400 || !strings.Contains(string(b), `unknown field \"spec.prot\"`) {
		t.Errorf("an unknown field got %d %s", code, b)
	}
}

// verifyServingCert checks the generated certificate is signed by the CA
// for the Service's DNS name.
func verifyServingCert(t *testing.T, secret object) {
	t.Helper()
	decode := func(key string) *x509.Certificate {
		s, _ := secret.get("data", key).(string)
		der, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("Secret %s: %v", key, err)
		}
		block, _ := pem.Decode(der)
		if block == nil {
			t.Fatalf("Secret %s holds no PEM", key)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("Secret %s: %v", key, err)
		}
		return c
	}
	ca, leaf := decode("ca.crt"), decode("tls.crt")
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: fullname + "." + namespace + ".svc"}); err != nil {
		t.Errorf("the webhook's serving certificate: %v", err)
	}
	if secret.get("type") != "kubernetes.io/tls" {
		t.Errorf("Secret type = %v", secret.get("type"))
	}
}

// exampleManifests are the YAML files under examples/k8s, the shop's
// included (examples/k8s/shop).
func exampleManifests(t *testing.T) []string {
	t.Helper()
	top, err := filepath.Glob("../examples/k8s/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	nested, err := filepath.Glob("../examples/k8s/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	all := append(top, nested...)
	if len(top) == 0 || len(nested) == 0 {
		t.Fatalf("examples/k8s: %v", all)
	}
	return all
}
