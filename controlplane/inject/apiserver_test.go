package inject

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outrigger-mesh/outrigger/controlplane/inject/kubetest"
)

// webhookServer serves native-sidecar injection at /mutate[/namespace-enabled]
// and plain-container injection at /legacy/mutate/namespace-enabled over
// TLS on loopback; it returns the address and the CA bundle.
func webhookServer(t *testing.T) (string, []byte, *requestLog) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	caPEM := writeCert(t, certFile, keyFile, "outrigger-injector")
	native, err := NewHandler(testConfig(true), nil)
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := NewHandler(testConfig(false), nil)
	if err != nil {
		t.Fatal(err)
	}
	calls := &requestLog{}
	mux := http.NewServeMux()
	mux.Handle(Path, calls.wrap(native))
	mux.Handle(PathNamespaceEnabled, calls.wrap(native))
	mux.Handle("/legacy"+PathNamespaceEnabled, calls.wrap(legacy))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveMux(ctx, lis, certFile, keyFile, mux) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook server: %v", err)
		}
	})
	return lis.Addr().String(), caPEM, calls
}

// serveMux serves mux over TLS until ctx ends (Serve mounts one handler at
// its two paths; the test needs the legacy paths too).
func serveMux(ctx context.Context, lis net.Listener, certFile, keyFile string, mux *http.ServeMux) error {
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(lis, certFile, keyFile) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		srv.Close()
		<-done
		return nil
	}
}

// requestLog counts the admission requests per namespace.
type requestLog struct {
	mu sync.Mutex
	ns map[string]int
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var rv struct {
			Request struct{ Namespace string } `json:"request"`
		}
		json.Unmarshal(body, &rv)
		l.mu.Lock()
		if l.ns == nil {
			l.ns = map[string]int{}
		}
		l.ns[rv.Request.Namespace]++
		l.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, r)
	})
}

func (l *requestLog) count(ns string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ns[ns]
}

// webhookConfig is the chart's MutatingWebhookConfiguration, pointed at a
// URL instead of a Service. Labelled namespaces that also carry
// test.outrigger.io/legacy use the plain-container (pre-1.29) handler.
func webhookConfig(addr string, caPEM []byte) *admissionregv1.MutatingWebhookConfiguration {
	fail := admissionregv1.Fail
	none := admissionregv1.SideEffectClassNone
	timeout := int32(5)
	never := admissionregv1.NeverReinvocationPolicy
	rules := []admissionregv1.RuleWithOperations{{
		Operations: []admissionregv1.OperationType{admissionregv1.Create, admissionregv1.Update},
		Rule:       admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
	}}
	hook := func(name, url string, nsSel *metav1.LabelSelector) admissionregv1.MutatingWebhook {
		u := url
		return admissionregv1.MutatingWebhook{
			Name:                    name,
			ClientConfig:            admissionregv1.WebhookClientConfig{URL: &u, CABundle: caPEM},
			Rules:                   rules,
			FailurePolicy:           &fail,
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      &never,
			NamespaceSelector:       nsSel,
		}
	}
	notSystem := metav1.LabelSelectorRequirement{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system"}}
	base := "https://" + addr
	return &admissionregv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: "outrigger-injector"},
		Webhooks: []admissionregv1.MutatingWebhook{
			hook("namespace.inject.outrigger.io", base+PathNamespaceEnabled, &metav1.LabelSelector{
				MatchLabels:      map[string]string{NamespaceLabel: NamespaceEnabled},
				MatchExpressions: []metav1.LabelSelectorRequirement{notSystem, {Key: "test.outrigger.io/legacy", Operator: metav1.LabelSelectorOpDoesNotExist}},
			}),
			hook("pod.inject.outrigger.io", base+Path, &metav1.LabelSelector{
				MatchExpressions: []metav1.LabelSelectorRequirement{notSystem, {Key: NamespaceLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{NamespaceEnabled}}},
			}),
			hook("legacy.inject.outrigger.io", base+"/legacy"+PathNamespaceEnabled, &metav1.LabelSelector{
				MatchLabels:      map[string]string{NamespaceLabel: NamespaceEnabled, "test.outrigger.io/legacy": "true"},
				MatchExpressions: []metav1.LabelSelectorRequirement{notSystem},
			}),
		},
	}
}

func testPod(name string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "web"}, Annotations: annotations},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.example/web:1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
		}}},
	}
}

func TestInjectorAgainstAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("SKIP: -short: the test starts a real kube-apiserver")
	}
	k := kubetest.Start(t)

	var version struct{ GitVersion string }
	k.Must(http.MethodGet, "/version", nil, &version)
	native, err := SupportsNativeSidecars(version.GitVersion)
	if err != nil || !native {
		t.Fatalf("API server %s: native sidecars = %v, %v; this test wants 1.29 or later", version.GitVersion, native, err)
	}

	addr, caPEM, calls := webhookServer(t)
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "enabled", Labels: map[string]string{NamespaceLabel: NamespaceEnabled}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "plain"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "legacy", Labels: map[string]string{NamespaceLabel: NamespaceEnabled, "test.outrigger.io/legacy": "true"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "kube-system"}},
	} {
		ns.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}
		if code, b := k.Do(http.MethodPost, "/api/v1/namespaces", ns); code != http.StatusCreated && code != http.StatusConflict {
			t.Fatalf("namespace %s: %d %s", ns.Name, code, b)
		}
	}
	k.Must(http.MethodPost, "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations", webhookConfig(addr, caPEM), nil)

	// The configuration takes effect shortly after it is stored: dry-run
	// pods until one comes back injected.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var p corev1.Pod
		k.Must(http.MethodPost, "/api/v1/namespaces/enabled/pods?dryRun=All", testPod("probe", nil), &p)
		if len(p.Spec.InitContainers) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the webhook configuration was not honoured within 20 s")
		}
		time.Sleep(50 * time.Millisecond)
	}

	create := func(ns string, pod *corev1.Pod) *corev1.Pod {
		t.Helper()
		var out corev1.Pod
		k.Must(http.MethodPost, "/api/v1/namespaces/"+ns+"/pods", pod, &out)
		return &out
	}
	assertNative := func(t *testing.T, p *corev1.Pod, appContainers ...string) {
		t.Helper()
		if got := names(p.Spec.InitContainers); strings.Join(got, ",") != ContainerInit+","+ContainerProxy {
			t.Fatalf("init containers = %v, want [%s %s]", got, ContainerInit, ContainerProxy)
		}
		if got := names(p.Spec.Containers); strings.Join(got, ",") != strings.Join(appContainers, ",") {
			t.Fatalf("containers = %v, want %v", got, appContainers)
		}
		proxy := p.Spec.InitContainers[1]
		if proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			t.Errorf("proxy restartPolicy = %v, want Always", proxy.RestartPolicy)
		}
		if sp := proxy.StartupProbe; sp == nil || sp.HTTPGet == nil || sp.HTTPGet.Path != "/ready" || sp.HTTPGet.Port.IntValue() != DefaultAdminPort {
			t.Errorf("startup probe = %+v", proxy.StartupProbe)
		}
		if p.Annotations[AnnotationInjected] != "true" {
			t.Errorf("annotations = %v", p.Annotations)
		}
		if len(p.Spec.Volumes) == 0 || p.Spec.Volumes[len(p.Spec.Volumes)-1].Name != VolumeConfig {
			t.Errorf("volumes = %v", p.Spec.Volumes)
		}
	}
	assertUntouched := func(t *testing.T, p *corev1.Pod) {
		t.Helper()
		if len(p.Spec.InitContainers) != 0 || len(p.Spec.Containers) != 1 || p.Annotations[AnnotationInjected] != "" {
			t.Fatalf("pod %s/%s was changed: init %v, containers %v, annotations %v",
				p.Namespace, p.Name, names(p.Spec.InitContainers), names(p.Spec.Containers), p.Annotations)
		}
	}

	t.Run("labelled namespace gets a native sidecar", func(t *testing.T) {
		p := create("enabled", testPod("web", nil))
		assertNative(t, p, "app")
		if v := argValue(t, p.Spec.InitContainers[0].Args, "-service-port"); v != "8080" {
			t.Errorf("-service-port = %q", v)
		}
	})
	t.Run("unlabelled namespace is left alone", func(t *testing.T) {
		assertUntouched(t, create("plain", testPod("web", nil)))
	})
	t.Run("annotation opts in in an unlabelled namespace", func(t *testing.T) {
		p := create("plain", testPod("web-annotated", map[string]string{AnnotationInject: "true", AnnotationUpstreams: "orders:9191,payments:9292"}))
		assertNative(t, p, "app")
		if v := argValue(t, p.Spec.InitContainers[0].Args, "-upstreams"); v != "orders:9191,payments:9292" {
			t.Errorf("-upstreams = %q", v)
		}
	})
	t.Run("opt-out annotation wins over the namespace label", func(t *testing.T) {
		assertUntouched(t, create("enabled", testPod("web-out", map[string]string{AnnotationInject: "false"})))
	})
	t.Run("kube-system never", func(t *testing.T) {
		before := calls.count("kube-system")
		assertUntouched(t, create("kube-system", testPod("web", map[string]string{AnnotationInject: "true"})))
		if n := calls.count("kube-system") - before; n != 0 {
			t.Errorf("the webhook was called %d times for kube-system", n)
		}
	})
	t.Run("Job-shaped pod gets the native sidecar", func(t *testing.T) {
		job := testPod("", nil)
		job.GenerateName = "report-"
		job.Labels = map[string]string{"batch.kubernetes.io/job-name": "report", "app": "report"}
		job.Spec.RestartPolicy = corev1.RestartPolicyNever
		job.Spec.Containers[0].Ports = nil
		p := create("enabled", job)
		assertNative(t, p, "app")
		if v := argValue(t, p.Spec.InitContainers[0].Args, "-service-port"); v != "0" {
			t.Errorf("a Job's -service-port = %q, want 0 (no inbound)", v)
		}
	})
	t.Run("clusters before 1.29 get a plain container", func(t *testing.T) {
		p := create("legacy", testPod("web", nil))
		if got := names(p.Spec.Containers); strings.Join(got, ",") != ContainerProxy+",app" {
			t.Fatalf("containers = %v", got)
		}
		if got := names(p.Spec.InitContainers); strings.Join(got, ",") != ContainerInit {
			t.Fatalf("init containers = %v", got)
		}
	})
	t.Run("update does not inject twice", func(t *testing.T) {
		before := calls.count("enabled")
		var p corev1.Pod
		k.Must(http.MethodPatch, "/api/v1/namespaces/enabled/pods/web", map[string]any{
			"metadata": map[string]any{"labels": map[string]string{"version": "v2"}},
		}, &p)
		if calls.count("enabled") == before {
			t.Error("the update did not reach the webhook (the test's configuration covers UPDATE)")
		}
		if p.Labels["version"] != "v2" {
			t.Errorf("labels = %v", p.Labels)
		}
		assertNative(t, &p, "app")
		// A pod re-created from an injected one's spec is left as it is.
		again := testPod("web-copy", p.Annotations)
		again.Spec = p.Spec
		assertNative(t, create("enabled", again), "app")
	})
	t.Run("bad annotation is refused with a clear message", func(t *testing.T) {
		code, b := k.Do(http.MethodPost, "/api/v1/namespaces/enabled/pods", testPod("bad", map[string]string{AnnotationUpstreams: "orders:http"}))
		want := `annotation outrigger.io/upstreams: "orders:http": port "http" is not a number 1-65535`
		var st metav1.Status
		json.Unmarshal(b, &st)
		if code != http.StatusBadRequest || !strings.Contains(st.Message, want) {
			t.Fatalf("got %d %s, want 400 containing %q", code, b, want)
		}
		t.Logf("the API server answered: %s", st.Message)
		if code, _ := k.Do(http.MethodGet, "/api/v1/namespaces/enabled/pods/bad", nil); code != http.StatusNotFound {
			t.Errorf("the refused pod exists (GET: %d)", code)
		}
	})
}
